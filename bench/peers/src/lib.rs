//! sqlx and SeaORM for the CRUD benchmark; the package exists for its bench
//! (`benches/crud_peers.rs`).
