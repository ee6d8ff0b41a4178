use beeorm::Entity;

#[derive(Entity)]
struct Invoice {
    id: u64,
    #[orm(decimal = "8")]
    total: f64,
}

fn main() {}
