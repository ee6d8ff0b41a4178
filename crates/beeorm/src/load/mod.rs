//! The read path (D1, D2, D4, H4): one read front, [`Reader`], for loads by ID,
//! searches and the simple finders.
//!
//! Why one front: the options of a read — preloading references, including
//! fake-deleted rows, running inside a transaction — apply to every read method, so
//! they are set once on a [`Reader`] (`engine.read().preload(&["school"])`) rather
//! than mirrored by a type per option. [`Engine`]'s read methods are the default
//! reader's; [`Engine::preload`] is `engine.read().preload(paths)`.
//!
//! Why one by-ID path: `load_by_id`, `load_by_ids`, `find`, [`Ref::load`] and every
//! level of a preload read rows by primary key through the chain of row sources in
//! `source.rs`, where the caches will plug in. Searches go to the database only.
//!
//! Rules every method follows: columns are named (never `*`), so rows decode by
//! position; a fake-deleted row (B7) reads as missing — searches filter it in SQL,
//! reads by ID drop it as it arrives — unless [`Reader::include_deleted`] is set;
//! statements run on the entity's pool, or on the transaction given to
//! [`Reader::using`] (see `executor.rs`).
//!
//! [`Ref::load`]: crate::Ref::load

mod cached;
mod cached_query;
mod preload;
pub(crate) mod request;
mod source;

use preload::PathTree;

use crate::db::Transaction;
use crate::executor::Executor;
use crate::query::{Pager, Where};
use crate::schema::TableSchema;
use crate::sql::pool::SqlPool;
use crate::sql::DialectKind;
use crate::tracked::Tracked;
use crate::{Engine, Entity, Error, Result, Value};

/// The read front with preloading set: [`Engine::preload`] returns a [`Reader`].
pub type Preload<'e> = Reader<'e>;

pub(crate) use crate::entity::decode;

/// `ids` without repeats, each where it first occurs.
fn first_occurrences(ids: &[u64]) -> Vec<u64> {
    let mut by_id: Vec<(u64, usize)> = ids.iter().copied().zip(0..).collect();
    by_id.sort_unstable();
    let mut first = vec![false; ids.len()];
    let mut previous = None;
    for (id, pos) in by_id {
        if previous != Some(id) {
            first[pos] = true;
            previous = Some(id);
        }
    }
    ids.iter()
        .zip(first)
        .filter_map(|(id, keep)| keep.then_some(*id))
        .collect()
}

/// Decodes a row into a tracked entity (see [`decode`]).
fn decode_tracked<E: Entity>(row: &mut Vec<Value>) -> Result<Tracked<E>> {
    decode(row).map(Tracked::loaded)
}

/// A search statement: `head` (the table's SELECT), then the `WHERE …` — the
/// user's condition in parentheses, the fake-delete filter (unless
/// `include_deleted`) — then, with `tail`, the user's `ORDER BY`/`GROUP BY`, then
/// `after` (a LIMIT, an ORDER BY). Rendered in the pool's placeholder style: the
/// user's `?` become `$n` on PostgreSQL, `?` inside quotes stay text.
fn search_sql(
    kind: DialectKind,
    schema: &TableSchema,
    head: &str,
    w: &Where,
    include_deleted: bool,
    tail: bool,
    after: &str,
) -> Result<String> {
    w.check()?;
    let t = schema.templates(kind);
    let alive = if schema.has_fake_delete() && !include_deleted {
        Some(
            schema
                .fake_delete_column()
                .map_or("fake_delete", |i| t.columns[i].as_str()),
        )
    } else {
        None
    };
    let mut sql = kind.writer(head.len() + w.condition().len() + w.tail().len() + after.len() + 48);
    sql.push_str(head);
    let condition = !w.condition().is_empty();
    if condition || alive.is_some() {
        sql.push_str(" WHERE ");
    }
    if condition {
        sql.push_str("(");
        w.write_condition(&mut sql);
        sql.push_str(")");
    }
    if let Some(col) = alive {
        if condition {
            sql.push_str(" AND ");
        }
        // 0 while alive; a deleted row holds its ID.
        sql.push_str(col);
        sql.push_str(" = 0");
    }
    if tail && !w.tail().is_empty() {
        sql.push_str(" ");
        w.write_tail(&mut sql);
    }
    sql.push_str(after);
    Ok(sql.finish())
}

