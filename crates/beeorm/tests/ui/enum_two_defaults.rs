use beeorm::OrmEnum;

#[derive(OrmEnum, Clone, Copy)]
enum Color {
    #[orm(default)]
    Red,
    #[orm(default)]
    Green,
}

fn main() {}
