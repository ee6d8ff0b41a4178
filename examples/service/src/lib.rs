//! An HTTP JSON API on [axum] over beeorm, as a service would be written: the example
//! users copy.
//!
//! - **One engine per request**, with its request cache ([`Request`] extractor): a
//!   row asked twice while serving one request costs one read.
//! - **Entity caches**: [`Product`] lives in the local (in-process) layer and in
//!   Redis, kept coherent by beeorm's write protocol; `BEEORM_SERVICE_CACHE=off`
//!   switches every cache off ([`beeorm::Registry::set_entity_caches_enabled`]) for
//!   the load test's comparison.
//! - **A cached query**: `GET /products?category=…` reads the list `by_category` from
//!   Redis; writes to products outdate it.
//! - **A dirty-stream consumer**: every committed change of a product is published on
//!   the stream `product-changes`; [`run_audit_consumer`] writes one
//!   [`ProductChange`] row per event (an audit trail), running in the service.
//! - **Errors** are JSON bodies with the right status: 404, 422 (bad input or a value
//!   the column cannot hold), 503 (a server down or too slow), 500 otherwise; nothing
//!   panics.
//!
//! Routes: `GET /health`, `GET /products/{id}`, `GET /products?category=&page=&size=`,
//! `POST /products`, `PATCH /products/{id}`, `DELETE /products/{id}`, `GET /stats`.

use std::time::Duration;

use axum::extract::{FromRequest, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use beeorm::events::{Batch, StopHandle};
use beeorm::{Engine, Pager, Registry, Tracked, ValidatedRegistry};
use serde::{Deserialize, Serialize};

/// The stream of product changes (a dirty stream: beeorm publishes on it).
pub const CHANGES_STREAM: &str = "product-changes";
/// The consumer group writing the audit trail.
pub const AUDIT_GROUP: &str = "audit";

/// A product of the catalogue: cached in-process and in Redis; every change is
/// published on [`CHANGES_STREAM`].
#[derive(beeorm::Entity, Debug, Clone, Serialize)]
#[orm(
    table = "svc_products",
    local_cache,
    redis_cache,
    dirty = "product-changes"
)]
#[orm(cached_query(name = "by_category", query = ":category = ? ORDER BY :id"))]
pub struct Product {
    /// Assigned by the database.
    pub id: u64,
    /// Shown to customers.
    #[orm(length = 100)]
    pub name: String,
    /// The listing the product appears in.
    #[orm(length = 30, index = "Category")]
    pub category: String,
    /// Price in cents.
    pub price_cents: u32,
    /// Units in stock.
    pub stock: u32,
}

/// One committed change of a product, written by the audit consumer.
#[derive(beeorm::Entity, Debug, Clone, Serialize)]
#[orm(table = "svc_product_changes")]
pub struct ProductChange {
    /// Assigned by the database.
    pub id: u64,
    /// The product.
    #[orm(index = "Product")]
    pub product_id: u64,
    /// `added`, `updated` or `deleted`.
    #[orm(length = 10)]
    pub action: String,
    /// The fields that changed, comma-separated.
    #[orm(length = 200)]
    pub fields: String,
}

/// Where the service connects, and how.
#[derive(Debug, Clone)]
pub struct Config {
    /// The MySQL/MariaDB DSN (or a PostgreSQL one, or `sqlite:PATH`).
    pub database: String,
    /// The Redis address.
    pub redis: String,
    /// The cache namespace (keeps two services on one Redis apart).
    pub namespace: String,
    /// Entity caches on or off.
    pub caches: bool,
}

impl Config {
    /// From `BEEORM_SERVICE_DATABASE` (else `BEEORM_MYSQL_URL`, else the local
    /// MariaDB), `BEEORM_REDIS_URL`, `BEEORM_SERVICE_NAMESPACE` and
    /// `BEEORM_SERVICE_CACHE` (`off` switches the caches off).
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Config {
            database: var("BEEORM_SERVICE_DATABASE")
                .or_else(|| var("BEEORM_MYSQL_URL"))
                .unwrap_or_else(|| "mysql://root@127.0.0.1:3306/test".into()),
            redis: var("BEEORM_REDIS_URL").unwrap_or_else(|| "redis://127.0.0.1:6379".into()),
            namespace: var("BEEORM_SERVICE_NAMESPACE").unwrap_or_else(|| "beeorm-service".into()),
            caches: var("BEEORM_SERVICE_CACHE").is_none_or(|v| v != "off"),
        }
    }

    /// The registry: one relational pool, one Redis pool, the local cache, the
    /// stream and the entities.
    pub fn registry(&self) -> Registry {
        let mut r = Registry::new();
        match self.database.strip_prefix("sqlite:") {
            Some(path) => r.register_sqlite_pool("default", path),
            None if self.database.starts_with("postgres") => {
                r.register_postgres_pool("default", &self.database)
            }
            None => r.register_mysql_pool("default", &self.database),
        };
        r.register_redis_pool("default", &self.redis, 0)
            .register_local_cache("default", 100_000)
            .set_cache_namespace(&self.namespace)
            .set_entity_caches_enabled(self.caches)
            .register_redis_stream(CHANGES_STREAM, "default", &[AUDIT_GROUP])
            .register_entity::<Product>()
            .register_entity::<ProductChange>();
        r
    }
}

