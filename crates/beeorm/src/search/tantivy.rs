//! The embedded search engine: [tantivy](https://docs.rs/tantivy), one tantivy index
//! per [`SearchIndex`], in RAM or in `<dir>/<index name>/`.
//!
//! Why embedded: an application with no search server still gets full-text search
//! (the default search pool is tantivy in RAM), and a directory keeps the indexes
//! across restarts without another service to run.
//!
//! How the common semantics map onto tantivy:
//! * **Schema.** `id` (u64: indexed, fast, stored) is the entity ID and the key of
//!   replace/delete. A `Text` field `f_<name>` is tokenised by the `beeorm` analyser
//!   (runs of Unicode letters and digits, lower-cased; no stemming, no stop words)
//!   with positions (phrases); a sortable one also gets `s_<name>`, a fast-only
//!   string column holding the whole value lower-cased (text sorts by it). A
//!   `Numeric` field is an f64 (indexed and fast: range filters and sort). A `Tag`
//!   field is a raw string per value (exact and case-sensitive: a value matches only
//!   as given, spaces and punctuation included), fast when sortable.
//! * **Writes.** One `IndexWriter` per index, opened on the first write and kept,
//!   behind a mutex. A batch adds every document after deleting its ID, then deletes
//!   the `deletes` (a delete in the same batch as a write of that ID wins), commits
//!   and reloads the reader, so the next search sees it. On any error the batch is
//!   rolled back (nothing of it is committed later by accident).
//! * **Blocking work** (tantivy, the file system) runs in `spawn_blocking` under a
//!   timeout. A dropped future does not stop it: a started batch still commits and
//!   then releases the writer; nothing is left locked or half-written.
//! * **Search.** Terms, prefixes (a regex on the term dictionary), phrases (adjacent,
//!   in order), `And`/`Or`/`Not` as boolean queries; with no `@field`, a node matches
//!   in any text field. Filters are required clauses that score 0 (numeric ranges on
//!   the f64 column; tags any-of as a term set). Relevance is tantivy's BM25; ties
//!   (and equal sort keys) go by ID ascending. A document without the sort field
//!   comes last in both orders. A multi-valued tag sorts by its smallest value.
//! * **On disk** the fingerprint is `<dir>/<name>/beeorm-index.json`, written after
//!   the index itself (and removed first on drop): a directory holding it is a
//!   complete beeorm index. One process at a time may write a directory (tantivy's
//!   writer lock); other processes reading it see the state of when they opened it.

use std::collections::HashMap;
use std::fmt;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ::tantivy::collector::sort_key::{SortBySimilarityScore, SortByStaticFastValue, SortByString};
use ::tantivy::collector::{Collector, Count, TopDocs};
use ::tantivy::directory::MmapDirectory;
use ::tantivy::indexer::IndexWriterOptions;
use ::tantivy::query::{
    AllQuery, BitSetDocSet, BooleanQuery, ConstScoreQuery, ConstScorer, EmptyQuery, EnableScoring,
    ExistsQuery, Explanation, Occur, PhraseQuery, Query, RangeQuery, RegexQuery, Scorer, TermQuery,
    TermSetQuery, Weight,
};
use ::tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST, INDEXED, STORED, STRING,
};
use ::tantivy::tokenizer::{LowerCaser, SimpleTokenizer, TextAnalyzer};
use ::tantivy::{
    BitSet, DocAddress, DocId, Index, IndexReader, IndexSettings, IndexWriter, Order, ReloadPolicy,
    Score, Searcher, SegmentReader, TantivyDocument, Term,
};

use super::backend::{CompiledQuery, Doc, DocValue, Filter, SearchBackend};
use super::query::QueryNode;
use super::{SearchFieldKind, SearchHits, SearchIndex, SortOrder};
use crate::hooks::BoxFuture;
use crate::{Error, Result};

