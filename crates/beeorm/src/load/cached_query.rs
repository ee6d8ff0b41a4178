//! The read side of cached queries (D5): [`Reader::cached_search`],
//! [`Reader::cached_search_ids`] and [`Reader::cached_search_one`], and their
//! [`Engine`] shortcuts.
//!
//! Why here and not among the searches: a cached query is a list of IDs kept in
//! Redis (`cache/query.rs`) and rows read by ID, so its rows take the by-ID path of
//! every other cached read (request cache, local layer, one Redis call for all of
//! them, one SQL query for what is missing), while the list itself takes one script
//! call: a hit, a lease (this reader runs the query and fills the list, unless a
//! write came in between), a short wait for another reader's fill, or a bypass while
//! a writer is committing. Inside a transaction, for an entity whose lists are not
//! in Redis (`local_cache` only), or when Redis fails, the database answers and
//! nothing is stored.

use super::{search_sql, Reader};
use crate::cache::query::{Payload, Query, TableQueries, MAX_IDS};
use crate::cache::{Caches, EntityCache};
use crate::query::{Pager, Param, Where};
use crate::tracked::Tracked;
use crate::{Engine, Entity, Error, Result, Value};

/// A list as answered: every ID (cached or cacheable), or one page and the total
/// (more than [`MAX_IDS`] rows match).
enum Listed {
    All(Vec<u64>),
    Page(Vec<u64>, u64),
}

/// A cached query, resolved for one call.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
struct Resolved<'r> {
    caches: &'r Caches,
    cache: &'r EntityCache,
    queries: &'r TableQueries,
    query: &'r Query,
    /// The query's condition with its arguments (normalised like every search's).
    condition: Where,
}

impl<'a> Reader<'a> {
    /// One page of the rows of the cached query `query` (declared on the entity with
    /// `#[orm(cached_query(name = "...", query = "..."))]`) for `args`, and how many
    /// rows match on all pages.
    ///
    /// The ordered IDs of every matching row are kept in Redis until a write to the
    /// entity's table makes them old (any flush, transaction commit, delete or fake
    /// delete of the entity); the rows come through the entity cache. A second call
    /// with the same arguments therefore sends no SQL when the rows are cached too.
    /// Fake-deleted rows are never listed, with or without
    /// [`include_deleted`](Reader::include_deleted); [`preload`](Reader::preload)
    /// applies to the rows. A row deleted between the list and its load is left out
    /// and not counted.
    ///
    /// An unknown query name, a `cached_query_one` read as a list, or a number of
    /// arguments other than the query's `?` count is [`Error::InvalidArgument`],
    /// before anything is sent. A query matching more than 50,000 rows is not cached:
    /// the database answers each page (with a `COUNT`), and Redis remembers that
    /// until the next write.
    ///
    /// ```no_run
    /// # use beeorm::prelude::*;
    /// #[derive(Entity, Clone)]
    /// #[orm(local_cache, redis_cache)]
    /// #[orm(cached_query(name = "by_age", query = ":age = ? ORDER BY :name"))]
    /// #[orm(cached_query(name = "everyone", query = ""))]
    /// #[orm(cached_query_one(name = "by_email", query = ":email = ?"))]
    /// struct User {
    ///     id: u64,
    ///     name: String,
    ///     email: String,
    ///     age: u32,
    /// }
    /// # async fn demo(engine: &Engine) -> beeorm::Result<()> {
    /// let (adults, total) = engine
    ///     .cached_search::<User>("by_age", Pager::new(1, 20), &[Value::from(18)])
    ///     .await?;
    /// println!("{} of {total}", adults.len());
    /// let (first_ids, everyone) = engine
    ///     .cached_search_ids::<User>("everyone", Pager::new(1, 100), &[])
    ///     .await?;
    /// let ann = engine
    ///     .cached_search_one::<User>("by_email", &[Value::from("ann@example.com")])
    ///     .await?;
    /// # let _ = (first_ids, everyone, ann);
    /// # Ok(()) }
    /// ```
    pub async fn cached_search<E: Entity>(
        &self,
        query: &str,
        pager: Pager,
        args: &[Value],
    ) -> Result<(Vec<Tracked<E>>, u64)> {
        let tree = self.tree::<E>()?;
        let (ids, total) = self.cached_search_ids::<E>(query, pager, args).await?;
        let live = self.live();
        let (mut rows, missing) = live.fetch_many::<E, _>(&ids, Tracked::loaded).await?;
        live.preloaded(&mut rows, tree.as_ref()).await?;
        Ok((rows, total.saturating_sub(missing.len() as u64)))
    }

