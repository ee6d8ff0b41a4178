//! A walk through beeorm, step by step.
//!
//! ```text
//! cargo run --example tour                          # embedded: SQLite in a temp dir + in-process cache
//! cargo run --example tour -- --config beeorm.yaml  # the pools a YAML file names
//! ```
//!
//! With `--config`, the entities live in pool `default`, which the file must define
//! (MySQL/MariaDB or SQLite). The tour creates its own tables (`tour_*`) and drops them
//! at the end; it never touches other tables.

use std::path::PathBuf;

use beeorm::prelude::*;
use clap::Parser;

/// A country, referenced by shops.
#[derive(Entity)]
#[orm(table = "countries")]
struct Country {
    id: u32,
    name: String,
}

/// A shop references its country: a column, an index and a foreign key.
#[derive(Entity)]
#[orm(table = "shops")]
struct Shop {
    id: u64,
    name: String,
    country: Ref<Country>,
}

/// A row kept in the entity caches: the in-process layer here (`local_cache`), and
/// Redis too when the configuration names a `default` Redis pool (`redis_cache`
/// would add it explicitly).
#[derive(Entity, Clone, Debug)]
#[orm(table = "tour_settings", local_cache)]
struct Setting {
    id: u64,
    #[orm(length = 50)]
    name: String,
    value: String,
}

/// An article in a full-text index (`search`): its title and body are searched, its
/// views sort, its language filters.
#[derive(Entity, Clone, Debug)]
#[orm(table = "tour_articles", search)]
struct Article {
    id: u64,
    #[orm(searchable)]
    title: String,
    #[orm(searchable)]
    body: String,
    #[orm(searchable, sortable)]
    views: u32,
    #[orm(searchable = "tag")]
    lang: String,
}

/// Full-text search on the embedded engine (tantivy) unless the configuration names
/// a search pool `default`: writes are indexed after COMMIT, searches load entities
/// through the read path.
async fn search(base: &Registry, index_dir: Option<&std::path::Path>) -> beeorm::Result<()> {
    use beeorm::search::{SearchQuery, SortOrder};
    let mut registry = base.clone();
    if let Some(dir) = index_dir {
        registry.register_search_tantivy("default", &dir.to_string_lossy());
        println!("   tantivy index in {}", dir.display());
    }
    registry.register_entity::<Article>();
    let engine = registry.validate().await?.create_engine();
    // The article table and its index (nothing else: other tables are not ours).
    for alter in engine.alters().await? {
        if alter.sql.contains("tour_articles") {
            println!("   {}", alter.sql.lines().next().unwrap_or_default());
            alter.exec(&engine).await?;
        }
    }
    let article = |title: &str, body: &str, views: u32, lang: &str| {
        Tracked::new(Article {
            id: 0,
            title: title.into(),
            body: body.into(),
            views,
            lang: lang.into(),
        })
    };
    let mut a = article(
        "Rust in production",
        "async services with tokio and rust",
        900,
        "en",
    );
    let mut b = article(
        "Caching rows",
        "local and Redis caches kept coherent",
        300,
        "en",
    );
    let mut c = article(
        "Streams",
        "events on Redis streams, consumed with rust",
        500,
        "en",
    );
    let mut d = article("کتاب راهنما", "راهنمای جستجو", 100, "fa");
    engine
        .flusher()
        .track(&mut a)
        .track(&mut b)
        .track(&mut c)
        .track(&mut d)
        .flush()
        .await?;
    let query = SearchQuery::new("rust | redis").sort_by("views", SortOrder::Desc);
    let (found, total) = engine
        .text_search::<Article>(&query, Pager::new(1, 10))
        .await?;
    println!("   `rust | redis`, most viewed first: {total} found");
    for x in &found {
        println!("     {:>4} views  {}", x.views, x.title);
    }
    let query = SearchQuery::new("\"redis streams\"").range("views", 400.0..);
    let hits = engine
        .text_search_ids::<Article>(&query, Pager::new(1, 10))
        .await?;
    println!(
        "   phrase `\"redis streams\"` with views >= 400: ids {:?}",
        hits.ids
    );
    b.body = "a cache that never serves stale rows".into();
    engine.flush(&mut b).await?;
    let hits = engine
        .text_search_ids::<Article>(&SearchQuery::new("redis"), Pager::new(1, 10))
        .await?;
    println!(
        "   after an update of `{}`, `redis` finds {} article(s)",
        b.title, hits.total
    );
    engine.delete(&mut c).await?;
    let query = SearchQuery::new("").tags("lang", &["fa"]);
    let hits = engine
        .text_search_ids::<Article>(&query, Pager::new(1, 10))
        .await?;
    println!("   tag filter lang=fa: {} article(s)", hits.total);
    match engine
        .text_search_ids::<Article>(&SearchQuery::new("rust (async"), Pager::new(1, 10))
        .await
    {
        Err(e) => println!("   a bad query is a typed error: {e}"),
        Ok(_) => println!("   (unexpected: a bad query was accepted)"),
    }
    // Clean up: the table, and the index (an alter of an engine without the entity).
    engine
        .registry()
        .table_schema::<Article>()?
        .drop_table(&engine)
        .await?;
    let bare = base.clone();
    let bare = match index_dir {
        Some(dir) => {
            let mut r = bare;
            r.register_search_tantivy("default", &dir.to_string_lossy());
            r.validate().await?.create_engine()
        }
        None => bare.validate().await?.create_engine(),
    };
    for alter in bare.alters().await? {
        if alter.pool == "default" && alter.sql.contains("tour_articles") {
            alter.exec(&bare).await?;
        }
    }
    Ok(())
}