/// Validates the registry, applies the safe schema alters (the unsafe ones are
/// logged and left to an operator), and seeds `seed` products into an empty table.
pub async fn start(config: &Config, seed: u64) -> beeorm::Result<ValidatedRegistry> {
    let registry = config.registry().validate().await?;
    let engine = registry.create_engine();
    for alter in engine.alters().await? {
        if alter.safe {
            alter.exec(&engine).await?;
        } else {
            tracing::warn!(sql = %alter.sql, "unsafe schema alter left for an operator");
        }
    }
    if seed > 0
        && engine
            .read()
            .search_ids::<Product>(&beeorm::Where::all(), Pager::new(1, 1))
            .await?
            .is_empty()
    {
        let mut batch = Vec::with_capacity(1000);
        for i in 0..seed {
            batch.push(Tracked::new(Product {
                id: 0,
                name: format!("product {i}"),
                category: format!("c{}", i % 10),
                price_cents: 100 + (i % 900) as u32,
                stock: 10,
            }));
            if batch.len() == 1000 {
                engine.flusher().track_all(&mut batch).flush().await?;
                batch.clear();
            }
        }
        engine.flusher().track_all(&mut batch).flush().await?;
    }
    Ok(registry)
}

/// The router over a validated registry.
pub fn router(registry: ValidatedRegistry) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/stats", get(stats))
        .route("/products", get(list_products).post(create_product))
        .route(
            "/products/{id}",
            get(get_product)
                .patch(update_product)
                .delete(delete_product),
        )
        .with_state(registry)
}

/// Runs the audit consumer until `stop` is used: one [`ProductChange`] row per
/// dirty event, written in one flush per batch. A failed batch stays pending and is
/// delivered again (the consumer logs it).
pub async fn run_audit_consumer(
    registry: ValidatedRegistry,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> beeorm::Result<()> {
    let engine = registry.create_engine();
    let consumer = engine
        .event_broker()
        .consumer(CHANGES_STREAM, AUDIT_GROUP)?
        .block(Duration::from_millis(500));
    let handle: StopHandle = consumer.stop_handle();
    tokio::spawn(async move {
        let _ = stop.await;
        handle.stop();
    });
    consumer
        .run(|batch: Batch| {
            let engine = registry.create_engine();
            async move { audit(&engine, &batch).await }
        })
        .await
}

/// Writes the audit rows of one batch.
pub async fn audit(engine: &Engine, batch: &Batch) -> beeorm::Result<()> {
    let mut rows = Vec::with_capacity(batch.len());
    for event in batch.events() {
        let change = event.dirty()?;
        let action = if change.added() {
            "added"
        } else if change.deleted() {
            "deleted"
        } else {
            "updated"
        };
        let fields: Vec<&str> = change.changes().iter().map(|c| c.field()).collect();
        let mut fields = fields.join(",");
        fields.truncate(200);
        rows.push(Tracked::new(ProductChange {
            id: 0,
            product_id: change.id(),
            action: action.into(),
            fields,
        }));
    }
    engine.flusher().track_all(&mut rows).flush().await
}

/// The engine of one request, with its request cache.
pub struct Request(pub Engine);

impl FromRequestParts<ValidatedRegistry> for Request {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        _parts: &mut Parts,
        registry: &ValidatedRegistry,
    ) -> Result<Self, Self::Rejection> {
        Ok(Request(registry.create_engine().with_request_cache()))
    }
}

/// An error as the API answers it.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    fn not_found(id: u64) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, format!("no product {id}"))
    }
}

impl From<beeorm::Error> for ApiError {
    fn from(e: beeorm::Error) -> Self {
        use beeorm::Error as E;
        let status = match &e {
            E::InvalidValue { .. } | E::InvalidArgument { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            E::DuplicatedKey { .. } => StatusCode::CONFLICT,
            E::Connection { .. } | E::Timeout { .. } => StatusCode::SERVICE_UNAVAILABLE,
            E::Redis { source, .. } if source.is_io_error() || source.is_timeout() => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR || status == StatusCode::SERVICE_UNAVAILABLE
        {
            tracing::error!(error = %e, "request failed");
        }
        ApiError::new(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// axum's own rejections (of a body, a path, a query) answer as JSON errors too.
macro_rules! rejections_as_api_errors {
    ($($rejection:ty),+) => {
        $(impl From<$rejection> for ApiError {
            fn from(r: $rejection) -> Self {
                ApiError::new(r.status(), r.body_text())
            }
        })+
    };
}

rejections_as_api_errors!(
    axum::extract::rejection::JsonRejection,
    axum::extract::rejection::PathRejection,
    axum::extract::rejection::QueryRejection
);

/// axum's `Json` body, whose rejections (bad JSON, a missing field, a wrong
/// content type) answer in the same JSON shape as every other error.
struct Body<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let Json(value) = Json::<T>::from_request(req, state).await?;
        Ok(Body(value))
    }
}

/// The `{id}` of the path, refused as a JSON 400 when it is not a number.
struct Id(u64);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(id) = Path::<u64>::from_request_parts(parts, state).await?;
        Ok(Id(id))
    }
}

/// axum's `Query`, whose rejections answer as JSON errors.
struct Params<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(value) = Query::<T>::from_request_parts(parts, state).await?;
        Ok(Params(value))
    }
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "ok": true }))
}