    /// The IDs of one page of the cached query `query` for `args`, and how many rows
    /// match on all pages: [`Reader::cached_search`] without loading the rows.
    pub async fn cached_search_ids<E: Entity>(
        &self,
        query: &str,
        pager: Pager,
        args: &[Value],
    ) -> Result<(Vec<u64>, u64)> {
        match self.cached_list::<E>(query, false, args, pager).await? {
            Listed::All(ids) => {
                let total = ids.len() as u64;
                let start = usize::try_from(pager.offset()).unwrap_or(usize::MAX);
                let size = usize::try_from(pager.size()).unwrap_or(usize::MAX);
                let page = ids
                    .get(start.min(ids.len())..)
                    .unwrap_or_default()
                    .iter()
                    .take(size)
                    .copied()
                    .collect();
                Ok((page, total))
            }
            Listed::Page(ids, total) => Ok((ids, total)),
        }
    }

    /// The row of the cached query `query` (declared with
    /// `#[orm(cached_query_one(name = "...", query = "..."))]`) for `args`: the
    /// first match by the query's `ORDER BY` (the primary key's when it has none),
    /// if any. Kept in Redis like a list (see [`Reader::cached_search`]); a list
    /// query read here is [`Error::InvalidArgument`].
    pub async fn cached_search_one<E: Entity>(
        &self,
        query: &str,
        args: &[Value],
    ) -> Result<Option<Tracked<E>>> {
        let tree = self.tree::<E>()?;
        let ids = match self
            .cached_list::<E>(query, true, args, Pager::new(1, 1))
            .await?
        {
            Listed::All(ids) | Listed::Page(ids, _) => ids,
        };
        let Some(id) = ids.first() else {
            return Ok(None);
        };
        let live = self.live();
        let (mut rows, _) = live
            .fetch_many::<E, _>(std::slice::from_ref(id), Tracked::loaded)
            .await?;
        live.preloaded(&mut rows, tree.as_ref()).await?;
        Ok(rows.pop())
    }

