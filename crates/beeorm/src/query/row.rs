//! [`FromRow`]: what a [`QueryBuilder`](super::QueryBuilder) can return.

use std::collections::HashMap;

use crate::{Engine, Entity, Error, Result, Value};

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
        crate::load::decode::<E>(&mut ordered)
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
