use beeorm::OrmEnum;

#[derive(OrmEnum, Clone, Copy)]
enum Shape {
    Dot,
    Circle(u32),
}

fn main() {}
