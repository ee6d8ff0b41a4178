use beeorm::Entity;

#[derive(Entity)]
struct User {
    id: u64,
    #[orm(length = "huge")]
    name: String,
}

fn main() {}
