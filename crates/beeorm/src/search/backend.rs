//! The one trait both search engines implement (RediSearch, tantivy), and what
//! crosses it: documents to write and compiled queries to run. Everything is
//! validated before it gets here (fields exist and have the right kind, the query
//! text parsed): a backend translates, it does not check.

use std::ops::Bound;

use super::query::QueryNode;
use super::{SearchHits, SearchIndex, SortOrder};
use crate::hooks::BoxFuture;
use crate::Result;

/// One field value of a document.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum DocValue {
    /// Text of a `Text` field (already Persian-normalised when the normaliser is on).
    Text(String),
    /// A `Numeric` field.
    Number(f64),
    /// The values of a `Tag` field (one for a scalar, several for a set).
    Tags(Vec<String>),
}

/// One entity's document: its ID and its indexed fields (by position in
/// [`SearchIndex::fields`]; a NULL field is absent).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Doc {
    pub id: u64,
    pub fields: Vec<(usize, DocValue)>,
}

/// A filter, by field position in [`SearchIndex::fields`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Filter {
    /// A numeric field within bounds.
    Range {
        field: usize,
        min: Bound<f64>,
        max: Bound<f64>,
    },
    /// A tag field holding any of the values.
    AnyTag { field: usize, values: Vec<String> },
}

/// A validated search, ready for a backend.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CompiledQuery {
    /// The parsed text; `None` matches every document.
    pub text: Option<QueryNode>,
    /// All must hold.
    pub filters: Vec<Filter>,
    /// By field position; `None`: by relevance (BM25), best first.
    pub sort: Option<(usize, SortOrder)>,
    /// Page start (documents to skip).
    pub offset: u64,
    /// Page size.
    pub limit: u64,
}

/// A search engine holding the indexes of one search pool.
///
/// Every call has a timeout of its own (the backend's I/O timeout); blocking work
/// (tantivy) runs off the async workers. Writes are idempotent: writing a document
/// replaces the one with the same ID, deleting a missing ID is not an error.
pub(crate) trait SearchBackend: Send + Sync + std::fmt::Debug {
    /// What the pool is, for messages and alters: `tantivy at /path`, `RediSearch on
    /// Redis pool `search``.
    fn describe(&self) -> String;

    /// The engine's own command that creates `index`, shown in alters (`FT.CREATE …`
    /// on RediSearch); `None` (the default) when the engine has no command language
    /// (tantivy): the alter then describes the index in words.
    fn create_statement(&self, index: &SearchIndex) -> Option<String> {
        let _ = index;
        None
    }

    /// The names of the indexes this pool holds (created by beeorm).
    fn list(&self) -> BoxFuture<'_, Result<Vec<String>>>;

    /// The fingerprint ([`SearchIndex::fingerprint`]) stored when index `name` was
    /// created; `None` when there is no such index.
    fn stored_fingerprint<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<String>>>;

    /// Creates the index (empty), replacing one of the same name, and stores its
    /// fingerprint.
    fn create<'a>(&'a self, index: &'a SearchIndex) -> BoxFuture<'a, Result<()>>;

    /// Drops index `name` and its documents; a missing index is not an error.
    fn drop_index<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>>;

    /// Writes documents (replacing same IDs) and deletes IDs, as one batch; when it
    /// returns `Ok` a search sees the batch.
    fn write<'a>(
        &'a self,
        index: &'a SearchIndex,
        docs: &'a [Doc],
        deletes: &'a [u64],
    ) -> BoxFuture<'a, Result<()>>;

    /// Runs a search: one page of IDs and the total.
    fn search<'a>(
        &'a self,
        index: &'a SearchIndex,
        query: &'a CompiledQuery,
    ) -> BoxFuture<'a, Result<SearchHits>>;

    /// How many documents the index holds (tests, stats, reindex checks).
    fn count<'a>(&'a self, index: &'a SearchIndex) -> BoxFuture<'a, Result<u64>>;
}
