use beeorm::Embedded;

#[derive(Embedded)]
struct Audit {
    #[orm(fake_delete)]
    deleted: bool,
}

fn main() {}