/// The largest ID the table's `id` column can hold: the entity's key type bounds it,
/// and on PostgreSQL and SQLite, whose integers are signed, so does `i64::MAX`. A
/// larger ID has no row, so it is not asked for: PostgreSQL would refuse to serialise
/// it and SQLite would wrap it around to a negative number.
fn max_id(pool: &SqlPool, schema: &TableSchema) -> u64 {
    let key_max = match schema.id_column().bytes {
        1 => u64::from(u8::MAX),
        2 => u64::from(u16::MAX),
        4 => u64::from(u32::MAX),
        _ => u64::MAX,
    };
    match pool.kind() {
        DialectKind::MySql => key_max,
        _ => key_max.min(i64::MAX.unsigned_abs()),
    }
}

/// The read front: every read method, with the options that apply to all of them.
/// Get one with [`Engine::read`] (cheap: no I/O, no allocation), set options, read.
///
/// - [`preload`](Reader::preload): also load the references named by paths;
/// - [`include_deleted`](Reader::include_deleted): fake-deleted rows count as found;
/// - [`using`](Reader::using): run inside a transaction and see its own writes.
///
/// ```no_run
/// # use beeorm::prelude::*;
/// # #[derive(Entity)] struct City { id: u64, name: String }
/// # #[derive(Entity)] struct School { id: u64, city: Option<Ref<City>> }
/// # #[derive(Entity)] struct Student { id: u64, name: String, school: Option<Ref<School>> }
/// # async fn demo(engine: &Engine) -> beeorm::Result<()> {
/// // Three queries: students, their schools, the schools' cities.
/// let students = engine
///     .read()
///     .preload(&["school/city"])
///     .search::<Student>(&Where::all(), Pager::new(1, 100))
///     .await?;
/// for s in &students {
///     let city = s.school.as_ref().and_then(|r| r.get()).and_then(|s| s.city.as_ref()?.get());
///     println!("{:?}", city.map(|c| &c.name));
/// }
///
/// // Inside a transaction: reads see its own uncommitted writes.
/// let mut tx = engine.db("default")?.begin().await?;
/// let mut ann = Tracked::new(Student { id: 0, name: "Ann".into(), school: None });
/// engine.flusher().track(&mut ann).flush_in(&mut tx).await?;
/// let seen = engine.read().using(&mut tx).find::<Student>(ann.id).await?;
/// assert_eq!(seen.name, "Ann");
/// tx.commit().await?;
/// # Ok(()) }
/// ```
///
/// A reader that [`using`](Reader::using) a transaction borrows it until the reader
/// (and its clones) are dropped; its reads take turns on the transaction's one
/// connection. Entities read inside a transaction are tracked as the transaction
/// sees them: if it is rolled back, load them again before flushing changes to them.
#[derive(Clone)]
pub struct Reader<'a> {
    engine: &'a Engine,
    exec: Executor<'a>,
    preload: Vec<String>,
    include_deleted: bool,
}

impl std::fmt::Debug for Reader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("on", &self.exec)
            .field("preload", &self.preload)
            .field("include_deleted", &self.include_deleted)
            .finish()
    }
}

impl Engine {
    /// The read front, with no option set: reads on the entities' pools, fake-deleted
    /// rows missing, no preloading. See [`Reader`].
    #[inline]
    pub fn read(&self) -> Reader<'_> {
        Reader {
            engine: self,
            exec: Executor::Pool,
            preload: Vec::new(),
            include_deleted: false,
        }
    }

    /// The read front with preloading set: `engine.read().preload(paths)` (see
    /// [`Reader::preload`]).
    pub fn preload(&self, paths: &[&str]) -> Preload<'_> {
        self.read().preload(paths)
    }
}