/// The file next to an on-disk index holding its fingerprint.
const FINGERPRINT_FILE: &str = "beeorm-index.json";
/// The name the text analyser is registered under in every index.
const TOKENIZER: &str = "beeorm";
/// The entity ID field.
const ID: &str = "id";
/// The indexing memory of one writer (one indexing thread); tantivy's minimum is 15 MB.
const WRITER_MEMORY: usize = 32_000_000;
/// How long one operation (a batch write with its commit, a search) may take.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// A tantivy search pool: the indexes of one search pool, in RAM or in a directory.
#[derive(Clone)]
pub(crate) struct TantivyBackend {
    inner: Arc<Inner>,
}

struct Inner {
    pool: String,
    /// `None`: in RAM.
    dir: Option<PathBuf>,
    /// The indexes opened so far (all of them in RAM), by name.
    open: Mutex<HashMap<String, Arc<OpenIndex>>>,
    timeout: Duration,
}

/// One opened tantivy index.
struct OpenIndex {
    index: Index,
    reader: IndexReader,
    /// Opened on the first write (a read-only user takes no directory lock).
    writer: Mutex<Option<IndexWriter>>,
    fingerprint: String,
    id: Field,
}

impl fmt::Debug for TantivyBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TantivyBackend")
            .field("pool", &self.inner.pool)
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

impl TantivyBackend {
    /// A tantivy pool named `pool`: in RAM (`dir` `None`) or in `dir`, which is
    /// created when missing. A `dir` that cannot be created or is not a directory is
    /// [`Error::Search`].
    pub(crate) fn open(pool: &str, dir: Option<&Path>) -> Result<TantivyBackend> {
        if let Some(dir) = dir {
            let fail = |what: String| Error::Search {
                pool: pool.to_string(),
                index: String::new(),
                reason: what,
            };
            std::fs::create_dir_all(dir)
                .map_err(|e| fail(format!("cannot create directory {}: {e}", dir.display())))?;
            let meta = std::fs::metadata(dir)
                .map_err(|e| fail(format!("cannot open directory {}: {e}", dir.display())))?;
            if !meta.is_dir() {
                return Err(fail(format!("{} is not a directory", dir.display())));
            }
        }
        Ok(TantivyBackend {
            inner: Arc::new(Inner {
                pool: pool.to_string(),
                dir: dir.map(Path::to_path_buf),
                open: Mutex::new(HashMap::new()),
                timeout: DEFAULT_TIMEOUT,
            }),
        })
    }

    /// Runs `f` on a blocking thread under the timeout. The task runs to its end even
    /// when the returned future is dropped.
    fn run<T: Send + 'static>(
        &self,
        index: &str,
        what: &'static str,
        f: impl FnOnce(&Inner) -> Result<T> + Send + 'static,
    ) -> BoxFuture<'static, Result<T>> {
        let inner = Arc::clone(&self.inner);
        let pool = inner.pool.clone();
        let limit = inner.timeout;
        let index = index.to_string();
        Box::pin(async move {
            let task = tokio::task::spawn_blocking(move || f(&inner));
            let reason = match tokio::time::timeout(limit, task).await {
                Ok(Ok(result)) => return result,
                Ok(Err(e)) => format!("{what} failed: {e}"),
                Err(_) => {
                    format!("{what} did not finish within {limit:?} (it goes on in the background)")
                }
            };
            Err(Error::Search {
                pool,
                index,
                reason,
            })
        })
    }
}

impl Inner {
    fn error(&self, index: &str, reason: impl fmt::Display) -> Error {
        Error::Search {
            pool: self.pool.clone(),
            index: index.to_string(),
            reason: reason.to_string(),
        }
    }

    /// Index names become directory names: only ASCII letters, digits and `_`.
    fn check_name(&self, name: &str) -> Result<()> {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(self.error(
                name,
                "invalid index name (ASCII letters, digits and `_` only)",
            ));
        }
        Ok(())
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<OpenIndex>>> {
        // The map is only ever inserted into or removed from: it stays consistent
        // even if a holder panicked.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn index_dir(&self, name: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(name))
    }

