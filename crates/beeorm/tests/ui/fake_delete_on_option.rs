use beeorm::Entity;

#[derive(Entity)]
struct Post {
    id: u64,
    #[orm(fake_delete)]
    deleted: Option<bool>,
}

fn main() {}
