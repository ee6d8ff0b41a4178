//! Search glue (issue 14): indexes kept in sync by committed flushes (insert, update,
//! delete, fake delete; nothing for a rolled-back write or an update of columns that
//! are not indexed), reindex with progress, search index alters, the engine API and
//! its typed errors — on tantivy (RAM and a directory) and RediSearch
//! (`BEEORM_SEARCH_REDIS_URL`, default `redis://127.0.0.1:6391`), with SQLite and
//! the server dialects.
#![allow(clippy::unwrap_used)]

mod common;

use beeorm::prelude::*;
use beeorm::search::{ReindexProgress, SearchFieldKind, SearchQuery, SortOrder};
use beeorm::Error;
use common::{exec, sync, Kind, TestDb};

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "ss_article", search = "s")]
struct Article {
    id: u64,
    #[orm(searchable, length = 200)]
    title: String,
    #[orm(searchable, length = 50)]
    body: Option<String>,
    #[orm(sortable)]
    views: u32,
    #[orm(searchable = "tag", length = 50)]
    category: String,
    /// Not indexed.
    plain: u32,
    #[orm(fake_delete)]
    deleted: bool,
}

/// The same table with another index definition (`title` sortable, `body` gone).
#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "ss_article", search = "s")]
struct ArticleV2 {
    id: u64,
    #[orm(searchable, sortable, length = 200)]
    title: String,
    #[orm(length = 50)]
    body: Option<String>,
    #[orm(sortable)]
    views: u32,
    #[orm(searchable = "tag", length = 50)]
    category: String,
    plain: u32,
    #[orm(fake_delete)]
    deleted: bool,
}

/// The same table without a search index.
#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "ss_article")]
struct ArticleNoSearch {
    id: u64,
    #[orm(length = 200)]
    title: String,
    #[orm(length = 50)]
    body: Option<String>,
    views: u32,
    #[orm(length = 50)]
    category: String,
    plain: u32,
    #[orm(fake_delete)]
    deleted: bool,
}

fn article(title: &str, views: u32, category: &str) -> Tracked<Article> {
    Tracked::new(Article {
        id: 0,
        title: title.into(),
        body: None,
        views,
        category: category.into(),
        plain: 0,
        deleted: false,
    })
}

/// Where the search pool `s` lives.
#[derive(Clone)]
enum Search {
    Ram,
    Dir(std::sync::Arc<tempfile::TempDir>),
    #[cfg(feature = "redis")]
    Redis,
}

#[cfg(feature = "redis")]
fn search_redis_url() -> String {
    std::env::var("BEEORM_SEARCH_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6391".into())
}

fn dir() -> Search {
    Search::Dir(std::sync::Arc::new(tempfile::tempdir().unwrap()))
}

/// Registers the search pool `s`; `namespace` keeps tests apart on a shared server.
fn add_search(r: &mut Registry, search: &Search, namespace: &str) {
    r.set_cache_namespace(namespace);
    match search {
        Search::Ram => {
            r.register_search_tantivy("s", ":memory:");
        }
        Search::Dir(d) => {
            r.register_search_tantivy("s", d.path().to_str().unwrap());
        }
        #[cfg(feature = "redis")]
        Search::Redis => {
            r.register_redis_pool("ft", &search_redis_url(), 0);
            r.register_search_redis("s", "ft");
        }
    }
}

async fn engine_with<E: Entity>(db: &TestDb, search: &Search, namespace: &str) -> Engine {
    let mut r = db.registry();
    add_search(&mut r, search, namespace);
    r.register_entity::<E>();
    r.validate().await.unwrap().create_engine()
}

async fn ids(engine: &Engine, q: &SearchQuery) -> Vec<u64> {
    engine
        .text_search_ids::<Article>(q, Pager::new(1, 100))
        .await
        .unwrap()
        .ids
}

fn sorted(mut v: Vec<u64>) -> Vec<u64> {
    v.sort_unstable();
    v
}