impl<'a> Reader<'a> {
    /// Also loads the references named by `paths`: `"*"` (all), field names, nested
    /// paths (`"school/city"`, `"school/*"`, `"*/*"`). Each level costs one query per
    /// referenced table, however many rows. A path that names no reference field is a
    /// typed [`Error::UnknownReference`], returned before any query. Calls add up.
    ///
    /// References to rows that are missing (or fake-deleted, unless
    /// [`include_deleted`](Reader::include_deleted)) stay unloaded.
    pub fn preload(mut self, paths: &[&str]) -> Self {
        self.preload.extend(paths.iter().map(|p| p.to_string()));
        self
    }

    /// Fake-deleted rows count as found: by ID, in searches, in the finders and in
    /// preloaded references. Without it (the default) a fake-deleted row reads as
    /// missing everywhere, as if it were deleted for real.
    pub fn include_deleted(mut self) -> Self {
        self.include_deleted = true;
        self
    }

    /// Reads through `tx`: every statement runs on the transaction's connection, so
    /// it sees the transaction's own uncommitted writes (`Flusher::flush_in`,
    /// `Transaction::execute`), and with the isolation of the transaction. The
    /// transaction stays borrowed until this reader and its clones are dropped; commit
    /// or roll it back afterwards.
    ///
    /// Reading an entity of another pool than the transaction's is a typed
    /// [`Error::InvalidArgument`]. A read whose future is dropped mid-way leaves the
    /// transaction unusable (its later statements fail with [`Error::Connection`]);
    /// dropped, the transaction rolls back as always.
    pub fn using<'t>(self, tx: &'t mut Transaction) -> Reader<'t>
    where
        'a: 't,
    {
        Reader {
            engine: self.engine,
            exec: Executor::transaction(tx),
            preload: self.preload,
            include_deleted: self.include_deleted,
        }
    }

    /// The entity's schema and the pool whose dialect renders its SQL.
    fn schema_and_pool<E: Entity>(&self) -> Result<(&'a TableSchema, &SqlPool)> {
        let schema = self.engine.registry().table_schema::<E>()?;
        let pool = self.exec.pool(self.engine, schema)?;
        Ok((schema, pool))
    }

    /// The preload paths as a tree checked against `E`'s references; `None` without
    /// paths (no allocation).
    fn tree<E: Entity>(&self) -> Result<Option<PathTree>> {
        if self.preload.is_empty() {
            return Ok(None);
        }
        let tree = PathTree::parse(&self.preload);
        let schema = self.engine.registry().table_schema::<E>()?;
        tree.validate(self.engine, schema, "")?;
        Ok(Some(tree))
    }

    /// Loads the references of `rows` along `tree`, if any.
    async fn preloaded<E: Entity>(
        &self,
        rows: &mut [Tracked<E>],
        tree: Option<&PathTree>,
    ) -> Result<()> {
        match tree {
            Some(tree) => preload::fill(self, rows, tree).await,
            None => Ok(()),
        }
    }

    /// Preloads the references of rows already loaded (nothing without
    /// [`preload`](Reader::preload) paths).
    pub async fn fill<E: Entity>(&self, rows: &mut [Tracked<E>]) -> Result<()> {
        let tree = self.tree::<E>()?;
        self.preloaded(rows, tree.as_ref()).await
    }

    /// The seam for many IDs, without preloading: the entities in the order asked
    /// (each once, each through `f`) and the IDs no source holds.
    pub(crate) async fn fetch_many<E: Entity, T>(
        &self,
        ids: &[u64],
        f: impl FnMut(E) -> T,
    ) -> Result<(Vec<T>, Vec<u64>)> {
        if ids.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let (schema, pool) = self.schema_and_pool::<E>()?;
        let unique = first_occurrences(ids);
        // IDs no row can have are not asked for; they end up missing.
        let limit = max_id(pool, schema);
        let asked: std::borrow::Cow<'_, [u64]> = if unique.iter().all(|id| *id <= limit) {
            std::borrow::Cow::Borrowed(&unique)
        } else {
            unique.iter().copied().filter(|id| *id <= limit).collect()
        };
        let mut found = source::Rows::with_capacity(asked.len());
        if !asked.is_empty() {
            let ask = source::Ask {
                engine: self.engine,
                schema,
                pool,
                exec: &self.exec,
                include_deleted: self.include_deleted,
                caches: self.engine.registry().caches(),
                request: self.engine.request_cache(),
            };
            // As in `load_by_id`: each source awaited on its own.
            match cached::route(&ask) {
                cached::Route::Chain => source::by_ids(&ask, &asked, &mut found).await?,
                cached::Route::Cached(caches, cache) => {
                    cached::read(caches, cache, &ask, &asked, &mut found).await?
                }
                cached::Route::Database => {
                    source::RowSource::fill(&source::Database, &ask, &asked, &mut found).await?
                }
            }
        }
        Ok(found.into_ordered(&unique, f))
    }

    /// The entity with this ID, if its row exists (a fake-deleted row is `None` unless
    /// [`include_deleted`](Reader::include_deleted)). An ID the table's `id` column
    /// cannot hold (above the entity's key type, or above `i64::MAX` on PostgreSQL and
    /// SQLite) has no row: `None`, without a query.
    pub async fn load_by_id<E: Entity>(&self, id: u64) -> Result<Option<Tracked<E>>> {
        let tree = self.tree::<E>()?;
        // The seam for one ID, inline (the hottest read: no extra state machine).
        let (schema, pool) = self.schema_and_pool::<E>()?;
        if id > max_id(pool, schema) {
            return Ok(None);
        }
        let ask = source::Ask {
            engine: self.engine,
            schema,
            pool,
            exec: &self.exec,
            include_deleted: self.include_deleted,
            caches: self.engine.registry().caches(),
            request: self.engine.request_cache(),
        };
        let mut found: Option<E> = None;
        // The chain, unrolled for one ID: each case awaits its own future, so only the
        // source that answers is built and moved (a local hit never moves the
        // database's larger future).
        let one = std::slice::from_ref(&id);
        match cached::route(&ask) {
            cached::Route::Chain => source::by_ids(&ask, one, &mut found).await?,
            cached::Route::Cached(caches, cache) => {
                cached::read(caches, cache, &ask, one, &mut found).await?
            }
            cached::Route::Database => {
                source::RowSource::fill(&source::Database, &ask, one, &mut found).await?
            }
        }
        let row = found.map(Tracked::loaded);
        let Some(tree) = tree else {
            return Ok(row);
        };
        let mut rows: Vec<Tracked<E>> = row.into_iter().collect();
        preload::fill(self, &mut rows, &tree).await?;
        Ok(rows.pop())
    }

    /// The entity with this ID; a typed [`Error::NotFound`] when there is no row (or
    /// only a fake-deleted one, unless [`include_deleted`](Reader::include_deleted)).
    pub async fn find<E: Entity>(&self, id: u64) -> Result<Tracked<E>> {
        self.load_by_id::<E>(id)
            .await?
            .ok_or_else(|| Error::NotFound {
                entity: E::TYPE_NAME.to_string(),
                key: format!("id = {id}"),
            })
    }

    /// The entities with these IDs, in the order asked (an ID asked twice comes once),
    /// and the IDs that have no row (fake-deleted ones included, unless
    /// [`include_deleted`](Reader::include_deleted)). One query per 10,000 distinct
    /// IDs (under every server's parameter limit); IDs no row can have (see
    /// [`Reader::load_by_id`]) are missing without being sent.
    pub async fn load_by_ids<E: Entity>(&self, ids: &[u64]) -> Result<(Vec<Tracked<E>>, Vec<u64>)> {
        let tree = self.tree::<E>()?;
        let (mut rows, missing) = self.fetch_many::<E, _>(ids, Tracked::loaded).await?;
        self.preloaded(&mut rows, tree.as_ref()).await?;
        Ok((rows, missing))
    }

    /// One page of the entities matching `w` (fake-deleted rows skipped, unless
    /// [`include_deleted`](Reader::include_deleted)).
    pub async fn search<E: Entity>(&self, w: &Where, pager: Pager) -> Result<Vec<Tracked<E>>> {
        let tree = self.tree::<E>()?;
        let mut rows = self.search_rows::<E>(w, pager).await?;
        self.preloaded(&mut rows, tree.as_ref()).await?;
        Ok(rows)
    }

    async fn search_rows<E: Entity>(&self, w: &Where, pager: Pager) -> Result<Vec<Tracked<E>>> {
        let (schema, pool) = self.schema_and_pool::<E>()?;
        let kind = pool.kind();
        let head = &schema.templates(kind).select;
        let limit = pager.limit_clause();
        let sql = search_sql(kind, schema, head, w, self.include_deleted, true, &limit)?;
        let params = self.engine.registry().hooks().prepare_params(w.params());
        self.exec
            .query_map(
                self.engine,
                false,
                pool,
                &sql,
                params,
                pager.size() as usize,
                decode_tracked::<E>,
            )
            .await
    }

    /// [`Reader::search`] and the number of matching rows on all pages. The count
    /// costs a second query only when the page is full or not the first.
    pub async fn search_with_count<E: Entity>(
        &self,
        w: &Where,
        pager: Pager,
    ) -> Result<(Vec<Tracked<E>>, u64)> {
        let tree = self.tree::<E>()?;
        let mut rows = self.search_rows::<E>(w, pager).await?;
        let total = self.total::<E>(w, pager, rows.len()).await?;
        self.preloaded(&mut rows, tree.as_ref()).await?;
        Ok((rows, total))
    }

    /// The first entity matching `w`, if any.
    pub async fn search_one<E: Entity>(&self, w: &Where) -> Result<Option<Tracked<E>>> {
        let tree = self.tree::<E>()?;
        let mut rows = self.search_rows::<E>(w, Pager::new(1, 1)).await?;
        rows.truncate(1);
        self.preloaded(&mut rows, tree.as_ref()).await?;
        Ok(rows.pop())
    }

    /// The IDs of one page of matching rows.
    pub async fn search_ids<E: Entity>(&self, w: &Where, pager: Pager) -> Result<Vec<u64>> {
        let (schema, pool) = self.schema_and_pool::<E>()?;
        let kind = pool.kind();
        let t = schema.templates(kind);
        let head = format!("SELECT {} FROM {}", t.columns[0], t.table);
        let limit = pager.limit_clause();
        let sql = search_sql(kind, schema, &head, w, self.include_deleted, true, &limit)?;
        let params = self.engine.registry().hooks().prepare_params(w.params());
        self.exec
            .query(self.engine, false, pool, &sql, params)
            .await?
            .into_iter()
            .map(|row| {
                let v = row.into_iter().next().unwrap_or(Value::Null);
                crate::schema::FieldType::from_value(v).map_err(|reason| Error::Decode {
                    entity: schema.entity_name().to_string(),
                    field: "id".into(),
                    reason,
                })
            })
            .collect()
    }

    /// [`Reader::search_ids`] and the number of matching rows on all pages.
    pub async fn search_ids_with_count<E: Entity>(
        &self,
        w: &Where,
        pager: Pager,
    ) -> Result<(Vec<u64>, u64)> {
        let ids = self.search_ids::<E>(w, pager).await?;
        let total = self.total::<E>(w, pager, ids.len()).await?;
        Ok((ids, total))
    }

    async fn total<E: Entity>(&self, w: &Where, pager: Pager, got: usize) -> Result<u64> {
        let got = got as u64;
        if pager.page() == 1 && got < pager.size() {
            return Ok(got);
        }
        let (schema, pool) = self.schema_and_pool::<E>()?;
        let kind = pool.kind();
        let t = schema.templates(kind);
        // ORDER BY does not change a count; GROUP BY does, so count the groups.
        let sql = if w.tail().to_ascii_uppercase().starts_with("GROUP BY") {
            let head = format!("SELECT COUNT(1) FROM (SELECT 1 FROM {}", t.table);
            search_sql(kind, schema, &head, w, self.include_deleted, true, ") AS c")?
        } else {
            let head = format!("SELECT COUNT(1) FROM {}", t.table);
            search_sql(kind, schema, &head, w, self.include_deleted, false, "")?
        };
        let params = self.engine.registry().hooks().prepare_params(w.params());
        let rows = self
            .exec
            .query(self.engine, false, pool, &sql, params)
            .await?;
        rows.first()
            .and_then(|r| r.first())
            .and_then(Value::as_i64)
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| Error::Query(format!("`{sql}` returned no count")))
    }

    /// Every row of the entity's table (fake-deleted rows skipped, unless
    /// [`include_deleted`](Reader::include_deleted)), by primary key.
    pub async fn all<E: Entity>(&self) -> Result<Vec<Tracked<E>>> {
        self.ordered::<E>("", usize::MAX).await
    }

    /// The row with the smallest primary key (`ORDER BY pk ASC LIMIT 1`); a typed
    /// [`Error::NotFound`] when there is none (fake-deleted rows skipped, unless
    /// [`include_deleted`](Reader::include_deleted)).
    pub async fn first<E: Entity>(&self) -> Result<Tracked<E>> {
        self.edge::<E>("ASC", "first row").await
    }

    /// The row with the largest primary key (`ORDER BY pk DESC LIMIT 1`); a typed
    /// [`Error::NotFound`] when there is none (fake-deleted rows skipped, unless
    /// [`include_deleted`](Reader::include_deleted)).
    pub async fn last<E: Entity>(&self) -> Result<Tracked<E>> {
        self.edge::<E>("DESC", "last row").await
    }

    async fn edge<E: Entity>(&self, dir: &str, what: &str) -> Result<Tracked<E>> {
        let mut rows = self.ordered::<E>(dir, 1).await?;
        rows.pop().ok_or_else(|| Error::NotFound {
            entity: E::TYPE_NAME.to_string(),
            key: what.to_string(),
        })
    }

    /// The rows of the whole table by primary key (`dir`: "", "ASC" or "DESC"), at most
    /// `limit` of them, preloaded as asked: what `all`, `first` and `last` share.
    async fn ordered<E: Entity>(&self, dir: &str, limit: usize) -> Result<Vec<Tracked<E>>> {
        let tree = self.tree::<E>()?;
        let (schema, pool) = self.schema_and_pool::<E>()?;
        let kind = pool.kind();
        let t = schema.templates(kind);
        let mut order = format!(" ORDER BY {}", t.columns[0]);
        if !dir.is_empty() {
            order.push(' ');
            order.push_str(dir);
        }
        if limit != usize::MAX {
            order.push_str(&format!(" LIMIT {limit}"));
        }
        let sql = search_sql(
            kind,
            schema,
            &t.select,
            &Where::all(),
            self.include_deleted,
            true,
            &order,
        )?;
        let mut rows = self
            .exec
            .query_map(
                self.engine,
                false,
                pool,
                &sql,
                vec![],
                if limit == usize::MAX { 0 } else { limit },
                decode_tracked::<E>,
            )
            .await?;
        rows.truncate(limit);
        self.preloaded(&mut rows, tree.as_ref()).await?;
        Ok(rows)
    }
}

