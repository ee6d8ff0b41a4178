use beeorm::Entity;

#[derive(Entity)]
struct User {
    id: u64,
    #[orm(index = "A:0")]
    name: String,
}

fn main() {}