#[derive(Parser)]
#[command(about = "A tour of beeorm")]
struct Args {
    /// YAML configuration naming the pools (default: embedded SQLite + local cache).
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(OrmEnum, Clone, Copy, Debug, PartialEq)]
enum Plan {
    Free,
    Pro,
    Enterprise,
}

#[derive(Embedded, Debug)]
struct Address {
    street: String,
    city: String,
}

#[derive(Entity)]
#[orm(table = "tour_users")]
struct User {
    id: u64,
    #[orm(length = 100, index = "NameCity")]
    name: String,
    #[orm(unique = "Email")]
    email: String,
    age: Option<u8>,
    plan: Plan,
    #[orm(embedded)]
    address: Address,
    #[orm(decimal = "10,2")]
    balance: f64,
    created_at: chrono::NaiveDateTime,
}

/// The same table, a release later: one new column, one new index.
#[derive(Entity)]
#[orm(table = "tour_users")]
struct UserV2 {
    id: u64,
    #[orm(length = 100, index = "NameCity")]
    name: String,
    #[orm(unique = "Email")]
    email: String,
    age: Option<u8>,
    plan: Plan,
    #[orm(embedded)]
    address: Address,
    #[orm(decimal = "10,2")]
    balance: f64,
    created_at: chrono::NaiveDateTime,
    #[orm(index = "LastLogin")]
    last_login: Option<chrono::NaiveDateTime>,
}

/// An order: every change is published to the dirty stream `tour-orders`.
#[cfg(feature = "redis")]
#[derive(Entity)]
#[orm(table = "tour_orders", dirty = "tour-orders")]
struct Order {
    id: u64,
    #[orm(length = 50)]
    item: String,
    quantity: u32,
}

/// A serialised event body.
#[cfg(feature = "redis")]
#[derive(serde::Serialize, serde::Deserialize, Debug)]
struct Greeting {
    to: String,
    text: String,
}

