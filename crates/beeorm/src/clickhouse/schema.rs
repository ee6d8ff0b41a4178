//! The server's column types, from `DESCRIBE TABLE t` (inserts) and
//! `DESCRIBE TABLE (query)` (reads: the server plans the query without running it),
//! cached per pool: per table, and per query text with its `?` placeholders, so a
//! check costs one extra round trip the first time only. A mismatch found with a
//! cached description is re-checked against a fresh one (an `ALTER` since), and a
//! failed insert forgets its table's description. Each cache holds at most
//! [`MAX_CACHED`] descriptions.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::shape::{RowShape, Shape};
use super::types::{compatible, ChType};
use super::ClickHouse;
use crate::{Error, Result};

/// Descriptions kept per pool, of tables and of query texts each.
const MAX_CACHED: usize = 4096;

/// One column as DESCRIBE gives it.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub(crate) name: String,
    /// The type as the server prints it.
    pub(crate) raw: String,
    pub(crate) ty: ChType,
    /// `""`, `DEFAULT`, `MATERIALIZED` or `ALIAS`.
    pub(crate) default_kind: String,
}

/// Cached descriptions and row shapes of one pool.
#[derive(Default)]
pub(crate) struct Schemas {
    tables: Mutex<HashMap<String, Arc<Vec<Column>>>>,
    queries: Mutex<HashMap<String, Arc<Vec<Column>>>>,
    /// Row types as they read (fixed per type).
    read_shapes: Mutex<HashMap<TypeId, Arc<RowShape>>>,
    /// Row types as they write, as far as seen (an `Option` seen only as `None` is
    /// still unknown).
    write_shapes: Mutex<HashMap<TypeId, RowShape>>,
}

/// Locks a cache; a panic while it was held cannot leave it inconsistent (each
/// update is one insert or remove), so a poisoned lock is used as is.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Schemas {
    pub(crate) fn clear(&self) {
        lock(&self.tables).clear();
        lock(&self.queries).clear();
    }

    pub(crate) fn forget_table(&self, table: &str) {
        lock(&self.tables).remove(table);
    }
}

/// Where a check happens, for errors.
pub(crate) enum Target<'a> {
    Table(&'a str),
    Query { key: &'a str, sql: &'a str },
}

impl Target<'_> {
    fn describe(&self) -> String {
        match self {
            Target::Table(t) => format!("table `{t}`"),
            Target::Query { key, .. } => format!("query `{}`", super::short(key)),
        }
    }
}

impl ClickHouse {
    /// The columns of `target`, from the cache unless `fresh`.
    async fn columns(&self, target: &Target<'_>, fresh: bool) -> Result<Arc<Vec<Column>>> {
        let schemas = &self.inner.schemas;
        let (map, key, sql) = match target {
            Target::Table(t) => {
                let sql = format!("DESCRIBE TABLE {}", super::quote_ident(t));
                (&schemas.tables, *t, sql)
            }
            Target::Query { key, sql } => {
                let sql = sql.trim().trim_end_matches(';');
                (&schemas.queries, *key, format!("DESCRIBE TABLE ({sql})"))
            }
        };
        if !fresh {
            if let Some(c) = lock(map).get(key) {
                return Ok(c.clone());
            }
        }
        let body = self
            .timed(|| format!("`{}`", super::short(&sql)), async {
                let mut cursor = self
                    .inner
                    .client
                    .query_raw(&sql)
                    .fetch_bytes("JSONCompact")?;
                cursor.collect().await
            })
            .await?;
        let columns = Arc::new(parse_describe(&body).ok_or_else(|| {
            Error::config(format!(
                "ClickHouse pool `{}`: cannot read the answer to `{}`",
                self.inner.name,
                super::short(&sql)
            ))
        })?);
        let mut cached = lock(map);
        if cached.len() >= MAX_CACHED {
            // Query texts with values written in (not bound) would grow the cache
            // without end: start over instead.
            cached.clear();
        }
        cached.insert(key.to_string(), columns.clone());
        Ok(columns)
    }

    /// Checks that rows of `shape` write into `table`.
    pub(crate) async fn check_insert(&self, table: &str, shape: &RowShape) -> Result<()> {
        self.check(Target::Table(table), |c| insert_mismatch(shape, c))
            .await
    }

    /// Checks that rows of `shape` read the result of the query.
    pub(crate) async fn check_read(&self, key: &str, sql: &str, shape: &RowShape) -> Result<()> {
        self.check(Target::Query { key, sql }, |c| read_mismatch(shape, c))
            .await
    }

    /// Runs `mismatch` on the cached description of `target`; when it finds a
    /// difference, describes `target` again (an `ALTER` since) and runs it once more.
    async fn check(
        &self,
        target: Target<'_>,
        mismatch: impl Fn(&[Column]) -> Option<Mismatch>,
    ) -> Result<()> {
        if mismatch(&self.columns(&target, false).await?).is_none() {
            return Ok(());
        }
        match mismatch(&self.columns(&target, true).await?) {
            None => Ok(()),
            Some(m) => Err(self.mismatch(&target, m)),
        }
    }

    fn mismatch(&self, target: &Target<'_>, m: Mismatch) -> Error {
        Error::ClickHouseType {
            pool: self.inner.name.clone(),
            target: target.describe().into(),
            column: m.column,
            expected: m.expected,
            found: m.found,
        }
    }

    /// How `R` reads, probed once per type.
    pub(crate) fn read_shape<R>(&self, target: &str) -> Result<Arc<RowShape>>
    where
        R: ::clickhouse::RowOwned + ::clickhouse::RowRead,
    {
        let id = TypeId::of::<R>();
        if let Some(s) = lock(&self.inner.schemas.read_shapes).get(&id) {
            return Ok(s.clone());
        }
        let shape = Arc::new(
            super::shape::of_type::<R::Value<'static>>()
                .map_err(|e| self.unusable::<R>(target, e))?,
        );
        lock(&self.inner.schemas.read_shapes).insert(id, shape.clone());
        Ok(shape)
    }