    /// The index `name`, opened from disk when not yet open; `None` when missing.
    fn get(&self, name: &str) -> Result<Option<Arc<OpenIndex>>> {
        self.check_name(name)?;
        let mut map = self.map();
        if let Some(open) = map.get(name) {
            return Ok(Some(Arc::clone(open)));
        }
        let Some(path) = self.index_dir(name) else {
            return Ok(None);
        };
        let Some(fingerprint) = self.read_fingerprint(name, &path)? else {
            return Ok(None);
        };
        let directory = MmapDirectory::open(&path)
            .map_err(|e| self.error(name, format!("cannot open {}: {e}", path.display())))?;
        let index = Index::open(directory)
            .map_err(|e| self.error(name, format!("cannot open {}: {e}", path.display())))?;
        let open = Arc::new(self.prepare(name, index, fingerprint)?);
        map.insert(name.to_string(), Arc::clone(&open));
        Ok(Some(open))
    }

    /// The index `name`, or an error saying it does not exist.
    fn require(&self, name: &str) -> Result<Arc<OpenIndex>> {
        self.get(name)?.ok_or_else(|| {
            self.error(
                name,
                "no such index (create it: run the search index alters)",
            )
        })
    }

    /// Registers the analyser and opens a reader.
    fn prepare(&self, name: &str, index: Index, fingerprint: String) -> Result<OpenIndex> {
        index.tokenizers().register(
            TOKENIZER,
            TextAnalyzer::builder(SimpleTokenizer::default())
                .filter(LowerCaser)
                .build(),
        );
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|e| self.error(name, format!("cannot open a reader: {e}")))?;
        let id = index
            .schema()
            .get_field(ID)
            .map_err(|e| self.error(name, format!("not a beeorm index: {e}")))?;
        Ok(OpenIndex {
            index,
            reader,
            writer: Mutex::new(None),
            fingerprint,
            id,
        })
    }

    fn read_fingerprint(&self, name: &str, path: &Path) -> Result<Option<String>> {
        let file = path.join(FINGERPRINT_FILE);
        match std::fs::read_to_string(&file) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            // `<dir>/<name>` is a file: no index of that name.
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Ok(None),
            Err(e) => Err(self.error(name, format!("cannot read {}: {e}", file.display()))),
        }
    }

    fn list(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = match &self.dir {
            None => self.map().keys().cloned().collect(),
            Some(dir) => {
                let entries = std::fs::read_dir(dir)
                    .map_err(|e| self.error("", format!("cannot list {}: {e}", dir.display())))?;
                let mut names = Vec::new();
                for entry in entries {
                    let entry = entry.map_err(|e| {
                        self.error("", format!("cannot list {}: {e}", dir.display()))
                    })?;
                    let Ok(name) = entry.file_name().into_string() else {
                        continue;
                    };
                    if self.check_name(&name).is_ok()
                        && entry.path().join(FINGERPRINT_FILE).is_file()
                    {
                        names.push(name);
                    }
                }
                names
            }
        };
        names.sort();
        Ok(names)
    }

    fn fingerprint(&self, name: &str) -> Result<Option<String>> {
        self.check_name(name)?;
        if let Some(open) = self.map().get(name) {
            return Ok(Some(open.fingerprint.clone()));
        }
        match self.index_dir(name) {
            Some(path) => self.read_fingerprint(name, &path),
            None => Ok(None),
        }
    }

    fn create(&self, def: &SearchIndex) -> Result<()> {
        let name = def.name.as_str();
        self.check_name(name)?;
        let schema = schema_for(def);
        let fingerprint = def.fingerprint();
        let mut map = self.map();
        map.remove(name);
        let index = match self.index_dir(name) {
            None => Index::create_in_ram(schema),
            Some(path) => {
                self.remove_dir(name, &path)?;
                let io = |e: std::io::Error| {
                    self.error(name, format!("cannot create {}: {e}", path.display()))
                };
                std::fs::create_dir_all(&path).map_err(io)?;
                let directory = MmapDirectory::open(&path).map_err(|e| {
                    self.error(name, format!("cannot open {}: {e}", path.display()))
                })?;
                let index = Index::create(directory, schema, IndexSettings::default())
                    .map_err(|e| self.error(name, format!("cannot create the index: {e}")))?;
                // The fingerprint last, atomically: its presence means a whole index.
                let tmp = path.join(format!("{FINGERPRINT_FILE}.tmp"));
                std::fs::write(&tmp, &fingerprint).map_err(io)?;
                std::fs::rename(&tmp, path.join(FINGERPRINT_FILE)).map_err(io)?;
                index
            }
        };
        let open = self.prepare(name, index, fingerprint)?;
        map.insert(name.to_string(), Arc::new(open));
        Ok(())
    }

    /// Removes an index directory: the fingerprint first (so a half-removed
    /// directory is no longer listed), then the rest. Missing is fine.
    fn remove_dir(&self, name: &str, path: &Path) -> Result<()> {
        let io =
            |e: std::io::Error| self.error(name, format!("cannot remove {}: {e}", path.display()));
        if std::fs::symlink_metadata(path).is_err() {
            return Ok(());
        }
        match std::fs::remove_file(path.join(FINGERPRINT_FILE)) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) => {}
            Err(e) => return Err(io(e)),
        }
        std::fs::remove_dir_all(path).map_err(io)
    }

    fn drop_index(&self, name: &str) -> Result<()> {
        self.check_name(name)?;
        let mut map = self.map();
        map.remove(name);
        if let Some(path) = self.index_dir(name) {
            if path.join(FINGERPRINT_FILE).is_file() {
                self.remove_dir(name, &path)?;
            }
        }
        Ok(())
    }

    fn write(&self, def: &SearchIndex, docs: &[Doc], deletes: &[u64]) -> Result<()> {
        let name = def.name.as_str();
        let open = self.require(name)?;
        let slots = self.slots(def, &open)?;
        let mut batch = Vec::with_capacity(docs.len());
        for doc in docs {
            batch.push((doc.id, self.document(def, &slots, open.id, doc)?));
        }
        let mut writer = match open.writer.lock() {
            Ok(guard) => guard,
            Err(poisoned) => {
                // A panic in an earlier batch: drop what it left pending.
                let mut guard = poisoned.into_inner();
                if let Some(w) = guard.as_mut() {
                    let _ = w.rollback();
                }
                open.writer.clear_poison();
                guard
            }
        };
        if writer.is_none() {
            // One indexing and one merge thread per index: an application has an
            // index per searchable entity, and batches are small.
            let options = IndexWriterOptions::builder()
                .memory_budget_per_thread(WRITER_MEMORY)
                .num_worker_threads(1)
                .num_merge_threads(1)
                .build();
            let w = open
                .index
                .writer_with_options(options)
                .map_err(|e| self.error(name, format!("cannot open the index writer: {e}")))?;
            *writer = Some(w);
        }
        let Some(w) = writer.as_mut() else {
            return Err(self.error(name, "the index writer is missing"));
        };
        let result = (|| -> ::tantivy::Result<()> {
            for (id, doc) in batch {
                w.delete_term(Term::from_field_u64(open.id, id));
                w.add_document(doc)?;
            }
            for &id in deletes {
                w.delete_term(Term::from_field_u64(open.id, id));
            }
            w.commit()?;
            Ok(())
        })();
        if let Err(e) = result {
            let _ = w.rollback();
            return Err(self.error(name, format!("write failed: {e}")));
        }
        drop(writer);
        open.reader
            .reload()
            .map_err(|e| self.error(name, format!("reader reload failed: {e}")))
    }

    /// The tantivy fields of `def`'s fields, by position; the index must have been
    /// created from the same definition.
    fn slots(&self, def: &SearchIndex, open: &OpenIndex) -> Result<Vec<Slot>> {
        let expected = schema_for(def);
        if open.index.schema() != expected {
            return Err(self.error(
                &def.name,
                "the index was created from another definition (rebuild it: run the search index alters)",
            ));
        }
        let field = |name: String| {
            expected
                .get_field(&name)
                .map_err(|e| self.error(&def.name, e))
        };
        def.fields
            .iter()
            .map(|f| {
                let main = field(format!("f_{}", f.name))?;
                Ok(match f.kind {
                    SearchFieldKind::Text => Slot::Text {
                        field: main,
                        sort: if f.sortable {
                            Some(field(format!("s_{}", f.name))?)
                        } else {
                            None
                        },
                    },
                    SearchFieldKind::Numeric => Slot::Numeric(main),
                    SearchFieldKind::Tag => Slot::Tag(main),
                })
            })
            .collect()
    }

    fn document(
        &self,
        def: &SearchIndex,
        slots: &[Slot],
        id_field: Field,
        doc: &Doc,
    ) -> Result<TantivyDocument> {
        let mut out = TantivyDocument::new();
        out.add_u64(id_field, doc.id);
        for (pos, value) in &doc.fields {
            match (slots.get(*pos), value) {
                (Some(Slot::Text { field, sort }), DocValue::Text(text)) => {
                    out.add_text(*field, text);
                    if let Some(sort) = sort {
                        out.add_text(*sort, text.to_lowercase());
                    }
                }
                (Some(Slot::Numeric(field)), DocValue::Number(n)) => out.add_f64(*field, *n),
                (Some(Slot::Tag(field)), DocValue::Tags(values)) => {
                    for v in values {
                        out.add_text(*field, v);
                    }
                }
                (slot, value) => {
                    let field = def.fields.get(*pos).map_or("?", |f| f.name.as_str());
                    let reason = match slot {
                        None => format!("document {}: no field at position {pos}", doc.id),
                        Some(_) => {
                            format!("document {}: field `{field}` cannot hold {value:?}", doc.id)
                        }
                    };
                    return Err(self.error(&def.name, reason));
                }
            }
        }
        Ok(out)
    }

    fn search(&self, def: &SearchIndex, q: &CompiledQuery) -> Result<SearchHits> {
        let name = def.name.as_str();
        let open = self.require(name)?;
        let slots = self.slots(def, &open)?;
        let query = self.query(def, &slots, q)?;
        let searcher = open.reader.searcher();
        let failed = |e: ::tantivy::TantivyError| self.error(name, format!("search failed: {e}"));
        let num_docs = searcher.num_docs();
        let offset = q.offset.min(num_docs);
        // Never ask for more than there is: the top-N buffer is sized by the limit.
        let limit = q.limit.min(num_docs - offset);
        if limit == 0 {
            let total = searcher.search(&query, &Count).map_err(failed)?;
            return Ok(SearchHits {
                ids: Vec::new(),
                total: total as u64,
            });
        }
        // Both fit in usize: they are at most the number of documents (a u32 per segment).
        let range = usize::try_from(offset).unwrap_or(usize::MAX)
            ..usize::try_from(offset + limit).unwrap_or(usize::MAX);
        let top = TopDocs::for_doc_range(range);
        let by_id = || (SortByStaticFastValue::<u64>::for_field(ID), Order::Asc);
        let (total, ids) = match q.sort {
            None => collect(
                &searcher,
                &query,
                top.order_by(((SortBySimilarityScore, Order::Desc), by_id())),
            ),
            Some((pos, order)) => {
                let order = match order {
                    SortOrder::Asc => Order::Asc,
                    SortOrder::Desc => Order::Desc,
                };
                let field = def.fields.get(pos).map_or("?", |f| f.name.as_str());
                match slots.get(pos) {
                    Some(Slot::Numeric(_)) => collect(
                        &searcher,
                        &query,
                        top.order_by((
                            (
                                SortByStaticFastValue::<f64>::for_field(format!("f_{field}")),
                                order,
                            ),
                            by_id(),
                        )),
                    ),
                    Some(Slot::Tag(_)) if def.fields.get(pos).is_some_and(|f| f.sortable) => {
                        collect(
                            &searcher,
                            &query,
                            top.order_by((
                                (SortByString::for_field(format!("f_{field}")), order),
                                by_id(),
                            )),
                        )
                    }
                    Some(Slot::Text { sort: Some(_), .. }) => collect(
                        &searcher,
                        &query,
                        top.order_by((
                            (SortByString::for_field(format!("s_{field}")), order),
                            by_id(),
                        )),
                    ),
                    _ => {
                        return Err(self.error(
                            name,
                            format!("field `{field}` (position {pos}) is not sortable"),
                        ))
                    }
                }
            }
        }
        .map_err(failed)?;
        Ok(SearchHits {
            ids,
            total: total as u64,
        })
    }

    /// The whole query: the text (or every document) and the filters.
    fn query(
        &self,
        def: &SearchIndex,
        slots: &[Slot],
        q: &CompiledQuery,
    ) -> Result<Box<dyn Query>> {
        let all_text: Vec<Field> = slots
            .iter()
            .filter_map(|s| match s {
                Slot::Text { field, .. } => Some(*field),
                _ => None,
            })
            .collect();
        let text: Box<dyn Query> = match &q.text {
            None => Box::new(AllQuery),
            Some(node) => self.render(def, slots, node, &all_text)?,
        };
        if q.filters.is_empty() {
            return Ok(text);
        }
        let mut clauses = vec![(Occur::Must, text)];
        for filter in &q.filters {
            let f = self.filter(def, slots, filter)?;
            // Filters restrict, they do not score.
            clauses.push((Occur::Must, Box::new(ConstScoreQuery::new(f, 0.0))));
        }
        Ok(Box::new(BooleanQuery::new(clauses)))
    }

    fn filter(&self, def: &SearchIndex, slots: &[Slot], filter: &Filter) -> Result<Box<dyn Query>> {
        match filter {
            Filter::Range { field, min, max } => {
                let Some(Slot::Numeric(f)) = slots.get(*field) else {
                    return Err(self.not_kind(def, *field, "a numeric"));
                };
                let f = *f;
                if matches!((min, max), (Bound::Unbounded, Bound::Unbounded)) {
                    // Every document that has the field.
                    let name = format!("f_{}", def.fields[*field].name);
                    return Ok(Box::new(ExistsQuery::new(name, false)));
                }
                let term = |v: &f64| Term::from_field_f64(f, *v);
                Ok(Box::new(RangeQuery::new(
                    min.as_ref().map(term),
                    max.as_ref().map(term),
                )))
            }
            Filter::AnyTag { field, values } => {
                let Some(Slot::Tag(f)) = slots.get(*field) else {
                    return Err(self.not_kind(def, *field, "a tag"));
                };
                if values.is_empty() {
                    return Ok(Box::new(EmptyQuery));
                }
                let f = *f;
                Ok(Box::new(TermSetQuery::new(
                    values.iter().map(|v| Term::from_field_text(f, v)),
                )))
            }
        }
    }

    fn not_kind(&self, def: &SearchIndex, pos: usize, kind: &str) -> Error {
        let field = def.fields.get(pos).map_or("?", |f| f.name.as_str());
        self.error(
            &def.name,
            format!("field `{field}` (position {pos}) is not {kind} field"),
        )
    }

    /// A text query node over `fields` (a match in any of them).
    fn render(
        &self,
        def: &SearchIndex,
        slots: &[Slot],
        node: &QueryNode,
        fields: &[Field],
    ) -> Result<Box<dyn Query>> {
        let per_field = |make: &dyn Fn(Field) -> Result<Box<dyn Query>>| -> Result<Box<dyn Query>> {
            let mut queries = fields
                .iter()
                .map(|f| make(*f))
                .collect::<Result<Vec<_>>>()?;
            Ok(match queries.len() {
                0 => Box::new(EmptyQuery),
                1 => queries.remove(0),
                _ => Box::new(BooleanQuery::union(queries)),
            })
        };
        match node {
            QueryNode::Term(t) => per_field(&|f| {
                Ok(Box::new(TermQuery::new(
                    Term::from_field_text(f, t),
                    IndexRecordOption::WithFreqs,
                )))
            }),
            QueryNode::Prefix(p) => {
                let pattern = format!("{}.*", regex_escape(p));
                per_field(&|f| {
                    RegexQuery::from_pattern(&pattern, f)
                        .map(|q| Box::new(q) as Box<dyn Query>)
                        .map_err(|e| self.error(&def.name, format!("prefix `{p}`: {e}")))
                })
            }
            QueryNode::Phrase(terms) => match terms.as_slice() {
                [] => Ok(Box::new(EmptyQuery)),
                [one] => self.render(def, slots, &QueryNode::Term(one.clone()), fields),
                _ => per_field(&|f| {
                    Ok(Box::new(PhraseQuery::new(
                        terms.iter().map(|t| Term::from_field_text(f, t)).collect(),
                    )))
                }),
            },
            QueryNode::And(nodes) => {
                let mut clauses = Vec::with_capacity(nodes.len());
                for n in nodes {
                    clauses.push(match n {
                        QueryNode::Not(inner) => {
                            (Occur::MustNot, self.negated(def, slots, inner, fields)?)
                        }
                        other => (Occur::Must, self.render(def, slots, other, fields)?),
                    });
                }
                if !clauses.iter().any(|(o, _)| *o == Occur::Must) {
                    // Only negations: they exclude from every document.
                    clauses.push((Occur::Must, Box::new(AllQuery)));
                }
                Ok(Box::new(BooleanQuery::new(clauses)))
            }
            QueryNode::Or(nodes) => {
                if nodes.is_empty() {
                    return Ok(Box::new(EmptyQuery));
                }
                let queries = nodes
                    .iter()
                    .map(|n| self.render(def, slots, n, fields))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Box::new(BooleanQuery::union(queries)))
            }
            QueryNode::Not(inner) => Ok(Box::new(BooleanQuery::new(vec![
                (Occur::Must, Box::new(AllQuery) as Box<dyn Query>),
                (Occur::MustNot, self.negated(def, slots, inner, fields)?),
            ]))),
            QueryNode::Field(pos, inner) => match slots.get(*pos) {
                Some(Slot::Text { field, .. }) => self.render(def, slots, inner, &[*field]),
                _ => Err(self.not_kind(def, *pos, "a text")),
            },
        }
    }

    /// The query of a negated node (a `MustNot` clause). One holding a phrase is
    /// collected up front: tantivy 0.27's phrase scorer, probed by an exclusion, trips
    /// a debug assertion (tantivy issue #2811: a panic in debug builds).
    fn negated(
        &self,
        def: &SearchIndex,
        slots: &[Slot],
        node: &QueryNode,
        fields: &[Field],
    ) -> Result<Box<dyn Query>> {
        let query = self.render(def, slots, node, fields)?;
        Ok(if has_phrase(node) {
            Box::new(Collected(query))
        } else {
            query
        })
    }

    fn count(&self, name: &str) -> Result<u64> {
        let open = self.require(name)?;
        Ok(open.reader.searcher().num_docs())
    }
}

