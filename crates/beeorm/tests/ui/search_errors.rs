use beeorm::{Embedded, Entity};

#[derive(Entity)]
#[orm(search)]
struct UnknownKind {
    id: u64,
    #[orm(searchable = "fulltext")]
    name: String,
}

#[derive(Entity)]
#[orm(search)]
struct OnIgnored {
    id: u64,
    #[orm(ignore, searchable)]
    scratch: String,
}

#[derive(Entity)]
#[orm(search)]
struct OnJson {
    id: u64,
    #[orm(json, sortable)]
    doc: Vec<u32>,
}

#[derive(Embedded)]
struct Address {
    city: String,
}

#[derive(Entity)]
#[orm(search)]
struct OnEmbeddedHolder {
    id: u64,
    #[orm(embedded, searchable)]
    address: Address,
}

#[derive(Entity)]
struct WithoutSearch {
    id: u64,
    #[orm(searchable)]
    name: String,
}

#[derive(Entity)]
#[orm(search, search = "other")]
struct SearchTwice {
    id: u64,
    #[orm(searchable)]
    name: String,
}

#[derive(Entity)]
#[orm(search = "")]
struct EmptyPool {
    id: u64,
    #[orm(searchable)]
    name: String,
}

#[derive(Entity)]
#[orm(search)]
struct OnId {
    #[orm(searchable)]
    id: u64,
    #[orm(searchable)]
    name: String,
}

fn main() {}
