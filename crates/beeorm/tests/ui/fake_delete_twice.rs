use beeorm::Entity;

#[derive(Entity)]
struct Post {
    id: u64,
    #[orm(fake_delete)]
    deleted: bool,
    #[orm(fake_delete)]
    hidden: bool,
}

fn main() {}
