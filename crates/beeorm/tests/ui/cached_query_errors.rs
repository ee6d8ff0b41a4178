use beeorm::Entity;

#[derive(Entity)]
#[orm(redis_cache)]
#[orm(cached_query(name = "by_age", query = ":age = ?"))]
#[orm(cached_query_one(name = "by_age", query = ":age = ?"))]
struct Twice {
    id: u64,
    age: u32,
}

#[derive(Entity)]
#[orm(redis_cache, cached_query(query = ":age = ?"))]
struct Unnamed {
    id: u64,
    age: u32,
}

#[derive(Entity)]
#[orm(redis_cache, cached_query(name = "by age", query = ":age = ?"))]
struct BadName {
    id: u64,
    age: u32,
}

#[derive(Entity)]
#[orm(redis_cache, cached_query(name = "all", sql = ""))]
struct UnknownSetting {
    id: u64,
}

fn main() {}