    /// This reader without `include_deleted`: cached queries list live rows only.
    fn live(&self) -> Reader<'a> {
        let mut r = self.clone();
        r.include_deleted = false;
        r
    }

    /// The cached query `name` of `E`, checked against how it is called.
    fn resolve<E: Entity>(&self, name: &str, one: bool, args: &[Value]) -> Result<Resolved<'a>> {
        let call = || {
            format!(
                "{}::<{}>(\"{name}\")",
                if one {
                    "cached_search_one"
                } else {
                    "cached_search"
                },
                E::TYPE_NAME
            )
        };
        let invalid = |reason: String| Error::InvalidArgument {
            call: call(),
            reason,
        };
        let registry = self.engine.registry();
        let schema = registry.table_schema::<E>()?;
        let found = registry.caches().and_then(|caches| {
            let cache = caches.entity(schema.cache_slot()?)?;
            Some((caches, cache, cache.queries.as_ref()?))
        });
        let Some((caches, cache, queries)) = found else {
            return Err(invalid(format!(
                "entity `{}` declares no cached query",
                E::TYPE_NAME
            )));
        };
        let Some(query) = queries.get(name) else {
            let known: Vec<&str> = queries.queries.iter().map(|q| q.name).collect();
            return Err(invalid(format!(
                "entity `{}` has no cached query `{name}` (it has: {})",
                E::TYPE_NAME,
                known.join(", ")
            )));
        };
        if query.one != one {
            return Err(invalid(if query.one {
                format!("`{name}` is a `cached_query_one`: read it with `cached_search_one`")
            } else {
                format!("`{name}` is a list (`cached_query`): read it with `cached_search` or `cached_search_ids`")
            }));
        }
        if args.len() != query.placeholders {
            return Err(invalid(format!(
                "`{name}` (`{}`) takes {} argument(s), {} given",
                query.declared,
                query.placeholders,
                args.len()
            )));
        }
        let params = registry.hooks().prepare_params(args);
        let condition = Where::new(
            &query.sql,
            params.into_iter().map(Param::One).collect::<Vec<Param>>(),
        );
        Ok(Resolved {
            caches,
            cache,
            queries,
            query,
            condition,
        })
    }

    /// The list of the cached query `name` for `args`: from Redis, else from the
    /// database (and stored when the protocol allows).
    async fn cached_list<E: Entity>(
        &self,
        name: &str,
        one: bool,
        args: &[Value],
        pager: Pager,
    ) -> Result<Listed> {
        let r = self.resolve::<E>(name, one, args)?;
        #[cfg(feature = "redis")]
        if let (crate::executor::Executor::Pool, true, Some(client)) =
            (&self.exec, r.queries.in_redis, r.cache.control.as_ref())
        {
            return self.through_redis::<E>(&r, client, pager).await;
        }
        let payload = self.list_from_database::<E>(&r).await?;
        self.listed::<E>(payload, &r, pager).await
    }

    /// The lease protocol of `protocol.rs` for one list.
    #[cfg(feature = "redis")]
    async fn through_redis<E: Entity>(
        &self,
        r: &Resolved<'_>,
        client: &crate::redis::RedisClient,
        pager: Pager,
    ) -> Result<Listed> {
        use std::time::{Duration, Instant};

        use crate::cache::pause::{point, Point};
        use crate::cache::protocol::{self, ListReply};
        let key = r.query.list_key(r.condition.params());
        let keys = r.queries.keys();
        let scripts = &r.caches.scripts;
        let token = r.caches.token();
        let deadline = Instant::now() + protocol::LEASE;
        let mut pause = Duration::from_millis(1);
        loop {
            let reply = match protocol::read_list(client, scripts, &keys, &key, token).await {
                Ok(reply) => reply,
                Err(e) => {
                    tracing::warn!(target: "beeorm::cache", entity = r.cache.entity, query = r.query.name, error = %e, "cached query read failed; the database answers");
                    ListReply::Bypass
                }
            };
            match reply {
                ListReply::Hit(text) => {
                    if let Some(payload) = Payload::decode(&text) {
                        tracing::trace!(target: "beeorm::cache", entity = r.cache.entity, query = r.query.name, "cached query hit");
                        return self.listed::<E>(payload, r, pager).await;
                    }
                    // A value this build cannot read: the database answers.
                    let payload = self.list_from_database::<E>(r).await?;
                    return self.listed::<E>(payload, r, pager).await;
                }
                ListReply::Leased(version) => {
                    point(Point::BeforeQuerySelect, &r.cache.key_prefix).await;
                    let payload = match self.list_from_database::<E>(r).await {
                        Ok(p) => p,
                        Err(e) => {
                            // Give the lease back: the next reader tries at once.
                            let _ = protocol::fill_list(
                                client,
                                scripts,
                                &keys,
                                &key,
                                token,
                                &version,
                                "",
                                r.caches.settings.ttl,
                            )
                            .await;
                            return Err(e);
                        }
                    };
                    point(Point::BeforeQueryFill, &r.cache.key_prefix).await;
                    match protocol::fill_list(
                        client,
                        scripts,
                        &keys,
                        &key,
                        token,
                        &version,
                        &payload.encode(),
                        r.caches.settings.ttl,
                    )
                    .await
                    {
                        Ok(stored) => {
                            tracing::trace!(target: "beeorm::cache", entity = r.cache.entity, query = r.query.name, stored, "cached query filled");
                        }
                        Err(e) => {
                            tracing::warn!(target: "beeorm::cache", entity = r.cache.entity, query = r.query.name, error = %e, "cached query fill failed");
                        }
                    }
                    return self.listed::<E>(payload, r, pager).await;
                }
                ListReply::Wait if Instant::now() + pause <= deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(32));
                }
                ListReply::Wait | ListReply::Bypass => {
                    let payload = self.list_from_database::<E>(r).await?;
                    return self.listed::<E>(payload, r, pager).await;
                }
            }
        }
    }

    /// Runs the query: the IDs of every matching live row (one for a
    /// `cached_query_one`), or [`Payload::Overflow`] beyond [`MAX_IDS`].
    async fn list_from_database<E: Entity>(&self, r: &Resolved<'_>) -> Result<Payload> {
        let (schema, pool) = self.schema_and_pool::<E>()?;
        let kind = pool.kind();
        let t = schema.templates(kind);
        let head = format!("SELECT {} FROM {}", t.columns[0], t.table);
        let limit = if r.query.one { 1 } else { MAX_IDS + 1 };
        let sql = search_sql(
            kind,
            schema,
            &head,
            &r.condition,
            false,
            true,
            &format!(" LIMIT {limit}"),
        )?;
        let rows = self
            .exec
            .query(self.engine, true, pool, &sql, r.condition.params().to_vec())
            .await?;
        let ids = rows
            .into_iter()
            .map(|row| {
                let v = row.into_iter().next().unwrap_or(Value::Null);
                crate::schema::FieldType::from_value(v).map_err(|reason| Error::Decode {
                    entity: schema.entity_name().to_string(),
                    field: schema.columns()[0].field.clone(),
                    reason,
                })
            })
            .collect::<Result<Vec<u64>>>()?;
        Ok(if ids.len() > MAX_IDS {
            Payload::Overflow
        } else {
            Payload::Ids(ids)
        })
    }

    /// A payload as the caller gets it: the IDs, or (too many to cache) the page
    /// asked for and the count, from the database.
    async fn listed<E: Entity>(
        &self,
        payload: Payload,
        r: &Resolved<'_>,
        pager: Pager,
    ) -> Result<Listed> {
        match payload {
            Payload::Ids(ids) => Ok(Listed::All(ids)),
            Payload::Overflow => {
                let (ids, total) = self
                    .live()
                    .search_ids_with_count::<E>(&r.condition, pager)
                    .await?;
                Ok(Listed::Page(ids, total))
            }
        }
    }
}

/// The default reader's cached queries (see [`Reader::cached_search`]).
impl Engine {
    /// One page of the rows of a cached query and the number of matching rows:
    /// [`Reader::cached_search`] of [`Engine::read`].
    pub async fn cached_search<E: Entity>(
        &self,
        query: &str,
        pager: Pager,
        args: &[Value],
    ) -> Result<(Vec<Tracked<E>>, u64)> {
        self.read().cached_search::<E>(query, pager, args).await
    }

    /// The IDs of one page of a cached query and the number of matching rows:
    /// [`Reader::cached_search_ids`] of [`Engine::read`].
    pub async fn cached_search_ids<E: Entity>(
        &self,
        query: &str,
        pager: Pager,
        args: &[Value],
    ) -> Result<(Vec<u64>, u64)> {
        self.read().cached_search_ids::<E>(query, pager, args).await
    }

    /// The row of a single-row cached query, if any: [`Reader::cached_search_one`]
    /// of [`Engine::read`].
    pub async fn cached_search_one<E: Entity>(
        &self,
        query: &str,
        args: &[Value],
    ) -> Result<Option<Tracked<E>>> {
        self.read().cached_search_one::<E>(query, args).await
    }
}