/// Insert, update, update of unindexed columns, fake delete, force delete, rollback,
/// filters, sort, pager, text_search through the read path, reindex.
async fn scenario(db: TestDb, search: Search, namespace: &str) {
    let engine = engine_with::<Article>(&db, &search, namespace).await;
    sync(&engine).await;
    // An index an earlier run left in a shared engine starts empty.
    assert_eq!(engine.reindex::<Article>(|_| {}).await.unwrap(), 0);
    let schema = engine.registry().table_schema::<Article>().unwrap();
    let index = schema.search_index().unwrap();
    assert_eq!(index.name, format!("{}_ss_article", namespace));
    assert_eq!(index.pool, "s");
    assert_eq!(
        index
            .fields
            .iter()
            .map(|f| (f.name.as_str(), f.kind, f.sortable))
            .collect::<Vec<_>>(),
        [
            ("title", SearchFieldKind::Text, false),
            ("body", SearchFieldKind::Text, false),
            ("views", SearchFieldKind::Numeric, true),
            ("category", SearchFieldKind::Tag, false),
        ]
    );

    // Inserts: one flush, one index write.
    let mut a = article("Rust async runtimes", 30, "tech");
    let mut b = article("Cooking rice", 10, "food");
    let mut c = article("Rust ownership explained", 20, "tech news");
    engine
        .flusher()
        .track(&mut a)
        .track(&mut b)
        .track(&mut c)
        .flush()
        .await
        .unwrap();
    assert_eq!(
        sorted(ids(&engine, &SearchQuery::new("rust")).await),
        sorted(vec![a.id, c.id])
    );
    assert_eq!(engine.search_index_len::<Article>().await.unwrap(), 3);

    // Filters, sort and pager.
    let by_views = SearchQuery::new("").sort_by("views", SortOrder::Asc);
    assert_eq!(ids(&engine, &by_views).await, [b.id, c.id, a.id]);
    let desc = SearchQuery::new("").sort_by("views", SortOrder::Desc);
    assert_eq!(ids(&engine, &desc).await, [a.id, c.id, b.id]);
    let page = engine
        .text_search_ids::<Article>(&desc, Pager::new(2, 2))
        .await
        .unwrap();
    assert_eq!((page.ids, page.total), (vec![b.id], 3));
    let only_total = engine
        .text_search_ids::<Article>(&SearchQuery::new("rust"), Pager::new(1, 0))
        .await
        .unwrap();
    assert_eq!((only_total.ids.len(), only_total.total), (0, 2));
    assert_eq!(
        ids(
            &engine,
            &SearchQuery::new("")
                .range("views", 15.0..=30.0)
                .sort_by("views", SortOrder::Asc)
        )
        .await,
        [c.id, a.id]
    );
    assert_eq!(
        ids(
            &engine,
            &SearchQuery::new("")
                .tags("category", &["tech news", "food"])
                .sort_by("views", SortOrder::Asc)
        )
        .await,
        [b.id, c.id],
        "tags match whole values, spaces included"
    );

    // An update of an indexed column: the document follows.
    a.title = "Tokio tutorial".into();
    engine.flush(&mut a).await.unwrap();
    assert_eq!(ids(&engine, &SearchQuery::new("rust")).await, [c.id]);
    assert_eq!(ids(&engine, &SearchQuery::new("tokio")).await, [a.id]);
    // The other indexed fields kept their values (row before + new columns).
    assert_eq!(
        ids(
            &engine,
            &SearchQuery::new("tokio")
                .tags("category", &["tech"])
                .range("views", 30.0..=30.0)
        )
        .await,
        [a.id]
    );

    // Set an indexed field to NULL and back.
    b.body = Some("basmati".into());
    engine.flush(&mut b).await.unwrap();
    assert_eq!(ids(&engine, &SearchQuery::new("basmati")).await, [b.id]);
    b.body = None;
    engine.flush(&mut b).await.unwrap();
    assert!(ids(&engine, &SearchQuery::new("basmati")).await.is_empty());

    // A rolled-back (and a dropped) transaction indexes nothing.
    let pool = engine.db("default").unwrap();
    let mut d = article("Phantom rollback", 1, "x");
    let mut tx = pool.begin().await.unwrap();
    engine
        .flusher()
        .track(&mut d)
        .flush_in(&mut tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let mut e = article("Phantom dropped", 1, "x");
    let mut tx = pool.begin().await.unwrap();
    engine
        .flusher()
        .track(&mut e)
        .flush_in(&mut tx)
        .await
        .unwrap();
    drop(tx);
    assert!(ids(&engine, &SearchQuery::new("phantom")).await.is_empty());
    // A committed one is indexed at its COMMIT.
    let mut f = article("Committed phantom", 2, "x");
    let mut tx = pool.begin().await.unwrap();
    engine
        .flusher()
        .track(&mut f)
        .flush_in(&mut tx)
        .await
        .unwrap();
    assert!(
        ids(&engine, &SearchQuery::new("phantom")).await.is_empty(),
        "not before COMMIT"
    );
    tx.commit().await.unwrap();
    assert_eq!(ids(&engine, &SearchQuery::new("phantom")).await, [f.id]);

    // Fake delete and force delete remove the documents.
    engine.delete(&mut f).await.unwrap();
    assert!(ids(&engine, &SearchQuery::new("phantom")).await.is_empty());
    engine.force_delete(&mut b).await.unwrap();
    assert!(ids(&engine, &SearchQuery::new("cooking")).await.is_empty());
    assert_eq!(engine.search_index_len::<Article>().await.unwrap(), 2);

    // text_search loads through the read path, in the order found; a row gone
    // behind the index's back is dropped and not counted.
    let (found, total) = engine
        .text_search::<Article>(&desc, Pager::new(1, 10))
        .await
        .unwrap();
    assert_eq!(
        found.iter().map(|x| x.title.as_str()).collect::<Vec<_>>(),
        ["Tokio tutorial", "Rust ownership explained"]
    );
    assert_eq!(total, 2);
    exec(
        &engine,
        &format!("DELETE FROM ss_article WHERE id = {}", c.id),
    )
    .await;
    let (found, total) = engine
        .text_search::<Article>(&desc, Pager::new(1, 10))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(total, 1);

    // Reindex: rows written behind the index's back are found, fake-deleted ones
    // are not, progress ends at done == total.
    for i in 0..5 {
        exec(
            &engine,
            &format!(
                "INSERT INTO ss_article (title, body, views, category, plain, deleted) \
                 VALUES ('Bulk row {i}', NULL, {i}, 'bulk', 0, 0)"
            ),
        )
        .await;
    }
    assert!(ids(&engine, &SearchQuery::new("bulk")).await.is_empty());
    let mut seen: Vec<ReindexProgress> = Vec::new();
    let n = engine.reindex::<Article>(|p| seen.push(p)).await.unwrap();
    // a (alive) + 5 bulk rows; f is fake-deleted, b and c are gone.
    assert_eq!(n, 6);
    assert_eq!(seen.first().map(|p| p.done), Some(0));
    assert_eq!(
        seen.last().copied(),
        Some(ReindexProgress { done: 6, total: 6 })
    );
    assert_eq!(ids(&engine, &SearchQuery::new("bulk")).await.len(), 5);
    assert_eq!(
        ids(&engine, &SearchQuery::new("phantom")).await,
        Vec::<u64>::new()
    );
    assert_eq!(engine.search_index_len::<Article>().await.unwrap(), 6);

    // Typed errors.
    let err = engine
        .text_search_ids::<Article>(
            &SearchQuery::new("").range("title", ..1.0),
            Pager::new(1, 1),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::SearchField { field, .. } if field == "title"),
        "{err:?}"
    );
    let err = engine
        .text_search_ids::<Article>(
            &SearchQuery::new("").sort_by("category", SortOrder::Asc),
            Pager::new(1, 1),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::SearchField { field, .. } if field == "category"),
        "{err:?}"
    );
    db.drop().await;
}

