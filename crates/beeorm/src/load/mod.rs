//! The read path (D1, D2): loads by ID and searches, one query each.
//!
//! Every method names its columns (never `*`), so rows decode by position, and skips
//! fake-deleted rows in searches (B7). Caches and preloading (later capabilities) plug
//! in here, in front of the database query.

mod preload;

pub use preload::Preload;

use crate::flush::Tracked;
use crate::query::{Pager, Where};
use crate::schema::TableSchema;
use crate::sql::pool::SqlPool;
use crate::sql::DialectKind;
use crate::{Engine, Entity, Error, Result, Value};

/// Decodes a row (`id` first, columns in schema order) into an entity, draining
/// `row`.
pub(crate) fn decode<E: Entity>(row: &mut Vec<Value>) -> Result<E> {
    E::from_values(&mut row.drain(..)).map_err(|e| Error::Decode {
        entity: E::TYPE_NAME.to_string(),
        field: e.field,
        reason: e.reason,
    })
}

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

/// The `WHERE …` of a search: the user's condition in parentheses, the fake-delete
/// filter, then the user's `ORDER BY`/`GROUP BY`.
fn where_clause(pool: &SqlPool, schema: &TableSchema, w: &Where) -> Result<String> {
    w.check()?;
    let mut parts = Vec::new();
    if !w.condition().is_empty() {
        parts.push(format!("({})", w.condition()));
    }
    if schema.has_fake_delete() {
        let t = schema.templates(|s| pool.quote(s));
        let col = schema
            .fake_delete_column()
            .map_or("fake_delete", |i| t.columns[i].as_str());
        // 0 while alive; a deleted row holds its ID.
        parts.push(format!("{col} = 0"));
    }
    let mut sql = String::new();
    if !parts.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&parts.join(" AND "));
    }
    if !w.tail().is_empty() {
        sql.push(' ');
        sql.push_str(w.tail());
    }
    Ok(sql)
}

/// The largest ID the table's `id` column can hold: the entity's key type bounds it,
/// and on PostgreSQL and SQLite, whose integers are signed, so does `i64::MAX`. A
/// larger ID has no row, so it is not sent: PostgreSQL would refuse to serialise it
/// and SQLite would wrap it around to a negative number.
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

impl Engine {
    fn schema_and_pool<E: Entity>(&self) -> Result<(&TableSchema, SqlPool)> {
        let schema = self.registry().table_schema::<E>()?;
        let pool = self.sql_pool(schema.pool_name())?;
        Ok((schema, pool))
    }

    /// The entity with this ID, if its row exists (fake-deleted rows included). An ID
    /// the table's `id` column cannot hold (above the entity's key type, or above
    /// `i64::MAX` on PostgreSQL and SQLite) has no row: `None`, without a query.
    pub async fn load_by_id<E: Entity>(&self, id: u64) -> Result<Option<Tracked<E>>> {
        let (schema, pool) = self.schema_and_pool::<E>()?;
        if id > max_id(&pool, schema) {
            return Ok(None);
        }
        let t = schema.templates(|s| pool.quote(s));
        Ok(pool
            .query_map(&t.select_by_id, vec![Value::U64(id)], decode::<E>)
            .await?
            .pop()
            .map(Tracked::loaded))
    }