/// The tantivy fields of one [`SearchIndex`] field.
enum Slot {
    Text { field: Field, sort: Option<Field> },
    Numeric(Field),
    Tag(Field),
}

/// Whether a node holds a phrase of two or more terms.
fn has_phrase(node: &QueryNode) -> bool {
    match node {
        QueryNode::Phrase(terms) => terms.len() > 1,
        QueryNode::Term(_) | QueryNode::Prefix(_) => false,
        QueryNode::And(nodes) | QueryNode::Or(nodes) => nodes.iter().any(has_phrase),
        QueryNode::Not(inner) | QueryNode::Field(_, inner) => has_phrase(inner),
    }
}

/// The documents of a query, collected into a bit set per segment (no scores). A
/// bit set answers any probe, in any order.
#[derive(Debug)]
struct Collected(Box<dyn Query>);

impl Clone for Collected {
    fn clone(&self) -> Self {
        Collected(self.0.box_clone())
    }
}

impl Query for Collected {
    fn weight(&self, scoring: EnableScoring<'_>) -> ::tantivy::Result<Box<dyn Weight>> {
        let inner = self
            .0
            .weight(EnableScoring::disabled_from_schema(scoring.schema()))?;
        Ok(Box::new(CollectedWeight(inner)))
    }
}

struct CollectedWeight(Box<dyn Weight>);

