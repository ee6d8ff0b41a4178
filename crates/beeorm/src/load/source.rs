//! The by-ID read seam: every read of rows by primary key — `load_by_id`,
//! `load_by_ids`, `find`, `Ref::load`, the preloader's levels — asks one chain of
//! [`RowSource`]s, nearest first. Each source fills the rows it holds and the chain
//! passes the IDs still missing to the next one.
//!
//! Only the database exists today ([`Database`], always last). The request cache,
//! the local cache and Redis (issue 12) plug in by implementing [`RowSource`] and
//! taking their place in [`sources`]; nothing else changes. A source is a plain type
//! with a generic method, so the chain is resolved at compile time: no boxing and no
//! dynamic call per read, and a chain of one source costs what the database query
//! costs (the IDs still missing are computed, and allocated, only between two sources
//! and only when the first found some but not all).
//!
//! What a source must honour: [`Ask::include_deleted`] (a fake-deleted row reads as
//! missing unless it is set, see [`decode_alive`]); the IDs it is given are distinct
//! and fit the table's key (the caller filters them).

use std::borrow::Cow;
use std::future::Future;

use crate::executor::Executor;
use crate::schema::TableSchema;
use crate::sql::pool::SqlPool;
use crate::{Entity, Result, Value};

/// What a by-ID read asks of the sources.
pub(crate) struct Ask<'r, 't> {
    /// The engine reading (its consistency and writes route reads to replicas).
    pub engine: &'r crate::Engine,
    /// The entity's table.
    pub schema: &'r TableSchema,
    /// The pool whose dialect renders the SQL.
    pub pool: &'r SqlPool,
    /// A pool or a transaction.
    pub exec: &'r Executor<'t>,
    /// Whether fake-deleted rows count as found.
    pub include_deleted: bool,
    /// The registry's entity caches, if any entity is cached.
    pub caches: Option<&'r crate::cache::Caches>,
    /// The engine's request cache, if it has one.
    pub request: Option<&'r crate::cache::request::RequestCache>,
}

/// Where the sources put what they found.
pub(crate) trait Found<E>: Send {
    /// Takes one row a source holds.
    fn put(&mut self, entity: E);
    /// Takes the rows of one query as decoded (`None`: a row that reads as missing).
    fn put_all(&mut self, rows: Vec<Option<E>>) {
        for entity in rows.into_iter().flatten() {
            self.put(entity);
        }
    }
    /// Among `want`, the IDs no source has given yet (borrowed when none was given).
    #[allow(dead_code)] // Used by `Then`, once the chain has two sources.
    fn rest<'w>(&mut self, want: &'w [u64]) -> Cow<'w, [u64]>;
}

/// One ID: the entity, if found.
impl<E: Entity> Found<E> for Option<E> {
    #[inline]
    fn put(&mut self, entity: E) {
        *self = Some(entity);
    }
    fn rest<'w>(&mut self, want: &'w [u64]) -> Cow<'w, [u64]> {
        Cow::Borrowed(if self.is_some() { &[] } else { want })
    }
}

/// Many IDs: the entities found, by ID (sorted on demand).
///
/// Sorted by ID and searched by bisection, not hashed: IDs often come from outside,
/// and a hash map keyed by them could be fed colliding keys. The rows of the first
/// query are kept in the vector the driver filled (no copy); a `None` (a row that
/// reads as missing) sorts first and matches no ID a caller can ask for.
pub(crate) struct Rows<E>(Vec<Option<E>>);

/// The sort key of a slot.
fn slot_id<E: Entity>(slot: &Option<E>) -> u64 {
    slot.as_ref().map_or(0, Entity::id)
}

impl<E: Entity> Rows<E> {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Rows(Vec::with_capacity(n))
    }

    fn sort(&mut self) {
        self.0.sort_unstable_by_key(slot_id);
    }

    /// The entities in the order of `ids` (distinct), each through `f`, and the IDs
    /// not found.
    pub(crate) fn into_ordered<T>(
        mut self,
        ids: &[u64],
        mut f: impl FnMut(E) -> T,
    ) -> (Vec<T>, Vec<u64>) {
        self.sort();
        // Every position is found before any slot is emptied (an emptied slot
        // would no longer sort by its ID).
        let positions: Vec<Option<usize>> = ids
            .iter()
            .map(|id| self.0.binary_search_by_key(id, slot_id).ok())
            .collect();
        let mut out = Vec::with_capacity(self.0.len());
        let mut missing = Vec::new();
        for (&id, pos) in ids.iter().zip(positions) {
            match pos.and_then(|i| self.0[i].take()) {
                Some(e) => out.push(f(e)),
                None => missing.push(id),
            }
        }
        (out, missing)
    }
}

