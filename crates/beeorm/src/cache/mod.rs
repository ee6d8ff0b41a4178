//! Caches. For now the in-process cache pools (A3); entity caches build on them.

pub(crate) mod codec;
mod local;

pub use local::LocalCache;