impl Weight for CollectedWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> ::tantivy::Result<Box<dyn Scorer>> {
        let mut docs = BitSet::with_max_value(reader.max_doc());
        self.0.for_each_no_score(reader, &mut |found| {
            for &doc in found {
                docs.insert(doc);
            }
        })?;
        Ok(Box::new(ConstScorer::new(BitSetDocSet::from(docs), boost)))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> ::tantivy::Result<Explanation> {
        self.0.explain(reader, doc)
    }
}

/// The tantivy schema of an index definition (see the module docs).
fn schema_for(def: &SearchIndex) -> Schema {
    let mut b = Schema::builder();
    b.add_u64_field(ID, INDEXED | FAST | STORED);
    let text = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    for f in &def.fields {
        let name = format!("f_{}", f.name);
        match f.kind {
            SearchFieldKind::Text => {
                b.add_text_field(&name, text.clone());
                if f.sortable {
                    b.add_text_field(
                        &format!("s_{}", f.name),
                        TextOptions::default().set_fast("raw"),
                    );
                }
            }
            SearchFieldKind::Numeric => {
                b.add_f64_field(&name, INDEXED | FAST);
            }
            SearchFieldKind::Tag => {
                if f.sortable {
                    b.add_text_field(&name, STRING | FAST);
                } else {
                    b.add_text_field(&name, STRING);
                }
            }
        }
    }
    b.build()
}

