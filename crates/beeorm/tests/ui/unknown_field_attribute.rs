use beeorm::Entity;

#[derive(Entity)]
struct User {
    id: u64,
    #[orm(lenght = 10)]
    name: String,
}

fn main() {}
