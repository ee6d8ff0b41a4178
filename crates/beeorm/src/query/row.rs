//! [`FromRow`]: what a [`QueryBuilder`](super::QueryBuilder) can return.
//!
//! An entity type gives a plain value (a snapshot: changing it changes nothing in
//! the database); [`Tracked<E>`] gives an entity that can be changed and flushed, as
//! the engine's read methods return. Both skip fake-deleted rows of the entity's
//! table, like the searches; raw rows (`Vec<Value>`, `HashMap`) are returned as the
//! server sent them.

use std::collections::HashMap;

use crate::{Engine, Entity, Error, Result, Tracked, Value};

/// A type a query row converts into: any [`Entity`] (columns matched by name, so the
/// select list may be in any order), `Vec<Value>` or `HashMap<String, Value>`.
pub trait FromRow: Sized {
    /// The relational pool the query runs on (an entity's own pool, else `default`).
    fn pool_name(engine: &Engine) -> String {
        let _ = engine;
        crate::DEFAULT_POOL.to_string()
    }

    /// Builds the value from one row and the names of its columns.
    fn from_row(engine: &Engine, columns: &[String], row: Vec<Value>) -> Result<Self>;

    /// The fake-delete column to filter on (`= 0`) when the query reads `table`: an
    /// entity's, when `table` is its own and it has one; `None` otherwise.
    #[doc(hidden)]
    fn alive_column(engine: &Engine, table: &str) -> Option<String> {
        let _ = (engine, table);
        None
    }
}

impl<E: Entity> FromRow for E {
    fn pool_name(engine: &Engine) -> String {
        engine.registry().table_schema::<E>().map_or_else(
            |_| crate::DEFAULT_POOL.to_string(),
            |s| s.pool_name().to_string(),
        )
    }

    fn from_row(engine: &Engine, columns: &[String], row: Vec<Value>) -> Result<Self> {
        let schema = engine.registry().table_schema::<E>()?;
        let mut cells: Vec<Option<Value>> = row.into_iter().map(Some).collect();
        let mut ordered = Vec::with_capacity(schema.columns().len());
        for col in schema.columns() {
            let pos = columns
                .iter()
                .position(|c| *c == col.name)
                .ok_or_else(|| Error::Decode {
                    entity: schema.entity_name().to_string(),
                    field: col.field.clone(),
                    reason: format!("column `{}` is not in the query's result", col.name),
                })?;
            ordered.push(
                cells
                    .get_mut(pos)
                    .and_then(Option::take)
                    .unwrap_or(Value::Null),
            );
        }
        crate::entity::decode::<E>(&mut ordered)
    }

    fn alive_column(engine: &Engine, table: &str) -> Option<String> {
        let schema = engine.registry().table_schema::<E>().ok()?;
        if schema.table_name() != table {
            return None;
        }
        let i = schema.fake_delete_column()?;
        schema.columns().get(i).map(|c| c.name.clone())
    }
}

/// A tracked entity: changes to it can be flushed (see [`Tracked`]).
impl<E: Entity> FromRow for Tracked<E> {
    fn pool_name(engine: &Engine) -> String {
        <E as FromRow>::pool_name(engine)
    }

    fn from_row(engine: &Engine, columns: &[String], row: Vec<Value>) -> Result<Self> {
        <E as FromRow>::from_row(engine, columns, row).map(Tracked::loaded)
    }

    fn alive_column(engine: &Engine, table: &str) -> Option<String> {
        <E as FromRow>::alive_column(engine, table)
    }
}

impl FromRow for Vec<Value> {
    fn from_row(_: &Engine, _: &[String], row: Vec<Value>) -> Result<Self> {
        Ok(row)
    }
}

impl FromRow for HashMap<String, Value> {
    fn from_row(_: &Engine, columns: &[String], row: Vec<Value>) -> Result<Self> {
        Ok(columns.iter().cloned().zip(row).collect())
    }
}
