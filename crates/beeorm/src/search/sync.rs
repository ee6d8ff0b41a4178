//! Keeping the indexes in line with the rows: the after-commit sync of a flush's
//! change set, the full reindex of an entity, and the search index alters.
//!
//! **Sync.** Every committed unit of work (a flush, a transaction's `flush_in`s, the
//! lazy flush's applier) ends in the one after-commit step (`flush/commit.rs`), which
//! hands its [`ChangeSet`] here. For each change of an indexed entity: an insert or
//! upsert writes the row's document; an update that touches an indexed column (or
//! the fake-delete flag) writes the document of the row as it is now (the row
//! before, which the flush keeps for indexed entities, overlaid with the new
//! columns); an update of other columns writes nothing; a delete or fake delete
//! deletes the document. The last change of a row in the unit wins. One `write` per
//! index per unit of work, from a task of its own: a caller that drops the flush
//! future after the COMMIT does not cancel it. A failure is
//! [`Error::CommittedButNotIndexed`] (the rows are committed; run a reindex once the
//! engine is back). Nothing is indexed for a unit of work that did not commit.
//!
//! **Reindex.** Drop and create the index, then every row (fake-deleted ones left
//! out) in ID order, 1,000 per batch, each batch one `write`.

use std::collections::HashMap;
use std::sync::Arc;

use super::backend::{Doc, SearchBackend};
use super::document::{document, document_from_named};
use super::{ReindexProgress, SearchIndex};
use crate::observe::{ChangeKind, ChangeSet};
use crate::schema::TableSchema;
use crate::{Engine, Error, Result, ValidatedRegistry, Value};

/// Rows per reindex batch.
pub(crate) const REINDEX_BATCH: usize = 1_000;

/// What one unit of work does to one index.
struct Batch {
    backend: Arc<dyn SearchBackend>,
    index: SearchIndex,
    /// Per ID, the last change: `Some(doc)` to write, `None` to delete.
    ops: Vec<(u64, Option<Doc>)>,
    at: HashMap<u64, usize>,
}

/// Brings the indexes in line with a committed change set (see the module docs).
pub(crate) async fn index_changes(
    registry: &ValidatedRegistry,
    changes: Option<&ChangeSet>,
) -> Result<()> {
    let Some(changes) = changes.filter(|c| !c.is_empty() && registry.has_search()) else {
        return Ok(());
    };
    let failed = |source: Error| {
        tracing::error!(error = %source, "committed rows: the search index was not updated");
        Error::CommittedButNotIndexed {
            source: Box::new(source),
        }
    };
    let batches = batches(registry, changes).map_err(failed)?;
    if batches.is_empty() {
        return Ok(());
    }
    let write = async move {
        for b in batches {
            let mut docs = Vec::new();
            let mut deletes = Vec::new();
            for (id, op) in b.ops {
                match op {
                    Some(doc) => docs.push(doc),
                    None => deletes.push(id),
                }
            }
            b.backend.write(&b.index, &docs, &deletes).await?;
        }
        Ok::<(), Error>(())
    };
    // From a task of its own: a dropped flush future still completes the write.
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => match handle.spawn(write).await {
            Ok(r) => r.map_err(failed),
            Err(e) => Err(failed(Error::Search {
                pool: String::new(),
                index: String::new(),
                reason: format!("the indexing task did not finish: {e}"),
            })),
        },
        Err(_) => write.await.map_err(failed),
    }
}

