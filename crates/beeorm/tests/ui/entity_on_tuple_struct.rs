use beeorm::Entity;

#[derive(Entity)]
struct Pair(u64, String);

fn main() {}