impl<E: Entity> Found<E> for Rows<E> {
    #[inline]
    fn put(&mut self, entity: E) {
        self.0.push(Some(entity));
    }
    fn put_all(&mut self, rows: Vec<Option<E>>) {
        if self.0.is_empty() {
            self.0 = rows;
        } else {
            self.0.extend(rows);
        }
    }
    fn rest<'w>(&mut self, want: &'w [u64]) -> Cow<'w, [u64]> {
        if self.0.is_empty() {
            return Cow::Borrowed(want);
        }
        self.sort();
        want.iter()
            .copied()
            .filter(|id| self.0.binary_search_by_key(id, slot_id).is_err())
            .collect()
    }
}

/// One place rows by ID can come from.
pub(crate) trait RowSource: Sync {
    /// Puts into `found` the rows it holds among `want` (distinct IDs); the chain
    /// passes the others on.
    fn fill<E: Entity, F: Found<E>>(
        &self,
        ask: &Ask<'_, '_>,
        want: &[u64],
        found: &mut F,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// `A`, then `B` for what `A` did not hold.
#[allow(dead_code)] // The chain has one source until the caches of issue 12.
pub(crate) struct Then<A, B>(pub A, pub B);

impl<A: RowSource, B: RowSource> RowSource for Then<A, B> {
    async fn fill<E: Entity, F: Found<E>>(
        &self,
        ask: &Ask<'_, '_>,
        want: &[u64],
        found: &mut F,
    ) -> Result<()> {
        self.0.fill(ask, want, found).await?;
        let rest = found.rest(want);
        if rest.is_empty() {
            return Ok(());
        }
        self.1.fill(ask, &rest, found).await
    }
}

/// The chain, nearest source first: the engine's request cache, the entity caches (local, Redis; a plain pass to
/// the database for uncached entities and inside transactions), then the database.
static SOURCES: super::request::Request<super::cached::Cached> =
    super::request::Request(super::cached::Cached);

/// The rows of `want` from every source (see the module docs). A plain function
/// returning the chain's future, not an `async fn`: one state machine less to build
/// and move on the hottest read.
#[inline]
pub(crate) fn by_ids<'r, 'a, 't, E: Entity, F: Found<E>>(
    ask: &'r Ask<'a, 't>,
    want: &'r [u64],
    found: &'r mut F,
) -> impl Future<Output = Result<()>> + Send + use<'r, 'a, 't, E, F> {
    SOURCES.fill(ask, want, found)
}

/// Decodes a row (`id` first, columns in schema order), draining it; `None` for a
/// fake-deleted row when `fake_delete` (the flag's column) is given. Every source
/// that holds rows decodes them here, so the rule is the same whichever answered.
#[inline]
pub(crate) fn decode_alive<E: Entity>(
    row: &mut Vec<Value>,
    fake_delete: Option<usize>,
) -> Result<Option<E>> {
    if let Some(i) = fake_delete {
        if row
            .get(i)
            .is_some_and(crate::schema::fake_delete::is_deleted)
        {
            return Ok(None);
        }
    }
    super::decode(row).map(Some)
}

/// The rows of `ids` as the database holds them (fake-deleted ones included), `id`
/// first: one query per 10,000 IDs.
pub(crate) async fn select_rows(ask: &Ask<'_, '_>, ids: &[u64]) -> Result<Vec<Vec<Value>>> {
    let t = ask.schema.templates(ask.pool.kind());
    let take = |row: &mut Vec<Value>| Ok(std::mem::take(row));
    if let [id] = ids {
        return ask
            .exec
            .query_map(
                ask.engine,
                true,
                ask.pool,
                &t.select_by_id,
                vec![Value::U64(*id)],
                1,
                take,
            )
            .await;
    }
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(10_000) {
        let sql = in_list_sql(ask, chunk.len());
        let rows = ask
            .exec
            .query_map(
                ask.engine,
                true,
                ask.pool,
                &sql,
                chunk.iter().map(|i| Value::U64(*i)).collect(),
                chunk.len(),
                take,
            )
            .await?;
        out.extend(rows);
    }
    Ok(out)
}

/// `SELECT … WHERE id IN (?, …)` for `n` IDs, in the pool's placeholder style.
fn in_list_sql(ask: &Ask<'_, '_>, n: usize) -> String {
    let t = ask.schema.templates(ask.pool.kind());
    let kind = ask.pool.kind();
    // `$n` takes up to 7 bytes on PostgreSQL.
    let per_id = if kind.numbered_placeholders() { 7 } else { 2 };
    let mut sql = kind.writer(t.select.len() + 24 + n * per_id);
    sql.push_str(&t.select);
    sql.push_str(" WHERE ");
    sql.push_str(&t.columns[0]);
    sql.push_str(" IN (");
    sql.params(n);
    sql.push_str(")");
    sql.finish()
}

