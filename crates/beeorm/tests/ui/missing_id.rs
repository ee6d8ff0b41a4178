use beeorm::Entity;

#[derive(Entity)]
struct NoKey {
    name: String,
}

fn main() {}
