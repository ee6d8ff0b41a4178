use beeorm::Entity;

// The name alone used to switch fake delete on; now it must be said.
#[derive(Entity)]
struct Post {
    id: u64,
    title: String,
    fake_delete: bool,
}

fn main() {}
