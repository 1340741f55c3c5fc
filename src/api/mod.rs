//! The read-only HTTP API: reports and statistics for dashboards, health, metrics and the
//! OpenAPI description. It writes nothing; the writes to the report are CLI commands
//! (`reminder report`).
//!
//! Every `/whatsapp-report` route sits behind the optional bearer token; every request is
//! bounded in time and in concurrency and is counted in `http_requests_total` and
//! `http_request_duration_seconds` by its route template.

pub mod coalesce;
pub mod error;
pub mod params;
pub mod routes;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono_tz::Tz;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::context::AppContext;
use crate::metrics::{RouteLabels, RouteStatusLabels};
use error::ApiError;
use routes::*;

#[derive(Clone)]
pub struct ApiState {
    pub ctx: AppContext,
    /// The API's own pool, read-only at the database level (see `db::read_only_pool`).
    pub pool: PgPool,
    pub tz: Tz,
    pub openapi: Arc<utoipa::openapi::OpenApi>,
    /// Concurrent identical `/statistics` requests share one query.
    pub statistics: Arc<coalesce::SingleFlight<statistics::Key, statistics::Answer>>,
    /// Concurrent identical `/detail` pages share one query and one serialised body.
    pub details: Arc<coalesce::SingleFlight<detail::Key, detail::Answer>>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "reminder",
        description = "Read-only statistics of the WhatsApp maintenance reminders: per customer and vehicle reports, message history and aggregates.",
    ),
    modifiers(&BearerAuth),
    components(schemas(error::ErrorBody)),
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The router and the OpenAPI document, built from the same registrations: every route is
/// added through `routes!`, so the router serves nothing the document does not describe.
fn routes() -> (Router<ApiState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(list::list_reports))
        // The list's documented path has a trailing slash; accept it without one too.
        .routes(routes!(list::list_reports_without_slash))
        .routes(routes!(detail::list_details))
        .routes(routes!(statistics::statistics))
        .routes(routes!(messages::messages))
        .routes(routes!(daily::daily))
        .routes(routes!(replies::replies))
        .routes(routes!(over_reminded::over_reminded))
        .routes(routes!(never_reminded::never_reminded))
        .routes(routes!(monthly::monthly_pdf))
        .routes(routes!(opt_outs::opt_outs))
        .routes(routes!(export::export_csv))
        .routes(routes!(customer::customer_reports))
        .routes(routes!(customer::pair_report))
        .routes(routes!(report::report_by_id))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(metrics::metrics))
        .routes(routes!(openapi::openapi))
        .routes(routes!(dashboard::index))
        .routes(routes!(dashboard::script))
        .routes(routes!(dashboard::opt_outs_script))
        .routes(routes!(dashboard::style))
        .routes(routes!(dashboard::reporting_script))
        .routes(routes!(dashboard::common_script))
        .routes(routes!(dashboard::charts_script))
        .routes(routes!(dashboard::search_script))
        .split_for_parts()
}

/// The OpenAPI document alone (for tests and `reminder` tooling).
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    routes().1
}

/// Builds the application router with its state and layers, on its own read-only pool.
pub fn router(ctx: AppContext) -> anyhow::Result<Router> {
    let pool = api_pool(&ctx)?;
    router_with_pool(ctx, pool)
}

/// The API's pool: read-only, and each statement cancelled once the request has timed out.
fn api_pool(ctx: &AppContext) -> anyhow::Result<PgPool> {
    crate::db::read_only_pool(
        &ctx.settings.database,
        ctx.settings.http.db_connections,
        Duration::from_millis(ctx.settings.http.request_timeout_ms),
    )
}

fn router_with_pool(ctx: AppContext, pool: PgPool) -> anyhow::Result<Router> {
    let tz = ctx.settings.producer.tz()?;
    let (router, openapi) = routes();
    let http = &ctx.settings.http;
    let timeout = Duration::from_millis(http.request_timeout_ms);
    let concurrency = Arc::new(tokio::sync::Semaphore::new(http.max_concurrent_requests));
    let state = ApiState {
        ctx,
        pool,
        tz,
        openapi: Arc::new(openapi),
        statistics: Arc::default(),
        details: Arc::default(),
    };
    Ok(router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .layer(middleware::from_fn_with_state(
            (state.clone(), timeout, concurrency),
            observe,
        ))
        .with_state(state))
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

async fn require_token(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let token = state.ctx.settings.http.api_token.expose();
    let protected = request.uri().path().starts_with("/whatsapp-report");
    if !token.is_empty() && protected && !bearer_matches(request.headers(), token) {
        return ApiError::Unauthorized.into_response();
    }
    next.run(request).await
}

fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    // The scheme name is case-insensitive (RFC 9110 §11.1); the token is compared exactly.
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .is_some_and(|(_, given)| constant_time_eq(given.trim().as_bytes(), token.as_bytes()))
}

/// Compares without an early exit, so the time taken says nothing about where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8;
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    diff == 0
}