dialect_test!(sync_on_tantivy_in_ram, |db: TestDb| async move {
    let ns = match db.kind {
        Kind::MySql => "ss_ram_my",
        Kind::Postgres => "ss_ram_pg",
        Kind::Sqlite => "ss_ram_lite",
    };
    scenario(db, Search::Ram, ns).await;
});

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sync_on_tantivy_in_a_directory_sqlite() {
    let db = TestDb::new(Kind::Sqlite, "ss_dir_lite").await;
    scenario(db, dir(), "ss_dir_lite").await;
}

#[cfg(all(feature = "redis", feature = "sqlite"))]
#[tokio::test]
async fn sync_on_redisearch_sqlite() {
    let db = TestDb::new(Kind::Sqlite, "ss_redis_lite").await;
    scenario(db, Search::Redis, "ss_redis_lite").await;
}

#[cfg(all(feature = "redis", feature = "mysql"))]
#[tokio::test]
async fn sync_on_redisearch_mysql() {
    let db = TestDb::new(Kind::MySql, "ss_redis_my").await;
    scenario(db, Search::Redis, "ss_redis_my").await;
}

#[cfg(all(feature = "redis", feature = "postgres"))]
#[tokio::test]
async fn sync_on_redisearch_postgres() {
    let db = TestDb::new(Kind::Postgres, "ss_redis_pg").await;
    scenario(db, Search::Redis, "ss_redis_pg").await;
}

