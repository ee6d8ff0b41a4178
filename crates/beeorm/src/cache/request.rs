//! The request cache's storage (D6): one engine's rows by entity type and ID, and
//! the data loader's open batches. The read path (`load/request.rs`) fills and reads
//! it; the write path empties it after the engine's own writes.

use std::any::TypeId;
use std::sync::{Arc, Mutex};

use rustc_hash::FxHashMap;

use crate::Value;

/// What the request cache holds for one ID: the row, or `None` (no live row).
pub(crate) type Slot = Option<Arc<[Value]>>;

/// A batch of the data loader: IDs gathered from concurrent callers.
pub(crate) struct Batch {
    pub(crate) ids: Mutex<Vec<u64>>,
    pub(crate) done: tokio::sync::Notify,
    pub(crate) finished: std::sync::atomic::AtomicBool,
}

/// One engine's request cache (and data loader).
#[derive(Default)]
pub(crate) struct RequestCache {
    rows: Mutex<FxHashMap<(TypeId, u64), Slot>>,
    pub(crate) loader: Option<Mutex<FxHashMap<TypeId, Arc<Batch>>>>,
}

impl std::fmt::Debug for RequestCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestCache")
            .field("data_loader", &self.loader.is_some())
            .finish()
    }
}

impl RequestCache {
    pub(crate) fn new(data_loader: bool) -> Self {
        RequestCache {
            rows: Mutex::default(),
            loader: data_loader.then(Mutex::default),
        }
    }

    /// Forgets every row (the engine wrote something).
    pub(crate) fn clear(&self) {
        if let Ok(mut rows) = self.rows.lock() {
            rows.clear();
        }
    }

    pub(crate) fn get(&self, ty: TypeId, id: u64) -> Option<Slot> {
        self.rows.lock().ok()?.get(&(ty, id)).cloned()
    }

    pub(crate) fn put_rows(&self, ty: TypeId, rows: impl IntoIterator<Item = (u64, Slot)>) {
        if let Ok(mut map) = self.rows.lock() {
            for (id, row) in rows {
                map.insert((ty, id), row);
            }
        }
    }
}
