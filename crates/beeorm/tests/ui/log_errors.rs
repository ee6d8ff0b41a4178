use beeorm::Entity;

#[derive(Entity)]
#[orm(log = "")]
struct EmptyPool {
    id: u64,
}

#[derive(Entity)]
#[orm(log = 5)]
struct NotAString {
    id: u64,
}

#[derive(Entity)]
#[orm(log, log)]
struct Twice {
    id: u64,
}

#[derive(Entity)]
#[orm(log)]
struct OnPrimaryKey {
    #[orm(skip_log)]
    id: u64,
}

#[derive(Entity)]
#[orm(log)]
struct OnFakeDelete {
    id: u64,
    #[orm(fake_delete, skip_log)]
    fake_delete: bool,
}

fn main() {}
