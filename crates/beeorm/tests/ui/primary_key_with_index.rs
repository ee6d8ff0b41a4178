use beeorm::Entity;

#[derive(Entity)]
struct Customer {
    #[orm(primary_key, index = "Key")]
    customer_id: u32,
}

fn main() {}