/// Step 16 on the Redis of `BEEORM_REDIS_URL` (default 127.0.0.1:6379); skipped when
/// none answers.
#[cfg(feature = "redis")]
async fn events(base: &Registry) -> beeorm::Result<()> {
    let redis = std::env::var("BEEORM_REDIS_URL").unwrap_or_else(|_| "127.0.0.1:6379".into());
    let suffix = std::process::id();
    let (greetings, orders) = (
        format!("tour-greetings-{suffix}"),
        "tour-orders".to_string(),
    );
    let mut registry = base.clone();
    registry
        .register_redis_pool("tour-events", &redis, 0)
        .register_redis_stream(&greetings, "tour-events", &["tour"])
        .register_redis_stream(&orders, "tour-events", &["tour"])
        .register_entity::<Order>();
    let validated = match registry.validate().await {
        Ok(v) => v,
        Err(e) => {
            println!("   (skipped: no Redis at {redis}: {e})");
            return Ok(());
        }
    };
    let engine = validated.create_engine();
    let broker = engine.event_broker();
    let table = engine.registry().table_schema::<Order>()?;
    table.update_schema(&engine).await?;

    // Publish: a serialised value, a plain map, and two more in one pipeline.
    broker
        .publish(
            &greetings,
            &Greeting {
                to: "Ada".into(),
                text: "hello".into(),
            },
        )
        .await?;
    broker
        .publish_map(&greetings, [("to", "Grace"), ("text", "hi")])
        .await?;
    let mut publisher = broker.publisher();
    for to in ["Linus", "Barbara"] {
        publisher.publish(
            &greetings,
            &Greeting {
                to: to.into(),
                text: "welcome".into(),
            },
        )?;
    }
    let ids = publisher.send().await?;
    println!("   published 4 events to `{greetings}` (the last two in one pipeline: {ids:?})");

    // Consume: drain what is there; returning Ok acknowledges the batch.
    let handled = broker
        .consumer(&greetings, "tour")?
        .drain(|batch| async move {
            for event in batch.events() {
                match event.decode::<Greeting>() {
                    Ok(g) => println!("   consumed {}: {} to {}", event.id(), g.text, g.to),
                    Err(_) => println!(
                        "   consumed {}: map event, to = {:?}",
                        event.id(),
                        event.meta("to")
                    ),
                }
            }
            Ok::<(), beeorm::Error>(())
        })
        .await?;
    let stats = broker.stream_stats(&greetings).await?;
    println!(
        "   {handled} handled; stream length {} (every group acknowledged: trimmed), pending {}",
        stats.length,
        stats.groups.first().map_or(0, |g| g.pending)
    );

    // A dirty event: the flush publishes it after its COMMIT.
    let mut order = Tracked::new(Order {
        id: 0,
        item: "tea".into(),
        quantity: 1,
    });
    engine.flush(&mut order).await?;
    order.quantity = 3;
    engine.flush(&mut order).await?;
    broker
        .consumer(&orders, "tour")?
        .drain(|batch| async move {
            for event in batch.events() {
                let dirty = event.dirty()?;
                let changes: Vec<String> = dirty
                    .changes()
                    .iter()
                    .map(|c| format!("{}: {:?} -> {:?}", c.field(), c.old(), c.new_value()))
                    .collect();
                println!(
                    "   dirty event: {} #{} {:?} [{}]",
                    dirty.entity(),
                    dirty.id(),
                    dirty.action(),
                    changes.join(", ")
                );
            }
            Ok::<(), beeorm::Error>(())
        })
        .await?;

    table.drop_table(&engine).await?;
    let client = engine.redis("tour-events")?;
    client
        .del(&[greetings.as_str(), orders.as_str()][..])
        .await?;
    validated.close().await;
    Ok(())
}

fn step(n: u32, title: &str) {
    println!("\n== {n}. {title}");
}

fn show(alters: &[Alter]) {
    if alters.is_empty() {
        println!("   (nothing to do: the database matches the entities)");
    }
    for a in alters {
        let sql = a.sql.replace('\n', "\n      ");
        println!(
            "   [{}] on pool `{}`:\n      {sql}",
            if a.safe { "safe" } else { "UNSAFE" },
            a.pool
        );
    }
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("tour failed: {e}");
        std::process::exit(1);
    }
}

