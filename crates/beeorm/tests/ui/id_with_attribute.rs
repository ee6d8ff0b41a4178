use beeorm::Entity;

#[derive(Entity)]
struct User {
    #[orm(unique = "Id")]
    id: u64,
    name: String,
}

fn main() {}