async fn get_product(Request(engine): Request, Id(id): Id) -> ApiResult<Json<Product>> {
    let product = engine
        .load_by_id::<Product>(id)
        .await?
        .ok_or_else(|| ApiError::not_found(id))?;
    Ok(Json(product.into_inner()))
}

/// `?category=c1&page=1&size=20`.
#[derive(Debug, Deserialize)]
pub struct ListParams {
    category: Option<String>,
    page: Option<u64>,
    size: Option<u64>,
}

/// A page of products.
#[derive(Debug, Serialize)]
pub struct ProductPage {
    /// How many products match on all pages.
    pub total: u64,
    /// This page.
    pub products: Vec<Product>,
}

async fn list_products(
    Request(engine): Request,
    Params(p): Params<ListParams>,
) -> ApiResult<Json<ProductPage>> {
    let category = p
        .category
        .ok_or_else(|| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "`category` is required"))?;
    let size = p.size.unwrap_or(20);
    if !(1..=100).contains(&size) || p.page == Some(0) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "`page` starts at 1 and `size` is 1 to 100",
        ));
    }
    let (rows, total) = engine
        .read()
        .cached_search::<Product>(
            "by_category",
            Pager::new(p.page.unwrap_or(1), size),
            &[category.into()],
        )
        .await?;
    Ok(Json(ProductPage {
        total,
        products: rows.into_iter().map(Tracked::into_inner).collect(),
    }))
}

/// The body of `POST /products`.
#[derive(Debug, Deserialize)]
pub struct NewProduct {
    name: String,
    category: String,
    price_cents: u32,
    #[serde(default)]
    stock: u32,
}

async fn create_product(
    Request(engine): Request,
    Body(new): Body<NewProduct>,
) -> ApiResult<(StatusCode, Json<Product>)> {
    if new.name.trim().is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "`name` is empty",
        ));
    }
    let mut product = Tracked::new(Product {
        id: 0,
        name: new.name,
        category: new.category,
        price_cents: new.price_cents,
        stock: new.stock,
    });
    engine.flush(&mut product).await?;
    Ok((StatusCode::CREATED, Json(product.into_inner())))
}

/// The body of `PATCH /products/{id}`: the fields to change.
#[derive(Debug, Deserialize)]
pub struct ProductPatch {
    name: Option<String>,
    price_cents: Option<u32>,
    stock: Option<u32>,
}

async fn update_product(
    Request(engine): Request,
    Id(id): Id,
    Body(patch): Body<ProductPatch>,
) -> ApiResult<Json<Product>> {
    let mut product = engine
        .load_by_id::<Product>(id)
        .await?
        .ok_or_else(|| ApiError::not_found(id))?;
    if let Some(name) = patch.name {
        product.name = name;
    }
    if let Some(price) = patch.price_cents {
        product.price_cents = price;
    }
    if let Some(stock) = patch.stock {
        product.stock = stock;
    }
    engine.flush(&mut product).await?;
    Ok(Json(product.into_inner()))
}

async fn delete_product(Request(engine): Request, Id(id): Id) -> ApiResult<StatusCode> {
    let mut product = engine
        .load_by_id::<Product>(id)
        .await?
        .ok_or_else(|| ApiError::not_found(id))?;
    engine.delete(&mut product).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn stats(State(registry): State<ValidatedRegistry>) -> ApiResult<Json<serde_json::Value>> {
    let engine = registry.create_engine();
    let cache: Vec<serde_json::Value> = engine
        .cache_stats()
        .entities
        .iter()
        .map(|e| {
            serde_json::json!({
                "entity": e.entity,
                "local": {"hits": e.local.hits, "misses": e.local.misses},
                "redis": {"hits": e.redis.hits, "misses": e.redis.misses},
                "database_loads": e.database_loads,
            })
        })
        .collect();
    let stream = engine.event_broker().stream_stats(CHANGES_STREAM).await?;
    let audit = stream.groups.iter().find(|g| g.group == AUDIT_GROUP);
    Ok(Json(serde_json::json!({
        "cache": cache,
        "changes_stream": {
            "length": stream.length,
            "pending": audit.map(|g| g.pending),
            "lag": audit.and_then(|g| g.lag),
        },
    })))
}