/// The relational database: one query per 10,000 IDs (under every server's
/// parameter limit, see `sql::pool::max_params`), one by primary key for one ID.
pub(crate) struct Database;

impl RowSource for Database {
    async fn fill<E: Entity, F: Found<E>>(
        &self,
        ask: &Ask<'_, '_>,
        want: &[u64],
        found: &mut F,
    ) -> Result<()> {
        let t = ask.schema.templates(ask.pool.kind());
        let fake_delete = if ask.include_deleted {
            None
        } else {
            ask.schema.fake_delete_column()
        };
        if let [id] = want {
            let row = ask
                .exec
                .query_first(
                    ask.engine,
                    false,
                    ask.pool,
                    &t.select_by_id,
                    [Value::U64(*id)],
                    move |row| decode_alive::<E>(row, fake_delete),
                )
                .await?;
            if let Some(e) = row.flatten() {
                found.put(e);
            }
            return Ok(());
        }
        for chunk in want.chunks(10_000) {
            let sql = in_list_sql(ask, chunk.len());
            let rows = ask
                .exec
                .query_map(
                    ask.engine,
                    false,
                    ask.pool,
                    &sql,
                    chunk.iter().map(|i| Value::U64(*i)).collect(),
                    chunk.len(),
                    move |row| decode_alive::<E>(row, fake_delete),
                )
                .await?;
            found.put_all(rows);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! The chain without a server: sources that hold fixed IDs, on a SQLite pool in
    //! memory that no statement reaches.
    #![allow(clippy::unwrap_used)]

    use std::sync::Mutex;

    use super::*;
    use crate::{Engine, Registry};

    #[derive(crate::Entity, Debug, PartialEq)]
    struct Row {
        id: u64,
    }

    /// Holds `ids`; records what it was asked.
    struct Holds(&'static [u64], Mutex<Vec<Vec<u64>>>);

    impl Holds {
        fn new(ids: &'static [u64]) -> Self {
            Holds(ids, Mutex::new(Vec::new()))
        }
        fn asked(&self) -> Vec<Vec<u64>> {
            self.1.lock().unwrap().clone()
        }
    }

    impl RowSource for Holds {
        async fn fill<E: Entity, F: Found<E>>(
            &self,
            _: &Ask<'_, '_>,
            want: &[u64],
            found: &mut F,
        ) -> Result<()> {
            self.1.lock().unwrap().push(want.to_vec());
            for &id in want.iter().filter(|id| self.0.contains(id)) {
                let mut e = E::from_values(&mut vec![Value::U64(id)].drain(..)).unwrap();
                e.set_id(id).unwrap();
                found.put(e);
            }
            Ok(())
        }
    }

    async fn engine() -> Engine {
        let mut r = Registry::new();
        r.register_sqlite_pool("default", ":memory:")
            .register_entity::<Row>();
        r.validate().await.unwrap().create_engine()
    }

    #[tokio::test]
    async fn each_source_gets_what_the_ones_before_did_not_hold() {
        let engine = engine().await;
        let schema = engine.registry().table_schema::<Row>().unwrap();
        let pool = engine.sql_pool("default").unwrap();
        let exec = Executor::Pool;
        let ask = Ask {
            engine: &engine,
            schema,
            pool: &pool,
            exec: &exec,
            include_deleted: false,
            caches: None,
            request: None,
        };
        let chain = Then(Holds::new(&[1, 3]), Then(Holds::new(&[2]), Holds::new(&[])));

        let mut rows = Rows::<Row>::with_capacity(4);
        chain.fill(&ask, &[4, 3, 2, 1], &mut rows).await.unwrap();
        assert_eq!(chain.0.asked(), [vec![4, 3, 2, 1]]);
        assert_eq!(chain.1 .0.asked(), [vec![4, 2]]);
        assert_eq!(chain.1 .1.asked(), [vec![4]]);
        let (found, missing) = rows.into_ordered(&[4, 3, 2, 1], |e| e);
        assert_eq!(found, [Row { id: 3 }, Row { id: 2 }, Row { id: 1 }]);
        assert_eq!(missing, [4]);

        // One ID, held by the first source: the others are not asked.
        let mut one: Option<Row> = None;
        chain.fill(&ask, &[3], &mut one).await.unwrap();
        assert_eq!(one, Some(Row { id: 3 }));
        assert_eq!(chain.1 .0.asked().len(), 1);
        // Held by none: every source is asked.
        let mut one: Option<Row> = None;
        chain.fill(&ask, &[9], &mut one).await.unwrap();
        assert_eq!(one, None);
        assert_eq!(chain.1 .1.asked().last().unwrap(), &[9]);
    }
}