async fn run() -> beeorm::Result<()> {
    let args = Args::parse();
    let tmp = tempfile::tempdir().map_err(|e| beeorm::Error::Config(e.to_string()))?;

    step(1, "Registry: pools, caches, entities");
    let base = match &args.config {
        Some(path) => {
            println!("   reading {}", path.display());
            Registry::from_yaml_file(path)?
        }
        None => {
            let db = tmp.path().join("tour.db");
            println!(
                "   no --config: SQLite at {} and an in-process cache",
                db.display()
            );
            let mut r = Registry::new();
            r.register_sqlite_pool("default", &db.to_string_lossy())
                .register_local_cache("default", 1_000);
            r
        }
    };
    let mut registry = base.clone();
    registry.register_entity::<User>();

    step(
        2,
        "validate() checks every definition once, then engines are cheap",
    );
    let validated = registry.validate().await?;
    let engine = validated.create_engine();
    let schema = validated.table_schema::<User>()?;
    println!(
        "   entity `{}` → table `{}` on pool `{}` ({:?})",
        schema.entity_name(),
        schema.table_name(),
        schema.pool_name(),
        engine.db(schema.pool_name())?.kind()
    );
    for c in schema.columns() {
        println!(
            "     {:<16} {:?}{}",
            c.name,
            c.ty,
            if c.nullable { " NULL" } else { "" }
        );
    }
    for i in schema.indexes() {
        println!(
            "     {} `{}` on {:?}",
            if i.unique { "unique index" } else { "index" },
            i.name,
            i.columns
        );
    }

    step(3, "What would change? (this table only)");
    let (has, alters) = schema.schema_changes(&engine).await?;
    println!("   has changes: {has}");
    show(&alters);

    step(
        4,
        "update_schema() creates it; asking again finds nothing to do",
    );
    schema.update_schema(&engine).await?;
    show(&schema.schema_changes(&engine).await?.1);

    step(5, "Insert: one flush, one multi-row INSERT, IDs come back");
    let user = |name: &str, email: &str, city: &str, balance: f64| {
        Tracked::new(User {
            id: 0,
            name: name.into(),
            email: email.into(),
            age: None,
            plan: Plan::Free,
            address: Address {
                street: String::new(),
                city: city.into(),
            },
            balance,
            created_at: chrono::Utc::now().naive_utc(),
        })
    };
    let mut ali = user("Ali", "ali@example.com", "Tehran", 12.5);
    let mut sara = user("Sara", "sara@example.com", "Shiraz", 99.0);
    let mut mina = user("Mina", "mina@example.com", "Tehran", 7.25);
    engine
        .flusher()
        .track(&mut ali)
        .track(&mut sara)
        .track(&mut mina)
        .flush()
        .await?;
    println!(
        "   inserted Ali #{}, Sara #{}, Mina #{}",
        ali.id, sara.id, mina.id
    );

    step(6, "Update: only the changed columns are written");
    ali.plan = Plan::Pro;
    ali.age = Some(31);
    println!("   dirty before flush: {}", ali.is_dirty());
    engine.flush(&mut ali).await?;
    println!("   dirty after flush:  {}", ali.is_dirty());

    step(
        7,
        "Load by ID, by many IDs (one query), search with Where + Pager",
    );
    let loaded = engine.load_by_id::<User>(ali.id).await?;
    println!(
        "   load_by_id({}) → {:?}",
        ali.id,
        loaded.as_deref().map(|u| (&u.name, u.plan, u.age))
    );
    let (found, missing) = engine.load_by_ids::<User>(&[mina.id, 999, ali.id]).await?;
    println!(
        "   load_by_ids([{}, 999, {}]) → {:?}, missing {missing:?}",
        mina.id,
        ali.id,
        found.iter().map(|u| u.name.as_str()).collect::<Vec<_>>()
    );
    let w = Where::new(
        "`address_city` = ? AND `balance` > ? ORDER BY `balance` DESC",
        ("Tehran", 5),
    );
    let (rows, total) = engine
        .search_with_count::<User>(&w, Pager::new(1, 10))
        .await?;
    println!(
        "   search `{}` → {:?} ({total} in all)",
        w.sql(),
        rows.iter()
            .map(|u| (u.name.as_str(), u.balance))
            .collect::<Vec<_>>()
    );

    step(
        8,
        "Typed errors: a duplicate email is DuplicatedKey, nothing is written",
    );
    let mut dup = user("Other Ali", "ali@example.com", "Qom", 0.0);
    match engine.flush(&mut dup).await {
        Err(beeorm::Error::DuplicatedKey { index, .. }) => {
            println!(
                "   DuplicatedKey on unique index `{index}`; the entity is still new: {}",
                dup.is_new()
            )
        }
        other => println!("   unexpected: {other:?}"),
    }

    step(9, "Upsert: the same email updates the existing row instead");
    let mut again = user("Ali again", "ali@example.com", "Qom", 0.0);
    again.on_duplicate_key_update([("balance", 50.0)]);
    engine.flush(&mut again).await?;
    println!(
        "   upsert → row #{} ({}), balance now {}",
        again.id, again.name, again.balance
    );

    step(10, "Delete");
    engine.delete(&mut sara).await?;
    println!(
        "   Sara deleted; load_by_id({}) → {:?}",
        sara.id,
        engine.load_by_id::<User>(sara.id).await?.map(|u| u.id)
    );

    step(
        11,
        "A new release adds a column and an index: the alter is safe",
    );
    let mut registry = base.clone();
    registry.register_entity::<UserV2>();
    let engine2 = registry.validate().await?.create_engine();
    let schema2 = engine2.registry().table_schema::<UserV2>()?;
    let (_, alters) = schema2.schema_changes(&engine2).await?;
    show(&alters);
    for a in &alters {
        a.exec(&engine2).await?;
    }
    let kept = engine2
        .search::<UserV2>(&Where::all(), Pager::new(1, 10))
        .await?;
    println!(
        "   rows kept: {:?}",
        kept.iter()
            .map(|u| (u.id, u.name.as_str(), u.last_login))
            .collect::<Vec<_>>()
    );

    step(
        12,
        "Going back would drop `last_login` from a table with rows: UNSAFE",
    );
    let (_, alters) = validated
        .table_schema::<User>()?
        .schema_changes(&engine)
        .await?;
    show(&alters);

    step(13, "The in-process cache");
    let cache = engine.local_cache("default")?;
    let plan = cache.get_set("plan:1", None, || Plan::Enterprise);
    println!(
        "   get_set computed {plan:?}; a second get finds {:?}",
        cache.get::<Plan>("plan:1")
    );

    step(
        14,
        "References: a new country inserted first, then a preload (one query per level)",
    );
    let mut registry = base.clone();
    registry
        .register_entity::<Country>()
        .register_entity::<Shop>();
    let engine3 = registry.validate().await?.create_engine();
    let countries = engine3.registry().table_schema::<Country>()?;
    let shops = engine3.registry().table_schema::<Shop>()?;
    countries.update_schema(&engine3).await?;
    shops.update_schema(&engine3).await?;
    let mut shop = Tracked::new(Shop {
        id: 0,
        name: "Bazaar".into(),
        country: Ref::new(Country {
            id: 0,
            name: "Iran".into(),
        }),
    });
    engine3.flush(&mut shop).await?;
    println!(
        "   shop #{} references country #{} (inserted first, same transaction)",
        shop.id,
        shop.country.id()
    );
    let found = engine3
        .preload(&["country"])
        .search::<Shop>(&Where::all(), Pager::new(1, 10))
        .await?;
    for s in &found {
        println!(
            "   preloaded: {} in {}",
            s.name,
            s.country.get().map_or("?", |c| c.name.as_str())
        );
    }

    step(
        15,
        "Entity caches: the second load is served from the in-process layer",
    );
    let mut registry = base.clone();
    registry
        .set_cache_namespace("beeorm-tour")
        .register_entity::<Setting>();
    let engine4 = registry.validate().await?.create_engine();
    let settings = engine4.registry().table_schema::<Setting>()?;
    settings.update_schema(&engine4).await?;
    // With a Redis pool the local layer waits for its invalidation channel.
    for _ in 0..200 {
        if engine4.cache_stats().local_serving {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let mut theme = Tracked::new(Setting {
        id: 0,
        name: "theme".into(),
        value: "dark".into(),
    });
    engine4.flush(&mut theme).await?;
    for _ in 0..3 {
        engine4.load_by_id::<Setting>(theme.id).await?;
    }
    if let Some(s) = engine4.cache_stats().entity("Setting") {
        println!(
            "   3 loads: {} from the database, {} local hits",
            s.database_loads, s.local.hits
        );
    }
    theme.value = "light".into();
    engine4.flush(&mut theme).await?;
    let seen = engine4.find::<Setting>(theme.id).await?;
    if let Some(s) = engine4.cache_stats().entity("Setting") {
        println!(
            "   after an update the next load sees `{}` (invalidated everywhere at COMMIT)",
            seen.value
        );
        println!(
            "   stats: local hits/misses/fills {:?}, invalidations {}, database loads {}",
            (s.local.hits, s.local.misses, s.local.fills),
            s.local.invalidations,
            s.database_loads
        );
    }

    step(
        16,
        "Events on Redis Streams: publish, consume, and a dirty event",
    );
    #[cfg(feature = "redis")]
    events(&base).await?;
    #[cfg(not(feature = "redis"))]
    println!("   (skipped: this build has no `redis` feature)");

    step(
        17,
        "Full-text search: indexed after COMMIT, entities through the read path",
    );
    let index_dir = args.config.is_none().then(|| tmp.path().join("search"));
    search(&base, index_dir.as_deref()).await?;

    step(18, "Clean up");
    settings.drop_table(&engine4).await?;
    schema2.drop_table(&engine2).await?;
    println!("   dropped `{}`", schema2.table_name());
    shops.drop_table(&engine3).await?;
    countries.drop_table(&engine3).await?;
    println!("   dropped `shops` and `countries`");
    validated.close().await;
    println!("\nDone.");
    Ok(())
}
