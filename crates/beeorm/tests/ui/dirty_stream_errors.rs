use beeorm::Entity;

#[derive(Entity)]
#[orm(dirty = "users,users")]
struct Twice {
    id: u64,
}

#[derive(Entity)]
struct Empty {
    id: u64,
    #[orm(dirty = "a,,b")]
    name: String,
}

#[derive(Entity)]
struct Ignored {
    id: u64,
    #[orm(ignore, dirty = "a")]
    scratch: String,
}

#[derive(Entity)]
struct OnId {
    #[orm(dirty = "a")]
    id: u64,
}

fn main() {}
