//! Issue 14 (G1): full-text search scenarios, the same on every engine — tantivy in
//! RAM, tantivy in a directory, and RediSearch (Valkey + redisearch.so on its own
//! port, `BEEORM_SEARCH_REDIS_URL`). Sync on insert / update / delete / fake delete,
//! nothing for a rolled-back write, ranking, filters, sort, pager, reindex with
//! progress, alters (create, rebuild on a changed definition, drop), the Persian
//! normaliser, typed errors for bad query syntax and misused fields.
#![allow(clippy::unwrap_used, dead_code)]

#[macro_use]
mod common;

use std::sync::atomic::{AtomicU64, Ordering};

use beeorm::prelude::*;
use beeorm::search::{ReindexProgress, SearchQuery, SortOrder};
use beeorm::{Error, Pager};
use common::{exec, sync, Kind, TestDb};

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "books", search)]
struct Book {
    id: u64,
    #[orm(searchable, sortable)]
    title: String,
    #[orm(searchable)]
    body: String,
    #[orm(searchable, sortable)]
    pages: u32,
    #[orm(searchable = "tag", sortable)]
    lang: String,
    #[orm(searchable)]
    published: bool,
    /// Not indexed.
    price: f64,
    #[orm(fake_delete)]
    fake_delete: bool,
}

/// The same table with a different index definition (`body` no longer indexed).
#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "books", search)]
struct BookV2 {
    id: u64,
    #[orm(searchable, sortable)]
    title: String,
    body: String,
    #[orm(searchable, sortable)]
    pages: u32,
    #[orm(searchable = "tag", sortable)]
    lang: String,
    #[orm(searchable)]
    published: bool,
    price: f64,
    #[orm(fake_delete)]
    fake_delete: bool,
}

/// Not searchable.
#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "plain")]
struct Plain {
    id: u64,
    name: String,
}

fn book(title: &str, body: &str, pages: u32, lang: &str) -> Tracked<Book> {
    Tracked::new(Book {
        id: 0,
        title: title.into(),
        body: body.into(),
        pages,
        lang: lang.into(),
        published: true,
        price: 9.5,
        fake_delete: false,
    })
}

/// Which search engine a scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Search {
    TantivyRam,
    TantivyDir,
    Redis,
}

fn search_redis_address() -> String {
    let url = std::env::var("BEEORM_SEARCH_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6391".into());
    url.trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_string()
}