    /// The entities with these IDs, in the order asked (an ID asked twice comes once),
    /// and the IDs that have no row. One query per 10,000 distinct IDs (under every
    /// server's parameter limit); IDs no row can have (see [`Engine::load_by_id`]) are
    /// missing without being sent.
    pub async fn load_by_ids<E: Entity>(&self, ids: &[u64]) -> Result<(Vec<Tracked<E>>, Vec<u64>)> {
        if ids.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let (schema, pool) = self.schema_and_pool::<E>()?;
        let t = schema.templates(|s| pool.quote(s));
        let unique = first_occurrences(ids);
        // Sorted by ID and searched by bisection, not hashed: IDs often come from
        // outside, and a hash map keyed by them could be fed colliding keys.
        let mut found: Vec<(u64, Option<E>)> = Vec::with_capacity(unique.len());
        // IDs no row can have are not sent; they end up in `missing`.
        let limit = max_id(&pool, schema);
        let asked: std::borrow::Cow<'_, [u64]> = if unique.iter().all(|id| *id <= limit) {
            std::borrow::Cow::Borrowed(&unique)
        } else {
            unique.iter().copied().filter(|id| *id <= limit).collect()
        };
        // Chunks keep each statement under the servers' parameter limits (see
        // `sql::pool::max_params`).
        for chunk in asked.chunks(10_000) {
            let mut sql = String::with_capacity(t.select.len() + 24 + chunk.len() * 2);
            sql.push_str(&t.select);
            sql.push_str(" WHERE ");
            sql.push_str(&t.columns[0]);
            sql.push_str(" IN (");
            for i in 0..chunk.len() {
                sql.push_str(if i == 0 { "?" } else { ",?" });
            }
            sql.push(')');
            let rows = pool
                .query_map(
                    &sql,
                    chunk.iter().map(|i| Value::U64(*i)).collect(),
                    |row| decode::<E>(row).map(|e| (e.id(), Some(e))),
                )
                .await?;
            found.extend(rows);
        }
        found.sort_unstable_by_key(|(id, _)| *id);
        let mut out = Vec::with_capacity(found.len());
        let mut missing = Vec::new();
        for id in unique {
            let slot = found
                .binary_search_by_key(&id, |(id, _)| *id)
                .ok()
                .and_then(|i| found[i].1.take());
            match slot {
                Some(e) => out.push(Tracked::loaded(e)),
                None => missing.push(id),
            }
        }
        Ok((out, missing))
    }

    /// One page of the entities matching `w` (fake-deleted rows skipped).
    pub async fn search<E: Entity>(&self, w: &Where, pager: Pager) -> Result<Vec<Tracked<E>>> {
        let (schema, pool) = self.schema_and_pool::<E>()?;
        let t = schema.templates(|s| pool.quote(s));
        let sql = format!(
            "{}{}{}",
            t.select,
            where_clause(&pool, schema, w)?,
            pager.limit_clause()
        );
        pool.query_map(
            &sql,
            self.registry().hooks().prepare_params(w.params()),
            decode_tracked::<E>,
        )
        .await
    }

    /// [`Engine::search`] and the number of matching rows on all pages. The count
    /// costs a second query only when the page is full or not the first.
    pub async fn search_with_count<E: Entity>(
        &self,
        w: &Where,
        pager: Pager,
    ) -> Result<(Vec<Tracked<E>>, u64)> {
        let rows = self.search::<E>(w, pager).await?;
        let total = self.total::<E>(w, pager, rows.len()).await?;
        Ok((rows, total))
    }

    /// The first entity matching `w`, if any.
    pub async fn search_one<E: Entity>(&self, w: &Where) -> Result<Option<Tracked<E>>> {
        Ok(self
            .search::<E>(w, Pager::new(1, 1))
            .await?
            .into_iter()
            .next())
    }

    /// The IDs of one page of matching rows.
    pub async fn search_ids<E: Entity>(&self, w: &Where, pager: Pager) -> Result<Vec<u64>> {
        let (schema, pool) = self.schema_and_pool::<E>()?;
        let t = schema.templates(|s| pool.quote(s));
        let sql = format!(
            "SELECT {} FROM {}{}{}",
            t.columns[0],
            t.table,
            where_clause(&pool, schema, w)?,
            pager.limit_clause()
        );
        pool.query(&sql, self.registry().hooks().prepare_params(w.params()))
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

    /// [`Engine::search_ids`] and the number of matching rows on all pages.
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
        let t = schema.templates(|s| pool.quote(s));
        // ORDER BY does not change a count; GROUP BY does, so count the groups.
        let sql = if w.tail().to_ascii_uppercase().starts_with("GROUP BY") {
            format!(
                "SELECT COUNT(1) FROM (SELECT 1 FROM {}{}) AS c",
                t.table,
                where_clause(&pool, schema, w)?
            )
        } else {
            let counted = w.without_tail();
            format!(
                "SELECT COUNT(1) FROM {}{}",
                t.table,
                where_clause(&pool, schema, &counted)?
            )
        };
        let params = self.registry().hooks().prepare_params(w.params());
        let rows = pool.query(&sql, params).await?;
        rows.first()
            .and_then(|r| r.first())
            .and_then(Value::as_i64)
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| Error::Query(format!("`{sql}` returned no count")))
    }
}

/// Simple finders (H4): always from the database.
impl Engine {
    /// The entity with this primary key; a typed [`Error::NotFound`] when absent.
    pub async fn find<E: Entity>(&self, id: u64) -> Result<Tracked<E>> {
        self.load_by_id::<E>(id)
            .await?
            .ok_or_else(|| Error::NotFound {
                entity: E::TYPE_NAME.to_string(),
                key: format!("id = {id}"),
            })
    }

    /// Every row of the entity's table (fake-deleted rows skipped), by primary key.
    pub async fn all<E: Entity>(&self) -> Result<Vec<Tracked<E>>> {
        let (schema, pool) = self.schema_and_pool::<E>()?;
        let t = schema.templates(|s| pool.quote(s));
        let sql = format!(
            "{}{} ORDER BY {}",
            t.select,
            where_clause(&pool, schema, &Where::all())?,
            t.columns[0]
        );
        pool.query_map(&sql, vec![], decode_tracked::<E>).await
    }

    /// The row with the smallest primary key (`ORDER BY pk ASC LIMIT 1`).
    pub async fn first<E: Entity>(&self) -> Result<Tracked<E>> {
        self.edge::<E>("ASC", "first row").await
    }

    /// The row with the largest primary key (`ORDER BY pk DESC LIMIT 1`).
    pub async fn last<E: Entity>(&self) -> Result<Tracked<E>> {
        self.edge::<E>("DESC", "last row").await
    }

    async fn edge<E: Entity>(&self, dir: &str, what: &str) -> Result<Tracked<E>> {
        let (schema, pool) = self.schema_and_pool::<E>()?;
        let t = schema.templates(|s| pool.quote(s));
        let sql = format!(
            "{}{} ORDER BY {} {dir} LIMIT 1",
            t.select,
            where_clause(&pool, schema, &Where::all())?,
            t.columns[0]
        );
        match pool
            .query_map(&sql, vec![], decode_tracked::<E>)
            .await?
            .pop()
        {
            Some(row) => Ok(row),
            None => Err(Error::NotFound {
                entity: schema.entity_name().to_string(),
                key: what.to_string(),
            }),
        }
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
