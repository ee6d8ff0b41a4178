//! Benchmarks of beeorm; they live in `benches/` (`cargo bench -p bench`), results in
//! `RESULTS.md`. This library is empty: the package exists for its benches.
