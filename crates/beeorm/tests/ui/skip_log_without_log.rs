use beeorm::Entity;

#[derive(Entity)]
struct User {
    id: u64,
    #[orm(skip_log)]
    visits: u32,
}

fn main() {}
