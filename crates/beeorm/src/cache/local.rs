//! In-process cache pools (A3), bounded by entry count, on `moka`.

use std::any::Any;
use std::sync::Arc;

type Entry = Arc<dyn Any + Send + Sync>;

/// A named, bounded in-process cache. Cheap to clone (shared storage). Values of any
/// `Clone + Send + Sync` type; a `get` with another type than was stored is a miss.
#[derive(Clone)]
pub struct LocalCache {
    name: Arc<str>,
    cache: moka::sync::Cache<String, Entry>,
    entities: moka::sync::Cache<(u32, u64), Entry>,
}

impl std::fmt::Debug for LocalCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCache")
            .field("name", &self.name)
            .finish()
    }
}

impl LocalCache {
    pub(crate) fn new(name: &str, size: u64) -> Self {
        LocalCache {
            name: name.into(),
            cache: moka::sync::Cache::new(size),
            entities: moka::sync::Cache::new(size),
        }
    }

    pub(crate) fn get_entity(&self, table: u32, id: u64) -> Option<Entry> {
        self.entities.get(&(table, id))
    }

    pub(crate) fn insert_entity(&self, table: u32, id: u64, value: Entry, _weight: u32) {
        self.entities.insert((table, id), value);
    }

    pub(crate) fn remove_entity(&self, table: u32, id: u64) {
        self.entities.invalidate(&(table, id));
    }

    pub(crate) fn clear_entities(&self) {
        self.entities.invalidate_all();
    }

    /// The pool name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value under `key`, if present and of type `T`.
    pub fn get<T: Clone + Send + Sync + 'static>(&self, key: &str) -> Option<T> {
        self.cache.get(key)?.downcast_ref::<T>().cloned()
    }

    /// Stores `value` under `key`.
    pub fn set<T: Send + Sync + 'static>(&self, key: &str, value: T) {
        self.cache.insert(key.to_string(), Arc::new(value));
    }

    /// The value under `key`, computing and storing it on a miss.
    pub fn get_set<T: Clone + Send + Sync + 'static>(
        &self,
        key: &str,
        provider: impl FnOnce() -> T,
    ) -> T {
        if let Some(v) = self.get(key) {
            return v;
        }
        let v = provider();
        self.set(key, v.clone());
        v
    }

    /// Removes `key`.
    pub fn remove(&self, key: &str) {
        self.cache.invalidate(key);
    }

    /// Removes everything.
    pub fn clear(&self) {
        self.cache.invalidate_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_wrong_types_miss() {
        let c = LocalCache::new("t", 10);
        c.set("a", 5u32);
        assert_eq!(c.get::<u32>("a"), Some(5));
        assert_eq!(c.get::<String>("a"), None);
        assert_eq!(c.get_set("b", || "x".to_string()), "x");
        assert_eq!(c.get_set("b", || "y".to_string()), "x");
        c.remove("a");
        assert_eq!(c.get::<u32>("a"), None);
        c.clear();
        assert_eq!(c.get::<String>("b"), None);
    }
}