/// The default reader's methods (see [`Reader`] for the options: preloading,
/// fake-deleted rows, transactions).
impl Engine {
    /// The entity with this ID, if its row exists and is not fake-deleted:
    /// [`Reader::load_by_id`] of [`Engine::read`].
    #[inline]
    pub async fn load_by_id<E: Entity>(&self, id: u64) -> Result<Option<Tracked<E>>> {
        self.read().load_by_id::<E>(id).await
    }

    /// The entities with these IDs, in the order asked, and the IDs that have no
    /// (live) row: [`Reader::load_by_ids`] of [`Engine::read`].
    pub async fn load_by_ids<E: Entity>(&self, ids: &[u64]) -> Result<(Vec<Tracked<E>>, Vec<u64>)> {
        self.read().load_by_ids::<E>(ids).await
    }

    /// One page of the entities matching `w` (fake-deleted rows skipped):
    /// [`Reader::search`] of [`Engine::read`].
    pub async fn search<E: Entity>(&self, w: &Where, pager: Pager) -> Result<Vec<Tracked<E>>> {
        self.read().search::<E>(w, pager).await
    }

    /// [`Engine::search`] and the number of matching rows on all pages:
    /// [`Reader::search_with_count`] of [`Engine::read`].
    pub async fn search_with_count<E: Entity>(
        &self,
        w: &Where,
        pager: Pager,
    ) -> Result<(Vec<Tracked<E>>, u64)> {
        self.read().search_with_count::<E>(w, pager).await
    }