/// `pattern` as a literal in tantivy's regex syntax: letters and digits as they
/// are, anything else as a `\x{..}` escape.
fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_alphanumeric() {
            out.push(c);
        } else {
            out.push_str(&format!("\\x{{{:x}}}", c as u32));
        }
    }
    out
}

/// Runs a top-N collector keyed by `(sort key, ID)` with a count: the total and the
/// page's IDs.
fn collect<K, C>(
    searcher: &Searcher,
    query: &dyn Query,
    top: C,
) -> ::tantivy::Result<(usize, Vec<u64>)>
where
    C: Collector<Fruit = Vec<((K, Option<u64>), DocAddress)>>,
{
    let (total, hits) = searcher.search(query, &(Count, top))?;
    Ok((
        total,
        hits.into_iter().filter_map(|((_, id), _)| id).collect(),
    ))
}

impl SearchBackend for TantivyBackend {
    fn describe(&self) -> String {
        match &self.inner.dir {
            Some(dir) => format!("tantivy at {}", dir.display()),
            None => "tantivy in RAM".to_string(),
        }
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        self.run("", "listing the indexes", |inner| inner.list())
    }

    fn stored_fingerprint<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<String>>> {
        let owned = name.to_string();
        self.run(name, "reading the fingerprint", move |inner| {
            inner.fingerprint(&owned)
        })
    }