/// Alters: create (then nothing), rebuild when the definition changes, drop when
/// no entity uses the index; `exec` of a create indexes the rows.
async fn alters(db: TestDb, search: Search, namespace: &str) {
    // What an earlier run left in a shared engine goes first.
    let cleanup = engine_with::<ArticleNoSearch>(&db, &search, namespace).await;
    for a in cleanup
        .alters()
        .await
        .unwrap()
        .iter()
        .filter(|a| a.pool == "s")
    {
        a.exec(&cleanup).await.unwrap();
    }
    let engine = engine_with::<Article>(&db, &search, namespace).await;
    let alters = engine.alters().await.unwrap();
    let search_alters: Vec<&Alter> = alters.iter().filter(|a| a.pool == "s").collect();
    assert_eq!(search_alters.len(), 1, "{alters:#?}");
    let create = search_alters[0];
    assert!(create.safe);
    let name = format!("{namespace}_ss_article");
    match search {
        #[cfg(feature = "redis")]
        Search::Redis => assert!(create.sql.starts_with("FT.CREATE"), "{}", create.sql),
        _ => assert_eq!(
            create.sql,
            format!("tantivy: create index {name} (title TEXT, body TEXT, views NUMERIC SORTABLE, category TAG)")
        ),
    }
    // The table first (rows already there are indexed by the create).
    for a in alters.iter().filter(|a| a.pool != "s") {
        a.exec(&engine).await.unwrap();
    }
    exec(
        &engine,
        "INSERT INTO ss_article (title, body, views, category, plain, deleted) \
         VALUES ('existing row', NULL, 1, 't', 0, 0)",
    )
    .await;
    create.exec(&engine).await.unwrap();
    assert_eq!(ids(&engine, &SearchQuery::new("existing")).await, [1]);
    assert!(engine.alters().await.unwrap().is_empty());

    // Another definition of the index: a rebuild, which reindexes.
    let v2 = engine_with::<ArticleV2>(&db, &search, namespace).await;
    let alters = v2.alters().await.unwrap();
    assert_eq!(alters.len(), 1, "{alters:#?}");
    assert!(
        alters[0].sql.contains("definition changed"),
        "{}",
        alters[0].sql
    );
    alters[0].exec(&v2).await.unwrap();
    assert!(v2.alters().await.unwrap().is_empty());
    let hits = v2
        .text_search_ids::<ArticleV2>(
            &SearchQuery::new("existing").sort_by("title", SortOrder::Asc),
            Pager::new(1, 5),
        )
        .await
        .unwrap();
    assert_eq!(hits.ids, [1]);

    // No entity uses it any more: a drop.
    let none = engine_with::<ArticleNoSearch>(&db, &search, namespace).await;
    let alters = none.alters().await.unwrap();
    assert_eq!(alters.len(), 1, "{alters:#?}");
    assert_eq!(alters[0].pool, "s");
    assert!(
        alters[0].sql.contains(&name) && alters[0].sql.to_lowercase().contains("drop"),
        "{}",
        alters[0].sql
    );
    alters[0].exec(&none).await.unwrap();
    assert!(none.alters().await.unwrap().is_empty());
    db.drop().await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn alters_on_tantivy_in_a_directory() {
    let db = TestDb::new(Kind::Sqlite, "ss_alters_dir").await;
    alters(db, dir(), "ss_alters_dir").await;
}

#[cfg(all(feature = "redis", feature = "postgres"))]
#[tokio::test]
async fn alters_on_redisearch() {
    let db = TestDb::new(Kind::Postgres, "ss_alters_redis").await;
    alters(db, Search::Redis, "ss_alters_redis").await;
}

/// With the Persian normaliser on, a query typed with Arabic Yeh and Kaf finds a
/// row stored with Persian letters (and the other way round), tags included.
async fn persian(search: Search, namespace: &str) {
    let db = TestDb::new(Kind::Sqlite, namespace).await;
    let mut r = db.registry();
    add_search(&mut r, &search, namespace);
    r.register_entity::<Article>();
    r.enable_persian_normalizer();
    let engine = r.validate().await.unwrap().create_engine();
    sync(&engine).await;
    engine.reindex::<Article>(|_| {}).await.unwrap();
    // Stored with Arabic letters: the hook normalises the row, the index follows.
    let mut a = article("علي كريمي", 1, "كتاب");
    engine.flush(&mut a).await.unwrap();
    for q in ["علي", "علی", "کریمی"] {
        assert_eq!(
            ids(&engine, &SearchQuery::new(q)).await,
            [a.id],
            "query {q}"
        );
    }
    assert_eq!(
        ids(&engine, &SearchQuery::new("").tags("category", &["كتاب"])).await,
        [a.id]
    );
    db.drop().await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn persian_on_tantivy() {
    persian(Search::Ram, "ss_fa_tantivy").await;
}

#[cfg(all(feature = "redis", feature = "sqlite"))]
#[tokio::test]
async fn persian_on_redisearch() {
    persian(Search::Redis, "ss_fa_redis").await;
}

/// A search engine that cannot be reached: the rows are committed, the flush says
/// `CommittedButNotIndexed`; an update of columns that are not indexed writes no
/// index, so it succeeds.
#[cfg(all(feature = "redis", feature = "sqlite"))]
#[tokio::test]
async fn an_unreachable_engine_is_committed_but_not_indexed() {
    let db = TestDb::new(Kind::Sqlite, "ss_dead").await;
    let mut r = db.registry();
    r.set_cache_namespace("ss_dead");
    // Nothing listens on port 1.
    r.register_redis_pool("dead", "127.0.0.1:1", 0);
    r.set_redis_timeouts(
        "dead",
        std::time::Duration::from_millis(200),
        std::time::Duration::from_millis(200),
    );
    r.register_search_redis("s", "dead");
    r.register_entity::<Article>();
    let engine = r.validate().await.unwrap().create_engine();
    // Listing alters asks the engine: the failure is typed.
    let err = engine.alters().await.unwrap_err();
    assert!(
        matches!(&err, Error::Search { pool, .. } if pool == "s"),
        "{err:?}"
    );
    let schema = engine.registry().table_schema::<Article>().unwrap();
    schema.update_schema(&engine).await.unwrap();
    let mut a = article("never indexed", 1, "x");
    let err = engine.flush(&mut a).await.unwrap_err();
    assert!(
        matches!(err, Error::CommittedButNotIndexed { .. }),
        "{err:?}"
    );
    assert!(err.rows_written());
    assert!(a.id > 0 && !a.is_new(), "the row is written");
    // Only an unindexed column: nothing to index, no error.
    a.plain = 7;
    engine.flush(&mut a).await.unwrap();
    // An indexed one: the error again.
    a.views = 8;
    let err = engine.flush(&mut a).await.unwrap_err();
    assert!(
        matches!(err, Error::CommittedButNotIndexed { .. }),
        "{err:?}"
    );
    let err = engine.delete(&mut a).await.unwrap_err();
    assert!(
        matches!(err, Error::CommittedButNotIndexed { .. }),
        "{err:?}"
    );
    let err = engine
        .text_search_ids::<Article>(&SearchQuery::new("x"), Pager::new(1, 1))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Search { .. }), "{err:?}");
    db.drop().await;
}

