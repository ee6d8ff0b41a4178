use beeorm::Entity;

#[derive(Entity)]
struct Customer {
    id: u32,
    #[orm(column = "")]
    first_name: String,
}

fn main() {}