/// The index writes of `changes`, grouped per index.
fn batches(registry: &ValidatedRegistry, changes: &ChangeSet) -> Result<Vec<Batch>> {
    let persian = registry.hooks().persian_params;
    let mut out: Vec<Batch> = Vec::new();
    for change in changes {
        let Some(schema) = registry.table_schema_by_type(change.entity_type) else {
            continue;
        };
        let Some(index) = schema.search_index() else {
            continue;
        };
        let deleted = |values: &[(String, Value)]| {
            schema
                .fake_delete_column()
                .and_then(|i| schema.columns().get(i))
                .and_then(|c| values.iter().find(|(n, _)| *n == c.name))
                .is_some_and(|(_, v)| crate::schema::fake_delete::is_deleted(v))
        };
        let op = match &change.kind {
            ChangeKind::Inserted { values } | ChangeKind::Upserted { values, .. } => {
                (!deleted(values)).then(|| document_from_named(schema, change.id, values, persian))
            }
            ChangeKind::Updated { columns } => {
                let touched = |name: &str| {
                    schema
                        .search_columns()
                        .iter()
                        .chain(schema.fake_delete_column().as_ref())
                        .any(|&i| schema.columns().get(i).is_some_and(|c| c.name == name))
                };
                if !columns.iter().any(|c| touched(&c.name)) {
                    continue;
                }
                let mut row = change.before.clone().ok_or_else(|| Error::Search {
                    pool: index.pool.clone(),
                    index: index.name.clone(),
                    reason: format!(
                        "the update of {} {} carries no row before it",
                        change.entity_name, change.id
                    ),
                })?;
                for c in columns {
                    match row.iter_mut().find(|(n, _)| *n == c.name) {
                        Some((_, v)) => *v = c.new.clone(),
                        None => row.push((c.name.clone(), c.new.clone())),
                    }
                }
                (!deleted(&row)).then(|| document_from_named(schema, change.id, &row, persian))
            }
            ChangeKind::Deleted { .. } => None,
        };
        let pos = match out
            .iter()
            .position(|b| b.index.pool == index.pool && b.index.name == index.name)
        {
            Some(pos) => pos,
            None => {
                let backend =
                    registry
                        .search_backend(&index.pool)
                        .ok_or_else(|| Error::UnknownPool {
                            kind: "search",
                            pool: index.pool.clone(),
                            used_by: format!("entity `{}`", change.entity_name),
                        })?;
                out.push(Batch {
                    backend: backend.clone(),
                    index: index.clone(),
                    ops: Vec::new(),
                    at: HashMap::new(),
                });
                out.len() - 1
            }
        };
        let b = &mut out[pos];
        match b.at.get(&change.id) {
            Some(&i) => b.ops[i].1 = op,
            None => {
                b.at.insert(change.id, b.ops.len());
                b.ops.push((change.id, op));
            }
        }
    }
    Ok(out)
}

/// The search pool of `index`.
pub(crate) fn backend<'r>(
    registry: &'r ValidatedRegistry,
    index: &SearchIndex,
) -> Result<&'r Arc<dyn SearchBackend>> {
    registry
        .search_backend(&index.pool)
        .ok_or_else(|| Error::UnknownPool {
            kind: "search",
            pool: index.pool.clone(),
            used_by: format!("search index `{}`", index.name),
        })
}

/// Drops and creates `schema`'s index, then indexes every live row in ID order;
/// returns how many rows were indexed.
pub(crate) async fn reindex(
    engine: &Engine,
    schema: &TableSchema,
    progress: &mut (dyn FnMut(ReindexProgress) + Send),
) -> Result<u64> {
    let index = schema
        .search_index()
        .ok_or_else(|| Error::NotSearchable(schema.entity_name().to_string()))?;
    let registry = engine.registry();
    let backend = backend(registry, index)?;
    let persian = registry.hooks().persian_params;
    let pool = engine.sql_pool(schema.pool_name())?;
    let kind = pool.kind();
    let t = schema.templates(kind);
    let id_col = &t.columns[0];
    let alive = schema
        .fake_delete_column()
        .and_then(|i| t.columns.get(i))
        .map(|c| format!(" AND {c} = 0"))
        .unwrap_or_default();
    let count_sql = format!("SELECT COUNT(*) FROM {} WHERE 1 = 1{alive}", t.table);
    let total = pool
        .query(&count_sql, Vec::new())
        .await?
        .first()
        .and_then(|r| r.first())
        .and_then(Value::as_i64)
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(0);
    let mut sql = kind.writer(t.select.len() + 64);
    sql.push_str(&t.select);
    sql.push_str(" WHERE ");
    sql.push_str(id_col);
    sql.push_str(" > ");
    sql.param();
    sql.push_str(&alive);
    sql.push_str(&format!(" ORDER BY {id_col} LIMIT {REINDEX_BATCH}"));
    let sql = sql.finish();
    backend.drop_index(&index.name).await?;
    backend.create(index).await?;
    progress(ReindexProgress { done: 0, total });
    let mut done = 0u64;
    let mut last = 0u64;
    loop {
        let rows = pool.query(&sql, vec![Value::U64(last)]).await?;
        let n = rows.len();
        let mut docs = Vec::with_capacity(n);
        for row in &rows {
            let id = row
                .first()
                .and_then(|v| match v {
                    Value::U64(n) => Some(*n),
                    other => other.as_i64().and_then(|n| u64::try_from(n).ok()),
                })
                .ok_or_else(|| Error::Decode {
                    entity: schema.entity_name().to_string(),
                    field: schema.id_column_name().to_string(),
                    reason: "the primary key is not an unsigned integer".into(),
                })?;
            last = last.max(id);
            docs.push(document(schema, id, |c| row.get(c), persian));
        }
        if !docs.is_empty() {
            backend.write(index, &docs, &[]).await?;
        }
        done += n as u64;
        progress(ReindexProgress {
            done,
            total: total.max(done),
        });
        if n < REINDEX_BATCH {
            break;
        }
    }
    Ok(done)
}
