//! The service end to end on real MariaDB and Redis, in a database and cache
//! namespace of its own: every route, its errors, the caches at work, the audit
//! consumer's rows, and one request over a real TCP connection.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use beeorm::Registry;
use beeorm_example_service::{router, run_audit_consumer, start, Config};
use serde_json::{json, Value};
use tower::ServiceExt;

fn mysql_url() -> String {
    std::env::var("BEEORM_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}

/// A database of this run's own on the test server; its DSN.
async fn database(name: &str) -> String {
    let mut r = Registry::new();
    r.register_mysql_pool("default", &mysql_url());
    let v = r.validate().await.unwrap();
    let db = v.create_engine().db("default").unwrap();
    db.execute(&format!("DROP DATABASE IF EXISTS `{name}`"), vec![])
        .await
        .unwrap();
    db.execute(&format!("CREATE DATABASE `{name}`"), vec![])
        .await
        .unwrap();
    v.close().await;
    let base = mysql_url();
    let (server, _) = base.rsplit_once('/').unwrap();
    format!("{server}/{name}")
}

async fn call(
    app: &axum::Router,
    method: Method,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(match body {
            Some(b) => Body::from(b.to_string()),
            None => Body::empty(),
        })
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    (status, value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_with_caches_and_the_audit_consumer() {
    let name = format!("svc_test_{}", std::process::id());
    let config = Config {
        database: database(&name).await,
        redis: std::env::var("BEEORM_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        namespace: format!("svc-test-{}", std::process::id()),
        caches: true,
    };
    // Events a failed earlier run left would name this run's product IDs too.
    let mut r = Registry::new();
    r.register_redis_pool("default", &config.redis, 0);
    let v = r.validate().await.unwrap();
    v.create_engine()
        .redis("default")
        .unwrap()
        .del(beeorm_example_service::CHANGES_STREAM)
        .await
        .unwrap();
    let registry = start(&config, 25).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let consumer = tokio::spawn(run_audit_consumer(registry.clone(), stopped));
    let app = router(registry.clone());

    let (status, body) = call(&app, Method::GET, "/health", None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"ok": true})));

    // Seeded: 25 products over 10 categories, c0 has 3.
    let (status, body) = call(&app, Method::GET, "/products?category=c0&size=2", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total"], 3);
    assert_eq!(body["products"].as_array().unwrap().len(), 2);
    let (_, page2) = call(
        &app,
        Method::GET,
        "/products?category=c0&size=2&page=2",
        None,
    )
    .await;
    assert_eq!(page2["products"].as_array().unwrap().len(), 1);

    // Create, read twice (the second from a cache), update, list, delete.
    let (status, created) = call(
        &app,
        Method::POST,
        "/products",
        Some(json!({"name": "kettle", "category": "c0", "price_cents": 2599, "stock": 4})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_u64().unwrap();
    assert!(id > 25);
    for _ in 0..2 {
        let (status, got) = call(&app, Method::GET, &format!("/products/{id}"), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(got["name"], "kettle");
    }
    let (_, stats) = call(&app, Method::GET, "/stats", None).await;
    let product = stats["cache"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["entity"] == "Product")
        .unwrap()
        .clone();
    assert!(
        product["local"]["hits"].as_u64().unwrap() + product["redis"]["hits"].as_u64().unwrap()
            >= 1,
        "a read served by a cache: {stats}"
    );

    let (status, updated) = call(
        &app,
        Method::PATCH,
        &format!("/products/{id}"),
        Some(json!({"price_cents": 1999})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["price_cents"], 1999);
    let (_, got) = call(&app, Method::GET, &format!("/products/{id}"), None).await;
    assert_eq!(got["price_cents"], 1999, "no stale cached copy");
    let (_, listed) = call(&app, Method::GET, "/products?category=c0&size=10", None).await;
    assert_eq!(listed["total"], 4, "the cached list saw the insert");

    let (status, _) = call(&app, Method::DELETE, &format!("/products/{id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = call(&app, Method::GET, &format!("/products/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body["error"].as_str().unwrap().contains(&id.to_string()));

    // Errors: unknown IDs, bad input, a value the column cannot hold, bad JSON.
    let (status, _) = call(
        &app,
        Method::PATCH,
        "/products/999999",
        Some(json!({"stock": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(&app, Method::DELETE, "/products/999999", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = call(&app, Method::GET, "/products", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = call(&app, Method::GET, "/products?category=c1&size=0", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) = call(
        &app,
        Method::POST,
        "/products",
        Some(json!({"name": "x".repeat(101), "category": "c1", "price_cents": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"].as_str().unwrap().contains("name"), "{body}");
    let (status, _) = call(
        &app,
        Method::POST,
        "/products",
        Some(json!({"name": " ", "category": "c1", "price_cents": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = call(
        &app,
        Method::POST,
        "/products",
        Some(json!({"name": "n", "price_cents": -5})),
    )
    .await;
    assert!(status.is_client_error(), "{status}");
    let (status, body) = call(&app, Method::GET, "/products/not-a-number", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].is_string(), "a JSON error: {body}");
    // axum's own rejections answer in the same JSON shape: a body that is not JSON,
    // a missing field, a query parameter of the wrong type.
    let request = Request::builder()
        .method(Method::POST)
        .uri("/products")
        .header("content-type", "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&bytes).expect("a JSON error body");
    assert!(body["error"].is_string(), "{body}");
    let (status, body) = call(&app, Method::POST, "/products", Some(json!({"name": "n"}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("category")
            || body["error"].as_str().unwrap().contains("price_cents"),
        "{body}"
    );
    let (status, body) = call(&app, Method::GET, "/products?category=c1&page=x", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].as_str().unwrap().contains("page"), "{body}");

    // The audit consumer wrote one row per change of the kettle: added, updated, deleted.
    let engine = registry.create_engine();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let rows = engine
            .db("default")
            .unwrap()
            .query(
                "SELECT action, fields FROM svc_product_changes WHERE product_id = ? ORDER BY id",
                vec![id.into()],
            )
            .await
            .unwrap();
        if rows.len() == 3 {
            let actions: Vec<String> = rows
                .iter()
                .map(|r| r[0].as_str().unwrap().to_string())
                .collect();
            assert_eq!(actions, ["added", "updated", "deleted"]);
            assert_eq!(rows[1][1].as_str().unwrap(), "price_cents");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "audit rows: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // One request over a real connection.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("{\"ok\":true}"), "{answer}");
    server.abort();

    stop.send(()).unwrap();
    consumer.await.unwrap().unwrap();
    let redis = engine.redis("default").unwrap();
    for key in redis
        .scan_match(&format!("{}:*", config.namespace))
        .await
        .unwrap()
    {
        redis.del(key.as_str()).await.unwrap();
    }
    redis
        .del(beeorm_example_service::CHANGES_STREAM)
        .await
        .unwrap();
    engine
        .db("default")
        .unwrap()
        .execute(&format!("DROP DATABASE `{name}`"), vec![])
        .await
        .unwrap();
    registry.close().await;
}