/// One scenario's world: its own database, its own index names (a namespace per
/// test and process), its own tantivy directory.
struct Ctx {
    engine: Engine,
    db: TestDb,
    search: Search,
    namespace: String,
    dir: tempfile::TempDir,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

impl Ctx {
    async fn new(search: Search, test: &str, build: impl FnOnce(&mut Registry)) -> Ctx {
        let db = TestDb::new(Kind::Sqlite, test).await;
        let dir = tempfile::tempdir().unwrap();
        // Short (index names and keys are built from it) and unique across processes.
        let namespace = format!(
            "t{}_{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let mut r = db.registry();
        r.set_cache_namespace(&namespace);
        add_search(&mut r, search, "default", &dir);
        build(&mut r);
        let engine = r.validate().await.unwrap().create_engine();
        Ctx {
            engine,
            db,
            search,
            namespace,
            dir,
        }
    }

    /// A second engine on the same database, index pool and namespace, with other
    /// entities registered.
    async fn other_engine(&self, build: impl FnOnce(&mut Registry)) -> Engine {
        let mut r = self.db.registry();
        r.set_cache_namespace(&self.namespace);
        add_search(&mut r, self.search, "default", &self.dir);
        build(&mut r);
        r.validate().await.unwrap().create_engine()
    }

    async fn ids(&self, q: SearchQuery) -> Vec<u64> {
        self.engine
            .text_search_ids::<Book>(&q, Pager::new(1, 100))
            .await
            .unwrap()
            .ids
    }

    /// Drops this test's indexes (RediSearch is shared between tests).
    async fn cleanup(self) {
        let alone = self.other_engine(|_| {}).await;
        for a in alone.alters().await.unwrap() {
            if a.pool == "default" && a.sql.contains("drop") || a.sql.contains("DROP") {
                let _ = a.exec(&alone).await;
            }
        }
        self.db.drop().await;
    }
}

fn add_search(r: &mut Registry, search: Search, name: &str, dir: &tempfile::TempDir) {
    match search {
        Search::TantivyRam => {
            r.register_search_tantivy(name, ":memory:");
        }
        Search::TantivyDir => {
            r.register_search_tantivy(name, &dir.path().to_string_lossy());
        }
        Search::Redis => {
            r.register_redis_pool("search_server", &search_redis_address(), 0);
            r.register_search_redis(name, "search_server");
        }
    }
}

/// Defines one async test per search engine: `search_test!(name, |c: Ctx| async move { … })`,
/// each with `Book` and `Plain` registered and the schema (tables and indexes) applied.
macro_rules! search_test {
    ($name:ident, $body:expr) => {
        search_test!($name, |_r: &mut Registry| {}, $body);
    };
    ($name:ident, $build:expr, $body:expr) => {
        mod $name {
            use super::*;
            async fn run(search: Search, tag: &str) {
                let c = Ctx::new(search, &format!("{}_{tag}", stringify!($name)), |r| {
                    r.register_entity::<Book>();
                    r.register_entity::<Plain>();
                    ($build)(r);
                })
                .await;
                sync(&c.engine).await;
                let c = ($body)(c).await;
                c.cleanup().await;
            }
            #[tokio::test]
            async fn tantivy_ram() {
                run(Search::TantivyRam, "ram").await;
            }
            #[tokio::test]
            async fn tantivy_dir() {
                run(Search::TantivyDir, "dir").await;
            }
            #[tokio::test]
            async fn redisearch() {
                run(Search::Redis, "rs").await;
            }
        }
    };
}

search_test!(
    sync_follows_inserts_updates_and_deletes,
    |c: Ctx| async move {
        let e = &c.engine;
        let mut a = book("Rust in Action", "systems programming with rust", 400, "en");
        let mut b = book("Go Programming", "concurrency in go", 300, "en");
        let mut d = book("Async Rust", "futures and tokio", 250, "en");
        e.flusher()
            .track(&mut a)
            .track(&mut b)
            .track(&mut d)
            .flush()
            .await
            .unwrap();
        let mut rust = c.ids(SearchQuery::new("rust")).await;
        rust.sort();
        assert_eq!(rust, [a.id, d.id]);
        assert_eq!(c.ids(SearchQuery::new("programming")).await.len(), 2);

        // Update an indexed field: the old words go, the new ones come.
        b.title = "Go Patterns".into();
        e.flush(&mut b).await.unwrap();
        assert_eq!(c.ids(SearchQuery::new("patterns")).await, [b.id]);
        assert_eq!(
            c.ids(SearchQuery::new("@title:programming")).await,
            Vec::<u64>::new()
        );
        // The fields the update did not touch are still indexed.
        assert_eq!(c.ids(SearchQuery::new("concurrency")).await, [b.id]);
        // An update of a field that is not indexed changes nothing found.
        b.price = 1.0;
        e.flush(&mut b).await.unwrap();
        assert_eq!(c.ids(SearchQuery::new("concurrency")).await, [b.id]);

        // Fake delete and real delete both take the row out of the index.
        e.delete(&mut a).await.unwrap();
        assert_eq!(c.ids(SearchQuery::new("rust")).await, [d.id]);
        e.force_delete(&mut d).await.unwrap();
        assert_eq!(c.ids(SearchQuery::new("rust")).await, Vec::<u64>::new());

        // Entities come back through the normal read path, whole.
        let (found, total) = e
            .text_search::<Book>(&SearchQuery::new("go"), Pager::new(1, 10))
            .await
            .unwrap();
        assert_eq!(total, 1);
        assert_eq!(found.len(), 1);
        assert_eq!(*found[0], *b);
        c
    }
);

search_test!(
    nothing_is_indexed_for_a_rolled_back_or_dropped_transaction,
    |c: Ctx| async move {
        let e = &c.engine;
        let pool = e.db("default").unwrap();
        let mut a = book("Phantom", "never committed", 1, "en");
        let mut tx = pool.begin().await.unwrap();
        e.flusher().track(&mut a).flush_in(&mut tx).await.unwrap();
        tx.rollback().await.unwrap();
        let mut b = book("Phantom", "never committed", 1, "en");
        let mut tx = pool.begin().await.unwrap();
        e.flusher().track(&mut b).flush_in(&mut tx).await.unwrap();
        drop(tx);
        assert_eq!(c.ids(SearchQuery::new("phantom")).await, Vec::<u64>::new());
        // Committed through a transaction: indexed at commit.
        let mut d = book("Phantom", "committed", 1, "en");
        let mut tx = pool.begin().await.unwrap();
        e.flusher().track(&mut d).flush_in(&mut tx).await.unwrap();
        assert_eq!(c.ids(SearchQuery::new("phantom")).await, Vec::<u64>::new());
        tx.commit().await.unwrap();
        assert_eq!(c.ids(SearchQuery::new("phantom")).await, [d.id]);
        c
    }
);

search_test!(more_relevant_documents_rank_first, |c: Ctx| async move {
    let e = &c.engine;
    let mut once = book(
        "A long survey",
        "this long text mentions rust once among many other words about databases caches queues and streams",
        10,
        "en",
    );
    let mut many = book("Rust", "rust rust", 10, "en");
    let mut none = book("Other", "nothing relevant", 10, "en");
    e.flusher()
        .track(&mut once)
        .track(&mut many)
        .track(&mut none)
        .flush()
        .await
        .unwrap();
    assert_eq!(c.ids(SearchQuery::new("rust")).await, [many.id, once.id]);
    // OR, phrase, prefix, negation, field restriction.
    let mut both = c.ids(SearchQuery::new("survey | nothing")).await;
    both.sort();
    assert_eq!(both, [once.id, none.id]);
    assert_eq!(c.ids(SearchQuery::new("\"long survey\"")).await, [once.id]);
    assert_eq!(
        c.ids(SearchQuery::new("\"survey long\"")).await,
        Vec::<u64>::new()
    );
    assert_eq!(c.ids(SearchQuery::new("datab*")).await, [once.id]);
    assert_eq!(c.ids(SearchQuery::new("rust -survey")).await, [many.id]);
    assert_eq!(c.ids(SearchQuery::new("@title:rust")).await, [many.id]);
    c
});

search_test!(filters_sort_and_pager, |c: Ctx| async move {
    let e = &c.engine;
    let mut books: Vec<Tracked<Book>> = (1..=25u32)
        .map(|i| {
            let lang = ["en", "fa", "de"][(i % 3) as usize];
            book(&format!("Volume {i:02}"), "series", i * 10, lang)
        })
        .collect();
    books[0].published = false;
    let mut f = e.flusher();
    for b in books.iter_mut() {
        f.track(b);
    }
    f.flush().await.unwrap();
    let id = |i: u32| books[(i - 1) as usize].id;

    // Numeric ranges: inclusive, exclusive, open.
    let q = SearchQuery::new("series").range("pages", 50.0..=80.0);
    let mut v = c.ids(q).await;
    v.sort();
    assert_eq!(v, [id(5), id(6), id(7), id(8)]);
    let q = SearchQuery::new("series").range("pages", 50.0..80.0);
    assert_eq!(c.ids(q).await.len(), 3);
    let q = SearchQuery::new("").range("pages", 231.0..);
    let mut v = c.ids(q).await;
    v.sort();
    assert_eq!(v, [id(24), id(25)]);
    // Tags: any of.
    let q = SearchQuery::new("series").tags("lang", &["fa", "de"]);
    assert_eq!(c.ids(q).await.len(), 17);
    let q = SearchQuery::new("").tags("published", &["false"]);
    assert_eq!(c.ids(q).await, [id(1)]);
    // Sort.
    let q = SearchQuery::new("series").sort_by("pages", SortOrder::Desc);
    let v = c.ids(q).await;
    assert_eq!(v.len(), 25);
    assert_eq!(&v[..3], [id(25), id(24), id(23)]);
    let q = SearchQuery::new("").sort_by("title", SortOrder::Asc);
    assert_eq!(&c.ids(q).await[..2], [id(1), id(2)]);
    // Pager: pages of 10, the total of every match.
    let q = SearchQuery::new("series").sort_by("pages", SortOrder::Asc);
    let page2 = e
        .text_search_ids::<Book>(&q, Pager::new(2, 10))
        .await
        .unwrap();
    assert_eq!(page2.total, 25);
    assert_eq!(page2.ids, (11..=20).map(id).collect::<Vec<_>>());
    let page3 = e
        .text_search_ids::<Book>(&q, Pager::new(3, 10))
        .await
        .unwrap();
    assert_eq!(page3.ids, (21..=25).map(id).collect::<Vec<_>>());
    let (found, total) = e.text_search::<Book>(&q, Pager::new(3, 10)).await.unwrap();
    assert_eq!((found.len(), total), (5, 25));
    assert_eq!(found[0].id, id(21));
    c
});

search_test!(
    reindex_indexes_existing_rows_with_progress,
    |c: Ctx| async move {
        let e = &c.engine;
        // Rows written behind the ORM's back are not in the index...
        for i in 1..=2500 {
            exec(
                e,
                &format!(
                "INSERT INTO books (id, title, body, pages, lang, published, price, fake_delete) \
                 VALUES ({i}, 'Imported {i}', 'legacy row', {i}, 'en', 1, 1.0, 0)"
            ),
            )
            .await;
        }
        exec(
            e,
            "INSERT INTO books (id, title, body, pages, lang, published, price, fake_delete) \
         VALUES (3000, 'Deleted', 'legacy row', 1, 'en', 1, 1.0, 3000)",
        )
        .await;
        let q = SearchQuery::new("legacy");
        let hits = e
            .text_search_ids::<Book>(&q, Pager::new(1, 10))
            .await
            .unwrap();
        assert_eq!(hits.total, 0);
        // ... until a reindex, which reports its progress and skips fake-deleted rows.
        let mut seen: Vec<ReindexProgress> = Vec::new();
        let n = e.reindex::<Book>(|p| seen.push(p)).await.unwrap();
        assert_eq!(n, 2500);
        assert!(seen.len() >= 3, "progress per batch: {seen:?}");
        assert_eq!(seen.last().map(|p| (p.done, p.total)), Some((2500, 2500)));
        assert!(seen.windows(2).all(|w| w[0].done <= w[1].done));
        let hits = e
            .text_search_ids::<Book>(&q, Pager::new(1, 10))
            .await
            .unwrap();
        assert_eq!(hits.total, 2500);
        // A second reindex gives the same index.
        assert_eq!(e.reindex::<Book>(|_| {}).await.unwrap(), 2500);
        let hits = e
            .text_search_ids::<Book>(&q, Pager::new(1, 10))
            .await
            .unwrap();
        assert_eq!(hits.total, 2500);
        c
    }
);

search_test!(
    alters_create_rebuild_and_drop_indexes,
    |c: Ctx| async move {
        let e = &c.engine;
        let mut a = book("Kept", "body words", 5, "en");
        e.flush(&mut a).await.unwrap();
        // Same table, another definition: the index is rebuilt (and refilled).
        let v2 = c
            .other_engine(|r| {
                r.register_entity::<BookV2>();
            })
            .await;
        let alters = v2.alters().await.unwrap();
        let search_alters: Vec<_> = alters
            .iter()
            .filter(|a| a.pool == "default" && a.sql.to_lowercase().contains("books"))
            .collect();
        assert!(!search_alters.is_empty(), "{alters:#?}");
        for a in &alters {
            a.exec(&v2).await.unwrap();
        }
        assert!(v2.alters().await.unwrap().is_empty());
        let q = SearchQuery::new("kept");
        let hits = v2
            .text_search_ids::<BookV2>(&q, Pager::new(1, 10))
            .await
            .unwrap();
        assert_eq!(hits.ids, [a.id], "the rebuild reindexed the rows");
        // `body` is no longer indexed.
        let hits = v2
            .text_search_ids::<BookV2>(&SearchQuery::new("body"), Pager::new(1, 10))
            .await
            .unwrap();
        assert_eq!(hits.total, 0);
        // No entity uses the index any more: a drop alter.
        let none = c.other_engine(|_| {}).await;
        let drops: Vec<_> = none
            .alters()
            .await
            .unwrap()
            .into_iter()
            .filter(|a| a.pool == "default" && !a.sql.to_uppercase().contains("TABLE"))
            .collect();
        // (An index in RAM belongs to its registry: a new one starts without it.)
        let expected = if c.search == Search::TantivyRam { 0 } else { 1 };
        assert_eq!(drops.len(), expected, "{drops:#?}");
        for d in drops {
            d.exec(&none).await.unwrap();
        }
        let left = none.alters().await.unwrap();
        assert!(
            left.iter().all(|a| a.sql.to_uppercase().contains("TABLE")),
            "{left:#?}"
        );
        c
    }
);

search_test!(misused_queries_are_typed_errors, |c: Ctx| async move {
    let e = &c.engine;
    let page = Pager::new(1, 10);
    for bad in ["\"unclosed", "rust (async", "a || b", "-only", "p*"] {
        match e
            .text_search_ids::<Book>(&SearchQuery::new(bad), page)
            .await
        {
            Err(Error::SearchQuery { query, .. }) => assert_eq!(query, bad),
            other => panic!("{bad}: {other:?}"),
        }
    }
    let misuses = [
        SearchQuery::new("x").range("title", 1.0..2.0),
        SearchQuery::new("x").range("nope", 1.0..2.0),
        SearchQuery::new("x").tags("pages", &["1"]),
        SearchQuery::new("x").sort_by("body", SortOrder::Asc),
        SearchQuery::new("x").sort_by("price", SortOrder::Asc),
        SearchQuery::new("@pages:x"),
    ];
    for q in misuses {
        match e.text_search_ids::<Book>(&q, page).await {
            Err(Error::SearchField { .. }) => {}
            other => panic!("{q:?}: {other:?}"),
        }
    }
    match e
        .text_search_ids::<Plain>(&SearchQuery::new("x"), page)
        .await
    {
        Err(Error::NotSearchable(entity)) => assert!(entity.contains("Plain")),
        other => panic!("{other:?}"),
    }
    // Hostile text is searched for, never run as engine syntax.
    let mut h = book("x @title:y {a} [1 2] ~z %w% \\ '", "hostile", 1, "en");
    e.flush(&mut h).await.unwrap();
    assert_eq!(c.ids(SearchQuery::new("hostile")).await, [h.id]);
    c
});

search_test!(
    persian_normaliser_matches_arabic_yeh_and_kaf,
    |r: &mut Registry| {
        r.enable_persian_normalizer();
    },
    |c: Ctx| async move {
        let e = &c.engine;
        // Stored with Persian letters (Keheh U+06A9, Farsi Yeh U+06CC).
        let mut a = book("کتاب خوب", "داستان", 1, "fa");
        // Written with Arabic letters: the normaliser stores them as Persian.
        let mut b = book("كتابي", "علي", 2, "fa");
        e.flusher()
            .track(&mut a)
            .track(&mut b)
            .flush()
            .await
            .unwrap();
        // A query typed with Arabic Kaf (U+0643) and Arabic Yeh (U+064A).
        assert_eq!(c.ids(SearchQuery::new("كتاب")).await, [a.id]);
        assert_eq!(c.ids(SearchQuery::new("علي")).await, [b.id]);
        assert_eq!(c.ids(SearchQuery::new("کتابی")).await, [b.id]);
        // Tag filters are normalised too.
        let q = SearchQuery::new("").tags("lang", &["fa"]);
        assert_eq!(c.ids(q).await.len(), 2);
        c
    }
);

/// A dead RediSearch server: the rows are committed, the flush says the index is
/// behind, and a reindex repairs it once the pool points at a live server.
#[tokio::test]
async fn a_dead_search_server_reports_committed_but_not_indexed() {
    let db = TestDb::new(Kind::Sqlite, "search_dead_server").await;
    let mut r = db.registry();
    r.set_cache_namespace("dead_search");
    // Nothing listens on port 1.
    r.register_redis_pool("search_server", "127.0.0.1:1", 0);
    r.register_search_redis("default", "search_server");
    r.register_entity::<Book>();
    let engine = r.validate().await.unwrap().create_engine();
    // The alters need the search server; the table does not.
    assert!(matches!(engine.alters().await, Err(Error::Search { .. })));
    engine
        .registry()
        .table_schema::<Book>()
        .unwrap()
        .update_schema(&engine)
        .await
        .unwrap();
    let mut a = book("Lost", "index is down", 1, "en");
    let err = engine.flush(&mut a).await.unwrap_err();
    assert!(
        matches!(err, Error::CommittedButNotIndexed { .. }),
        "{err:?}"
    );
    assert!(err.rows_written());
    let (rows, _) = engine.load_by_ids::<Book>(&[a.id]).await.unwrap();
    assert_eq!(rows.len(), 1, "the row is committed");
    match engine
        .text_search_ids::<Book>(&SearchQuery::new("lost"), Pager::new(1, 10))
        .await
    {
        Err(Error::Search { pool, .. }) => assert_eq!(pool, "default"),
        other => panic!("{other:?}"),
    }
    db.drop().await;
}

/// The embedded default: with no search pool registered, `default` is tantivy in RAM.
#[tokio::test]
async fn the_default_search_pool_is_tantivy_in_memory() {
    let db = TestDb::new(Kind::Sqlite, "search_default_pool").await;
    let mut r = db.registry();
    r.register_entity::<Book>();
    let engine = r.validate().await.unwrap().create_engine();
    sync(&engine).await;
    let mut a = book("Embedded", "no server needed", 1, "en");
    engine.flush(&mut a).await.unwrap();
    let hits = engine
        .text_search_ids::<Book>(&SearchQuery::new("server"), Pager::new(1, 10))
        .await
        .unwrap();
    assert_eq!(hits.ids, [a.id]);
    db.drop().await;
}

/// Sync also works on the server dialects (the write seam is the same).
mod server_dialects {
    use super::*;

    dialect_test!(search_sync_on_each_dialect, |db: TestDb| async move {
        let dir = tempfile::tempdir().unwrap();
        let mut r = db.registry();
        r.register_search_tantivy("default", &dir.path().to_string_lossy());
        r.register_entity::<Book>();
        let engine = r.validate().await.unwrap().create_engine();
        sync(&engine).await;
        let mut a = book("Dialect", "works everywhere", 1, "en");
        engine.flush(&mut a).await.unwrap();
        a.body = "changed words".into();
        engine.flush(&mut a).await.unwrap();
        let q = SearchQuery::new("changed");
        let hits = engine
            .text_search_ids::<Book>(&q, Pager::new(1, 10))
            .await
            .unwrap();
        assert_eq!(hits.ids, [a.id]);
        engine.delete(&mut a).await.unwrap();
        let hits = engine
            .text_search_ids::<Book>(&q, Pager::new(1, 10))
            .await
            .unwrap();
        assert_eq!(hits.total, 0);
        db.drop().await;
    });
}
