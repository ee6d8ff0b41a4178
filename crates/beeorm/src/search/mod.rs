#![doc = include_str!("../../docs/search.md")]

pub(crate) mod alters;
mod api;
pub(crate) mod backend;
pub(crate) mod compile;
pub(crate) mod document;
pub(crate) mod pools;
pub(crate) mod query;
#[cfg(feature = "redis")]
pub(crate) mod redisearch;
pub(crate) mod sync;
#[cfg(feature = "tantivy")]
pub(crate) mod tantivy;

use std::ops::Bound;

/// How a field is indexed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum SearchFieldKind {
    /// Full text: tokenised (Unicode letters and digits; lower-cased), ranked (BM25).
    Text,
    /// A number (integers, floats, decimals, dates and date-times as Unix seconds):
    /// range filters and sort.
    Numeric,
    /// Exact values (booleans, enums, sets, short codes): `any of` filters and sort.
    Tag,
}

/// One indexed field of an entity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct SearchField {
    /// The column name (the key in documents, filters and sorts).
    pub name: String,
    /// How it is indexed.
    pub kind: SearchFieldKind,
    /// Whether results can be sorted by it.
    pub sortable: bool,
}

/// An entity's search index: built by `Registry::validate` from `#[orm(search)]` and
/// the fields' `searchable` / `sortable` attributes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct SearchIndex {
    /// The index name: the entity's table, with the cache namespace as a prefix when
    /// one is set (`<namespace>_<table>`); ASCII letters, digits and `_`.
    pub name: String,
    /// The search pool it lives in.
    pub pool: String,
    /// The indexed fields, in declaration order.
    pub fields: Vec<SearchField>,
}

impl SearchIndex {
    /// The field called `name`, with its position.
    pub fn field(&self, name: &str) -> Option<(usize, &SearchField)> {
        self.fields.iter().enumerate().find(|(_, f)| f.name == name)
    }

    /// A stable text form of the definition (JSON), stored with the index when it is
    /// created so a changed definition is detected (and the index rebuilt).
    pub(crate) fn fingerprint(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The order of a sorted search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOrder {
    /// Smallest first.
    Asc,
    /// Largest first.
    Desc,
}

/// A search: query text (the common language, see the module docs), filters, a sort
/// and a page. Build with [`SearchQuery::new`] and the builder methods.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchQuery {
    pub(crate) text: String,
    pub(crate) ranges: Vec<(String, Bound<f64>, Bound<f64>)>,
    pub(crate) tags: Vec<(String, Vec<String>)>,
    pub(crate) sort: Option<(String, SortOrder)>,
}

impl SearchQuery {
    /// A search for `text` (empty: every document).
    pub fn new(text: impl Into<String>) -> Self {
        SearchQuery {
            text: text.into(),
            ..SearchQuery::default()
        }
    }

    /// Only documents whose numeric `field` lies in `range` (`10.0..20.0`,
    /// `18.0..=30.0`, `..5.0`, …).
    pub fn range(mut self, field: &str, range: impl std::ops::RangeBounds<f64>) -> Self {
        self.ranges.push((
            field.to_string(),
            range.start_bound().cloned(),
            range.end_bound().cloned(),
        ));
        self
    }

    /// Only documents whose tag `field` holds one of `values`.
    pub fn tags<S: AsRef<str>>(mut self, field: &str, values: &[S]) -> Self {
        self.tags.push((
            field.to_string(),
            values.iter().map(|v| v.as_ref().to_string()).collect(),
        ));
        self
    }

    /// Sort by a `sortable` field instead of by relevance.
    pub fn sort_by(mut self, field: &str, order: SortOrder) -> Self {
        self.sort = Some((field.to_string(), order));
        self
    }
}

/// The IDs of one page of a search, best first (or in sort order), and how many
/// documents match in all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchHits {
    /// The page's entity IDs.
    pub ids: Vec<u64>,
    /// Every match, across pages.
    pub total: u64,
}

/// Progress of a reindex: rows written so far of how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReindexProgress {
    /// Rows indexed so far.
    pub done: u64,
    /// Rows to index (counted when the reindex started).
    pub total: u64,
}
