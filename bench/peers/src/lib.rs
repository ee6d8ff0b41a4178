//! The peers of beeorm's benchmarks (sqlx, SeaORM, diesel-async); the package exists
//! for its benches (`benches/crud_peers.rs`, `benches/workloads_peers.rs`).
