use beeorm::Entity;

#[derive(Entity)]
struct Event {
    id: u64,
    started: std::time::Instant,
}

fn main() {}
