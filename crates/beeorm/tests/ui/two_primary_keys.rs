use beeorm::Entity;

#[derive(Entity)]
struct Customer {
    #[orm(primary_key, column = "CustomerId")]
    customer_id: u32,
    #[orm(primary_key)]
    other_id: u32,
}

fn main() {}
