//! Preloading (D4): referenced entities loaded with the rows, one query per
//! referenced table per level, however many rows. It is an option of the read front
//! ([`Reader::preload`](crate::Reader::preload)), applied after any read method.
//!
//! Paths: `"*"` (every reference), field names, nested paths (`"school/city"`,
//! `"school/*"`, `"*/*"`), any depth. The loader walks level by level: it collects the
//! IDs of every row of a level, per referenced entity type, loads each type with one
//! by-ID read of the seam (through the same reader: its transaction, its
//! fake-delete rule), and goes on with the loaded entities. Once the deepest level is
//! loaded, each level is shared (`Arc`) and assigned to the references above it.

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use super::Reader;
use crate::reference::{AnyRef, LoadedSet, Loader};
use crate::schema::TableSchema;
use crate::{Engine, Entity, Error, Result, Tracked};

/// Paths as a tree: field name (or `*`) → sub-paths.
#[derive(Debug, Clone, Default)]
pub(super) struct PathTree(BTreeMap<String, PathTree>);

impl PathTree {
    pub(super) fn parse(paths: &[String]) -> PathTree {
        let mut tree = PathTree::default();
        for p in paths {
            let mut node = &mut tree;
            for step in p.split('/').map(str::trim).filter(|s| !s.is_empty()) {
                node = node.0.entry(step.to_string()).or_default();
            }
        }
        tree
    }

    fn merge(&mut self, other: &PathTree) {
        for (k, v) in &other.0 {
            self.0.entry(k.clone()).or_default().merge(v);
        }
    }

    /// The sub-paths to follow through field `name`, if it is to be loaded.
    fn sub(&self, name: &str) -> Option<PathTree> {
        let named = self.0.get(name);
        let all = self.0.get("*");
        if named.is_none() && all.is_none() {
            return None;
        }
        let mut out = PathTree::default();
        for t in [named, all].into_iter().flatten() {
            out.merge(t);
        }
        Some(out)
    }

    /// Checks every step against the reference fields of the schemas.
    pub(super) fn validate(
        &self,
        engine: &Engine,
        schema: &TableSchema,
        prefix: &str,
    ) -> Result<()> {
        for (step, sub) in &self.0 {
            let path = if prefix.is_empty() {
                step.clone()
            } else {
                format!("{prefix}/{step}")
            };
            let refs: Vec<_> = schema
                .references()
                .filter(|(c, _)| step == "*" || c.field == *step)
                .collect();
            if refs.is_empty() && step != "*" {
                return Err(Error::UnknownReference {
                    path,
                    entity: schema.entity_name().to_string(),
                    field: step.clone(),
                });
            }
            if sub.0.is_empty() {
                continue;
            }
            for (_, r) in refs {
                let target = engine
                    .registry()
                    .table_schema_by_type(r.target)
                    .ok_or_else(|| Error::UnknownEntity(r.entity.to_string()))?;
                sub.validate(engine, target, &path)?;
            }
        }
        Ok(())
    }
}

/// What one level asks of one entity type.
struct Request {
    loader: Loader,
    ids: Vec<u64>,
    seen: HashSet<u64>,
    tree: PathTree,
}

/// Adds the references `visit_all` walks to `requests`, following `tree`.
fn collect<'s>(
    requests: &mut HashMap<TypeId, Request>,
    tree: &PathTree,
    visit_all: impl FnOnce(&mut dyn FnMut(&'static str, &'s mut dyn AnyRef)),
) {
    let mut subs: HashMap<&'static str, Option<PathTree>> = HashMap::new();
    visit_all(&mut |name, r| {
        let Some(sub) = subs.entry(name).or_insert_with(|| tree.sub(name)) else {
            return;
        };
        let id = r.ref_id();
        if id == 0 {
            return;
        }
        let req = requests.entry(r.target()).or_insert_with(|| Request {
            loader: r.loader(),
            ids: Vec::new(),
            seen: HashSet::new(),
            tree: PathTree::default(),
        });
        if req.seen.insert(id) {
            req.ids.push(id);
        }
        req.tree.merge(sub);
    });
}

/// One level of a preload: per entity type, the loaded entities and their sub-paths.
type Level = Vec<(TypeId, Box<dyn LoadedSet>, PathTree)>;

type Shared = HashMap<TypeId, HashMap<u64, Arc<dyn Any + Send + Sync>>>;

/// Assigns the loaded entities below to the references `visit_all` walks.
fn assign<'s>(
    below: &Shared,
    tree: &PathTree,
    visit_all: impl FnOnce(&mut dyn FnMut(&'static str, &'s mut dyn AnyRef)),
) {
    visit_all(&mut |name, r| {
        if tree.sub(name).is_none() {
            return;
        }
        if let Some(e) = below.get(&r.target()).and_then(|m| m.get(&r.ref_id())) {
            r.assign(e);
        }
    });
}

/// Loads the references of `rows` along `tree`, one query per type per level, through
/// `reader` (its preload paths are not applied again: `tree` is the plan).
pub(super) async fn fill<E: Entity>(
    reader: &Reader<'_>,
    rows: &mut [Tracked<E>],
    tree: &PathTree,
) -> Result<()> {
    if rows.is_empty() || tree.0.is_empty() {
        return Ok(());
    }
    let mut requests = HashMap::new();
    collect(&mut requests, tree, |v| {
        for row in rows.iter_mut() {
            row.untracked_mut().visit_refs(v);
        }
    });
    let mut levels: Vec<Level> = Vec::new();
    while !requests.is_empty() {
        let mut level = Vec::with_capacity(requests.len());
        for (ty, req) in std::mem::take(&mut requests) {
            let set = (req.loader)(reader, req.ids).await?;
            level.push((ty, set, req.tree));
        }
        for (_, set, tree) in level.iter_mut() {
            collect(&mut requests, tree, |v| set.visit_refs(v));
        }
        levels.push(level);
    }
    let mut below: Shared = HashMap::new();
    while let Some(mut level) = levels.pop() {
        for (_, set, tree) in level.iter_mut() {
            assign(&below, tree, |v| set.visit_refs(v));
        }
        below = HashMap::new();
        for (ty, set, _) in level {
            below.entry(ty).or_default().extend(set.into_shared());
        }
    }
    assign(&below, tree, |v| {
        for row in rows.iter_mut() {
            row.untracked_mut().visit_refs(v);
        }
    });
    Ok(())
}
