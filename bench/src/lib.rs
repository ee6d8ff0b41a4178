//! Benchmarks of beeorm; they live in `benches/` (`cargo bench -p bench`), results in
//! `RESULTS.md`. The library holds what several benches share.

pub mod interleave;
pub mod report;