    /// How `rows` write: the cached shape of `R`, completed from the rows while some
    /// `Option` or `Vec` in it was only ever seen empty. Anything still unknown after
    /// the whole batch is empty in every row, so it fits any `Nullable`/`Array`.
    pub(crate) fn write_shape<R: serde::Serialize + 'static>(
        &self,
        table: &str,
        rows: &[R],
    ) -> Result<RowShape> {
        let id = TypeId::of::<R>();
        let mut shape = lock(&self.inner.schemas.write_shapes).get(&id).cloned();
        if let Some(s) = shape.as_ref().filter(|s| s.resolved()) {
            return Ok(s.clone());
        }
        for row in rows {
            let s = super::shape::of_value(row)
                .map_err(|e| self.unusable::<R>(&format!("table `{table}`"), e))?;
            match &mut shape {
                None => shape = Some(s),
                Some(have) => have.merge(&s),
            }
            if shape.as_ref().is_some_and(RowShape::resolved) {
                break;
            }
        }
        let shape = shape.ok_or_else(|| {
            self.unusable::<R>(
                &format!("table `{table}`"),
                super::shape::ProbeError("an empty batch has no rows to describe".into()),
            )
        })?;
        lock(&self.inner.schemas.write_shapes).insert(id, shape.clone());
        Ok(shape)
    }

    fn unusable<R>(&self, target: &str, e: super::shape::ProbeError) -> Error {
        Error::ClickHouseType {
            pool: self.inner.name.clone(),
            target: target.into(),
            column: "*".into(),
            expected: format!("row type `{}`", std::any::type_name::<R>()),
            found: format!("no way to carry it in RowBinary: {e}"),
        }
    }
}

/// A difference between a row type and the server's columns.
#[derive(Debug)]
pub(crate) struct Mismatch {
    column: String,
    expected: String,
    found: String,
}

fn type_mismatch(column: &str, shape: &Shape, col: &Column) -> Option<Mismatch> {
    (!compatible(shape, &col.ty)).then(|| Mismatch {
        column: column.to_string(),
        expected: format!("`{shape}`"),
        found: format!("`{}`", col.raw),
    })
}

/// Inserts name their columns: every field needs a writable column of a fitting
/// type; columns the row type leaves out get their defaults.
fn insert_mismatch(shape: &RowShape, columns: &[Column]) -> Option<Mismatch> {
    let RowShape::Struct(fields) = shape else {
        return Some(Mismatch {
            column: "*".into(),
            expected: "a tuple or single value".into(),
            found: "named columns: insert rows of a struct with named fields".into(),
        });
    };
    for (name, s) in fields {
        let Some(col) = columns.iter().find(|c| c.name == *name) else {
            return Some(Mismatch {
                column: name.clone(),
                expected: format!("field `{name}`"),
                found: "no such column".into(),
            });
        };
        if matches!(col.default_kind.as_str(), "MATERIALIZED" | "ALIAS") {
            return Some(Mismatch {
                column: name.clone(),
                expected: format!("field `{name}`"),
                found: format!("a {} column, which cannot be inserted", col.default_kind),
            });
        }
        if let Some(m) = type_mismatch(name, s, col) {
            return Some(m);
        }
    }
    None
}

/// Reads are positional: the result's columns, in order, must match the fields in
/// count, type and (for a struct) name: `id` or `t.id` for field `id`.
fn read_mismatch(shape: &RowShape, columns: &[Column]) -> Option<Mismatch> {
    let count = |n: usize| -> Option<Mismatch> {
        (n != columns.len()).then(|| Mismatch {
            column: "*".into(),
            expected: format!("{n} field(s)"),
            found: format!(
                "{} column(s): {}",
                columns.len(),
                columns
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    };
    match shape {
        RowShape::Struct(fields) => {
            if let Some(m) = count(fields.len()) {
                return Some(m);
            }
            for ((name, s), col) in fields.iter().zip(columns) {
                let same = col.name == *name
                    || col
                        .name
                        .strip_suffix(name.as_str())
                        .is_some_and(|p| p.ends_with('.'))
                    || col.name.trim_matches('`') == name;
                if !same {
                    return Some(Mismatch {
                        column: col.name.clone(),
                        expected: format!("field `{name}` at this position"),
                        found: format!(
                            "column `{}` (name it with `AS {name}`, or use `?fields`)",
                            col.name
                        ),
                    });
                }
                if let Some(m) = type_mismatch(name, s, col) {
                    return Some(m);
                }
            }
            None
        }
        RowShape::Positional(items) => {
            if let Some(m) = count(items.len()) {
                return Some(m);
            }
            items
                .iter()
                .zip(columns)
                .find_map(|(s, col)| type_mismatch(&col.name, s, col))
        }
    }
}

/// `{"data": [[name, type, default_type, …], …]}` from `DESCRIBE … FORMAT JSONCompact`.
fn parse_describe(body: &[u8]) -> Option<Vec<Column>> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get("data")?
        .as_array()?
        .iter()
        .map(|row| {
            let name = row.get(0)?.as_str()?.to_string();
            let raw = row.get(1)?.as_str()?.to_string();
            let default_kind = row
                .get(2)
                .and_then(|d| d.as_str())
                .unwrap_or("")
                .to_string();
            Some(Column {
                ty: ChType::parse(&raw),
                name,
                raw,
                default_kind,
            })
        })
        .collect()
}