/// An entity without `#[orm(search)]`.
#[derive(Entity, Debug)]
#[orm(table = "ss_plain")]
struct Plain {
    id: u64,
    name: String,
}

#[derive(Entity, Debug)]
#[orm(table = "ss_default", search)]
struct InDefault {
    id: u64,
    #[orm(searchable)]
    name: String,
}

#[derive(Entity, Debug)]
#[orm(table = "ss_nowhere", search = "nowhere")]
struct InUnknownPool {
    id: u64,
    #[orm(searchable)]
    name: String,
}

#[derive(Embedded, Debug)]
struct Address {
    #[orm(searchable)]
    city: String,
}

/// An embedded searchable field in an entity without a search index.
#[derive(Entity, Debug)]
#[orm(table = "ss_embedded")]
struct EmbeddedNoSearch {
    id: u64,
    #[orm(embedded)]
    address: Address,
}

/// An embedded searchable field in an indexed entity: the column is the field.
#[derive(Entity, Debug)]
#[orm(table = "ss_embedded_ok", search)]
struct EmbeddedSearch {
    id: u64,
    #[orm(embedded)]
    address: Address,
}

#[derive(Entity, Debug)]
#[orm(table = "ss_badkind", search)]
struct BadKind {
    id: u64,
    #[orm(searchable = "numeric")]
    name: String,
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn definition_and_configuration_errors() {
    async fn validate(f: impl FnOnce(&mut Registry)) -> beeorm::Result<ValidatedRegistry> {
        let mut r = Registry::new();
        r.register_sqlite_pool("default", ":memory:");
        f(&mut r);
        r.validate().await
    }
    let err = validate(|r| {
        r.register_entity::<InUnknownPool>();
    })
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::UnknownPool { kind: "search", pool, .. } if pool == "nowhere"),
        "{err:?}"
    );
    let err = validate(|r| {
        r.register_entity::<EmbeddedNoSearch>();
    })
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::Definition { entity, field: Some(f), .. } if entity == "EmbeddedNoSearch" && f == "address.city"),
        "{err:?}"
    );
    let err = validate(|r| {
        r.register_entity::<BadKind>();
    })
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::Definition { field: Some(f), reason, .. } if f == "name" && reason.contains("text, tag")),
        "{err:?}"
    );
    let err = validate(|r| {
        r.register_search_tantivy("s", ":memory:");
        r.register_search_tantivy("s", ":memory:");
    })
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::Config(m) if m.contains("twice")),
        "{err:?}"
    );
    let err = validate(|r| {
        r.register_search_tantivy("bad name", ":memory:");
    })
    .await
    .unwrap_err();
    assert!(matches!(&err, Error::Config(_)), "{err:?}");
    #[cfg(feature = "redis")]
    {
        let err = validate(|r| {
            r.register_search_redis("s", "missing");
        })
        .await
        .unwrap_err();
        assert!(
            matches!(&err, Error::UnknownPool { kind: "redis", pool, .. } if pool == "missing"),
            "{err:?}"
        );
        let err = validate(|r| {
            r.register_redis_cluster("cluster", &["127.0.0.1:7000"]);
            r.register_search_redis("s", "cluster");
        })
        .await
        .unwrap_err();
        assert!(
            matches!(&err, Error::Config(m) if m.contains("Cluster")),
            "{err:?}"
        );
    }

    // The implicit `default` pool: tantivy in RAM.
    let v = validate(|r| {
        r.register_entity::<InDefault>();
        r.register_entity::<Plain>();
        r.register_entity::<EmbeddedSearch>();
    })
    .await
    .unwrap();
    assert_eq!(v.search_pools(), ["default"]);
    let embedded = v
        .table_schema::<EmbeddedSearch>()
        .unwrap()
        .search_index()
        .unwrap();
    assert_eq!(embedded.fields[0].name, "address_city");
    let engine = v.create_engine();
    sync(&engine).await;
    let mut row = Tracked::new(InDefault {
        id: 0,
        name: "implicit default".into(),
    });
    engine.flush(&mut row).await.unwrap();
    let hits = engine
        .text_search_ids::<InDefault>(&SearchQuery::new("implicit"), Pager::new(1, 5))
        .await
        .unwrap();
    assert_eq!(hits.ids, [row.id]);
    let err = engine
        .text_search_ids::<Plain>(&SearchQuery::new("x"), Pager::new(1, 5))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::NotSearchable(e) if e == "Plain"),
        "{err:?}"
    );
    let err = engine.reindex::<Plain>(|_| {}).await.unwrap_err();
    assert!(matches!(&err, Error::NotSearchable(_)), "{err:?}");
}

#[test]
fn yaml_declares_search_pools() {
    let r =
        Registry::from_yaml("default:\n  sqlite: \":memory:\"\nsearch:\n  tantivy: \":memory:\"\n");
    assert!(r.is_ok(), "{r:?}");
    let err = Registry::from_yaml("s:\n  tantivy: \":memory:\"\n  redisearch: ft\n").unwrap_err();
    assert!(
        matches!(&err, Error::Config(m) if m.contains("both")),
        "{err:?}"
    );
}
