//! Search index alters, listed by `Engine::alters()` after the table alters: create
//! an index an entity declares and its pool lacks, rebuild one whose stored
//! definition (fingerprint) differs from the entity's, drop one no entity uses. Each
//! is an [`Alter`] whose `pool` is the search pool and whose `sql` describes it
//! (`FT.CREATE …` on RediSearch, `tantivy: create index …` on tantivy); running it
//! ([`Alter::exec`]) creating or rebuilding also indexes the rows. They are all
//! safe: an index holds nothing the tables do not.

use super::backend::SearchBackend;
use super::{SearchFieldKind, SearchIndex};
use crate::schema::Alter;
use crate::{Engine, Error, Result};

/// What a search alter does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SearchAlter {
    /// Create (or re-create) the index of `entity`, then index its rows.
    Create { entity: String, index: SearchIndex },
    /// Drop index `name` of the pool.
    Drop { name: String },
}

/// The alter text of creating `index` (`rebuild`: replacing one whose definition
/// changed): the engine's own command, else words.
fn describe_create(backend: &dyn SearchBackend, index: &SearchIndex, rebuild: bool) -> String {
    let changed = if rebuild { " (definition changed)" } else { "" };
    if let Some(cmd) = backend.create_statement(index) {
        let drop = if rebuild {
            format!("FT.DROPINDEX {} DD; ", index.name)
        } else {
            String::new()
        };
        return format!("{drop}{cmd}{changed}");
    }
    let fields = index
        .fields
        .iter()
        .map(|f| {
            let kind = match f.kind {
                SearchFieldKind::Text => "TEXT",
                SearchFieldKind::Numeric => "NUMERIC",
                SearchFieldKind::Tag => "TAG",
            };
            let sortable = if f.sortable { " SORTABLE" } else { "" };
            format!("{} {kind}{sortable}", f.name)
        })
        .collect::<Vec<_>>()
        .join(", ");
    let verb = if rebuild { "rebuild" } else { "create" };
    format!("tantivy: {verb} index {} ({fields}){changed}", index.name)
}

/// The search alters of every search pool.
pub(crate) async fn plan(engine: &Engine) -> Result<Vec<Alter>> {
    let registry = engine.registry();
    let mut out = Vec::new();
    for (pool, backend) in registry.search_backends() {
        let redis = backend.describe().starts_with("RediSearch");
        let backend: &dyn SearchBackend = backend.as_ref();
        let wanted: Vec<(&str, &SearchIndex)> = registry
            .table_schemas()
            .filter_map(|s| s.search_index().map(|i| (s.entity_name(), i)))
            .filter(|(_, i)| i.pool == pool)
            .collect();
        for (entity, index) in &wanted {
            let rebuild = match backend.stored_fingerprint(&index.name).await? {
                None => false,
                Some(f) if f == index.fingerprint() => continue,
                Some(_) => true,
            };
            out.push(Alter::search(
                describe_create(backend, index, rebuild),
                pool,
                SearchAlter::Create {
                    entity: (*entity).to_string(),
                    index: (*index).clone(),
                },
            ));
        }
        let mut existing = backend.list().await?;
        existing.sort();
        for name in existing {
            if wanted.iter().any(|(_, i)| i.name == name) {
                continue;
            }
            let sql = if redis {
                format!("FT.DROPINDEX {name} DD")
            } else {
                format!("tantivy: drop index {name}")
            };
            out.push(Alter::search(sql, pool, SearchAlter::Drop { name }));
        }
    }
    Ok(out)
}

/// Runs a search alter on search pool `pool`.
pub(crate) async fn exec(engine: &Engine, pool: &str, alter: &SearchAlter) -> Result<()> {
    let registry = engine.registry();
    let backend = registry
        .search_backend(pool)
        .ok_or_else(|| Error::UnknownPool {
            kind: "search",
            pool: pool.to_string(),
            used_by: "a search alter".into(),
        })?;
    match alter {
        SearchAlter::Drop { name } => backend.drop_index(name).await,
        SearchAlter::Create { entity, index } => {
            let schema = registry
                .table_schema_by_name(entity)
                .filter(|s| s.search_index() == Some(index))
                .ok_or_else(|| Error::Search {
                    pool: pool.to_string(),
                    index: index.name.clone(),
                    reason: format!(
                        "entity `{entity}` no longer declares this index; list the alters again"
                    ),
                })?;
            super::sync::reindex(engine, schema, &mut |_| {}).await?;
            Ok(())
        }
    }
}
