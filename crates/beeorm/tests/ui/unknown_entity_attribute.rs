use beeorm::Entity;

#[derive(Entity)]
#[orm(tabel = "users")]
struct User {
    id: u64,
}

fn main() {}