/// Whole-file downloads: a large file to a slow client takes longer than a request may, and
/// cutting it would hand over a truncated file. Their queries lift the statement time-out too.
const UNBOUNDED_ROUTES: &[&str] = &[
    "/whatsapp-report/export.csv",
    "/whatsapp-report/monthly.pdf",
];

/// Bounds concurrency and time, and records the request's metrics by route template.
async fn observe(
    State((state, timeout, concurrency)): State<(ApiState, Duration, Arc<tokio::sync::Semaphore>)>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let unbounded = UNBOUNDED_ROUTES.contains(&request.uri().path());
    // The handler runs as a task of its own, which a time-out or a client that goes away
    // leaves running: its statements end by themselves under the read pool's statement
    // time-out, and their connections go back to the pool the ordinary way. Dropping a query
    // half-way instead makes the pool test the connection as it returns; over TLS, closing it
    // after that test's error can hang for good, and each such connection is then lost to
    // the pool. Its permit goes with the task, so abandoned work still counts.
    let work = tokio::spawn(async move {
        let _permit = concurrency.acquire_owned().await.expect("never closed");
        next.run(request).await
    });
    let work = async {
        match work.await {
            Ok(r) => r,
            Err(e) => {
                ApiError::Internal(anyhow::anyhow!("request handler failed: {e}")).into_response()
            }
        }
    };
    let mut response = if unbounded {
        work.await
    } else {
        match tokio::time::timeout(timeout, work).await {
            Ok(r) => r,
            Err(_) => ApiError::Timeout.into_response(),
        }
    };
    let m = &state.ctx.metrics;
    m.http_requests
        .get_or_create(&RouteStatusLabels {
            route: route.clone(),
            status: response.status().as_u16(),
        })
        .inc();
    m.http_request_duration
        .get_or_create(&RouteLabels { route })
        .observe(started.elapsed().as_secs_f64());
    response
        .headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// Adds `X-Total-Count` to a response.
pub fn with_total(total: i64, body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(
        "x-total-count",
        HeaderValue::from_str(&total.to_string()).expect("digits are a valid header"),
    );
    response
}

/// Serves the API until `shutdown`, then finishes in-flight requests.
pub async fn serve(
    ctx: AppContext,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let pool = api_pool(&ctx)?;
    tokio::spawn(refresh_over_reminded(
        ctx.clone(),
        pool.clone(),
        shutdown.clone(),
    ));
    let limits = ctx.settings.http.listener_limits();
    let app = router_with_pool(ctx, pool.clone())?;
    tracing::info!(address = %listener.local_addr()?, "HTTP API listening");
    let served = crate::http_listener::serve(listener, app, limits, shutdown).await;
    pool.close().await;
    Ok(served?)
}

/// `/metrics`, `/healthz` and `/readyz` alone (on `http.metrics_bind`), so a process without
/// the api role (a sender or tracker replica) can be scraped and health-checked. No token: like
/// the API's own `/metrics`, these say nothing about customers.
pub async fn serve_operations(
    ctx: AppContext,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let tz = ctx.settings.producer.tz()?;
    let limits = ctx.settings.http.listener_limits();
    let state = ApiState {
        pool: ctx.pool.clone(),
        ctx,
        tz,
        openapi: Arc::new(utoipa::openapi::OpenApiBuilder::new().build()),
        statistics: Arc::default(),
        details: Arc::default(),
    };
    let app = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::metrics))
        .fallback(not_found)
        .with_state(state);
    tracing::info!(address = %listener.local_addr()?, "metrics endpoint listening");
    crate::http_listener::serve(listener, app, limits, shutdown).await?;
    Ok(())
}

/// Keeps the `reminder_over_reminded_pairs` gauge current (every minute) so operators can
/// alert on it without the API computing it per scrape.
async fn refresh_over_reminded(ctx: AppContext, pool: PgPool, shutdown: CancellationToken) {
    let alerts = ctx.settings.alerts.clone();
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let since = chrono::Utc::now() - chrono::Duration::days(alerts.window_days as i64);
        match crate::db::reports::count_over_reminded(&pool, since, alerts.max_frequency as i64)
            .await
        {
            Ok(n) => {
                ctx.metrics.over_reminded_pairs.set(n);
            }
            Err(e) => tracing::debug!(error = %e, "could not refresh the over-reminded gauge"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_exactly() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    #[test]
    fn the_openapi_document_lists_every_public_route() {
        let doc = openapi_document();
        for path in [
            "/whatsapp-report/",
            "/whatsapp-report/detail",
            "/whatsapp-report/statistics",
            "/whatsapp-report/customer/{id_customer}",
            "/whatsapp-report/customer/{id_customer}/vehicle/{id_vehicle}",
            "/whatsapp-report/{id}",
            "/whatsapp-report/messages",
            "/whatsapp-report/daily",
            "/whatsapp-report/over-reminded",
            "/whatsapp-report/never-reminded",
            "/whatsapp-report/monthly.pdf",
            "/whatsapp-report/opt-outs",
            "/whatsapp-report/export.csv",
            "/",
            "/healthz",
            "/readyz",
            "/metrics",
            "/openapi.json",
        ] {
            assert!(doc.paths.paths.contains_key(path), "{path} missing");
        }
    }
}
