use beeorm::Entity;

#[derive(Entity)]
struct User {
    id: u64,
    #[orm(length = 0)]
    name: String,
}

fn main() {}
