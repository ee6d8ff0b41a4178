//! Compile errors of the derive macros: each one must point at the offending field,
//! type or attribute. The expected messages live in `tests/ui/*.stderr`; regenerate them
//! with `TRYBUILD=overwrite cargo test -p beeorm --test derive_errors` and review the diff.
#![allow(clippy::unwrap_used)]

#[test]
fn derive_errors_point_at_the_culprit() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