    /// The first entity matching `w`, if any: [`Reader::search_one`] of
    /// [`Engine::read`].
    pub async fn search_one<E: Entity>(&self, w: &Where) -> Result<Option<Tracked<E>>> {
        self.read().search_one::<E>(w).await
    }

    /// The IDs of one page of matching rows: [`Reader::search_ids`] of
    /// [`Engine::read`].
    pub async fn search_ids<E: Entity>(&self, w: &Where, pager: Pager) -> Result<Vec<u64>> {
        self.read().search_ids::<E>(w, pager).await
    }

    /// [`Engine::search_ids`] and the number of matching rows on all pages:
    /// [`Reader::search_ids_with_count`] of [`Engine::read`].
    pub async fn search_ids_with_count<E: Entity>(
        &self,
        w: &Where,
        pager: Pager,
    ) -> Result<(Vec<u64>, u64)> {
        self.read().search_ids_with_count::<E>(w, pager).await
    }

    /// The entity with this primary key; a typed [`Error::NotFound`] when absent or
    /// fake-deleted: [`Reader::find`] of [`Engine::read`].
    pub async fn find<E: Entity>(&self, id: u64) -> Result<Tracked<E>> {
        self.read().find::<E>(id).await
    }

    /// Every row of the entity's table (fake-deleted rows skipped), by primary key:
    /// [`Reader::all`] of [`Engine::read`].
    pub async fn all<E: Entity>(&self) -> Result<Vec<Tracked<E>>> {
        self.read().all::<E>().await
    }

    /// The row with the smallest primary key: [`Reader::first`] of [`Engine::read`].
    pub async fn first<E: Entity>(&self) -> Result<Tracked<E>> {
        self.read().first::<E>().await
    }

    /// The row with the largest primary key: [`Reader::last`] of [`Engine::read`].
    pub async fn last<E: Entity>(&self) -> Result<Tracked<E>> {
        self.read().last::<E>().await
    }
}

#[cfg(test)]
mod tests {
    use super::first_occurrences;

    #[test]
    fn repeated_ids_keep_their_first_position() {
        assert_eq!(first_occurrences(&[5, 3, 5, 1, 3, 9]), vec![5, 3, 1, 9]);
        assert_eq!(first_occurrences(&[]), Vec::<u64>::new());
        assert_eq!(first_occurrences(&[7, 7, 7]), vec![7]);
    }
}