    fn create<'a>(&'a self, index: &'a SearchIndex) -> BoxFuture<'a, Result<()>> {
        let def = index.clone();
        self.run(&index.name, "creating the index", move |inner| {
            inner.create(&def)
        })
    }

    fn drop_index<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        let owned = name.to_string();
        self.run(name, "dropping the index", move |inner| {
            inner.drop_index(&owned)
        })
    }

    fn write<'a>(
        &'a self,
        index: &'a SearchIndex,
        docs: &'a [Doc],
        deletes: &'a [u64],
    ) -> BoxFuture<'a, Result<()>> {
        let def = index.clone();
        let docs = docs.to_vec();
        let deletes = deletes.to_vec();
        self.run(&index.name, "writing", move |inner| {
            inner.write(&def, &docs, &deletes)
        })
    }

    fn search<'a>(
        &'a self,
        index: &'a SearchIndex,
        query: &'a CompiledQuery,
    ) -> BoxFuture<'a, Result<SearchHits>> {
        let def = index.clone();
        let query = query.clone();
        self.run(&index.name, "searching", move |inner| {
            inner.search(&def, &query)
        })
    }

    fn count<'a>(&'a self, index: &'a SearchIndex) -> BoxFuture<'a, Result<u64>> {
        let name = index.name.clone();
        self.run(&index.name, "counting", move |inner| inner.count(&name))
    }
}

#[cfg(test)]
mod tests;
