//! Preloading (D4): referenced entities loaded with the rows, one query per
//! referenced table per level, however many rows.
//!
//! Paths: `"*"` (every reference), field names, nested paths (`"school/city"`,
//! `"school/*"`, `"*/*"`), any depth. The loader walks level by level: it collects the
//! IDs of every row of a level, per referenced entity type, loads each type with one
//! `load_by_ids`, and goes on with the loaded entities. Once the deepest level is
//! loaded, each level is shared (`Arc`) and assigned to the references above it.

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use crate::query::{Pager, Where};
use crate::reference::{AnyRef, LoadedSet, Loader};
use crate::schema::TableSchema;
use crate::{Engine, Entity, Error, Result, Tracked};

/// Paths as a tree: field name (or `*`) → sub-paths.
#[derive(Debug, Clone, Default)]
struct PathTree(BTreeMap<String, PathTree>);

impl PathTree {
    fn parse(paths: &[String]) -> PathTree {
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
    fn validate(&self, engine: &Engine, schema: &TableSchema, prefix: &str) -> Result<()> {
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

/// Loads the references of `rows` along `tree`, one query per type per level.
async fn fill<E: Entity>(engine: &Engine, rows: &mut [Tracked<E>], tree: &PathTree) -> Result<()> {
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
            let set = (req.loader)(engine, req.ids).await?;
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

/// Loads and searches that preload references: [`Engine::preload`].
///
/// ```no_run
/// # use beeorm::prelude::*;
/// # #[derive(Entity)] struct City { id: u64, name: String }
/// # #[derive(Entity)] struct School { id: u64, city: Option<Ref<City>> }
/// # #[derive(Entity)] struct Student { id: u64, school: Option<Ref<School>> }
/// # async fn demo(engine: &Engine) -> beeorm::Result<()> {
/// // Three queries: students, their schools, the schools' cities.
/// let students = engine.preload(&["school/city"]).search::<Student>(&Where::all(), Pager::new(1, 100)).await?;
/// for s in &students {
///     let city = s.school.as_ref().and_then(|r| r.get()).and_then(|s| s.city.as_ref()?.get());
///     println!("{:?}", city.map(|c| &c.name));
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Preload<'e> {
    engine: &'e Engine,
    paths: Vec<String>,
}

impl Engine {
    /// Loads and searches that also load the references named by `paths`: `"*"`
    /// (all), field names, nested paths (`"school/city"`, `"school/*"`, `"*/*"`). Each
    /// level costs one query per referenced table, however many rows. A path that
    /// names no reference field is a typed [`Error::UnknownReference`].
    pub fn preload(&self, paths: &[&str]) -> Preload<'_> {
        Preload {
            engine: self,
            paths: paths.iter().map(|p| p.to_string()).collect(),
        }
    }
}

impl Preload<'_> {
    fn tree<E: Entity>(&self) -> Result<PathTree> {
        let tree = PathTree::parse(&self.paths);
        let schema = self.engine.registry().table_schema::<E>()?;
        tree.validate(self.engine, schema, "")?;
        Ok(tree)
    }

    /// Preloads the references of rows already loaded.
    pub async fn fill<E: Entity>(&self, rows: &mut [Tracked<E>]) -> Result<()> {
        let tree = self.tree::<E>()?;
        fill(self.engine, rows, &tree).await
    }

    async fn one<E: Entity>(&self, row: Option<Tracked<E>>) -> Result<Option<Tracked<E>>> {
        let mut rows: Vec<Tracked<E>> = row.into_iter().collect();
        fill(self.engine, &mut rows, &self.tree::<E>()?).await?;
        Ok(rows.pop())
    }

    /// [`Engine::load_by_id`] with preloading.
    pub async fn load_by_id<E: Entity>(&self, id: u64) -> Result<Option<Tracked<E>>> {
        self.tree::<E>()?;
        let row = self.engine.load_by_id::<E>(id).await?;
        self.one(row).await
    }

    /// [`Engine::find`] with preloading.
    pub async fn find<E: Entity>(&self, id: u64) -> Result<Tracked<E>> {
        self.tree::<E>()?;
        let row = self.engine.find::<E>(id).await?;
        let mut rows = vec![row];
        self.fill(&mut rows).await?;
        rows.pop().ok_or_else(|| Error::NotFound {
            entity: E::TYPE_NAME.to_string(),
            key: format!("id = {id}"),
        })
    }

    /// [`Engine::load_by_ids`] with preloading.
    pub async fn load_by_ids<E: Entity>(&self, ids: &[u64]) -> Result<(Vec<Tracked<E>>, Vec<u64>)> {
        let tree = self.tree::<E>()?;
        let (mut rows, missing) = self.engine.load_by_ids::<E>(ids).await?;
        fill(self.engine, &mut rows, &tree).await?;
        Ok((rows, missing))
    }

    /// [`Engine::search`] with preloading.
    pub async fn search<E: Entity>(&self, w: &Where, pager: Pager) -> Result<Vec<Tracked<E>>> {
        let tree = self.tree::<E>()?;
        let mut rows = self.engine.search::<E>(w, pager).await?;
        fill(self.engine, &mut rows, &tree).await?;
        Ok(rows)
    }

    /// [`Engine::search_with_count`] with preloading.
    pub async fn search_with_count<E: Entity>(
        &self,
        w: &Where,
        pager: Pager,
    ) -> Result<(Vec<Tracked<E>>, u64)> {
        let tree = self.tree::<E>()?;
        let (mut rows, total) = self.engine.search_with_count::<E>(w, pager).await?;
        fill(self.engine, &mut rows, &tree).await?;
        Ok((rows, total))
    }

    /// [`Engine::search_one`] with preloading.
    pub async fn search_one<E: Entity>(&self, w: &Where) -> Result<Option<Tracked<E>>> {
        self.tree::<E>()?;
        let row = self.engine.search_one::<E>(w).await?;
        self.one(row).await
    }

    /// [`Engine::all`] with preloading.
    pub async fn all<E: Entity>(&self) -> Result<Vec<Tracked<E>>> {
        let tree = self.tree::<E>()?;
        let mut rows = self.engine.all::<E>().await?;
        fill(self.engine, &mut rows, &tree).await?;
        Ok(rows)
    }
}
