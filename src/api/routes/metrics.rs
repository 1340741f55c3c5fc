//! `GET /metrics`: every series of this process in the OpenMetrics text format, under that
//! format's content type (Prometheus negotiates it and parses it as OpenMetrics).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::super::ApiState;

#[utoipa::path(get, path = "/metrics", tag = "operations", summary = "Prometheus metrics",
    responses((status = 200, description = "OpenMetrics text exposition", content_type = "application/openmetrics-text", body = String)))]
pub async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    // Whether RabbitMQ is blocking this process is the broker's state; it is read at scrape time.
    state
        .ctx
        .metrics
        .broker_blocked
        .set(i64::from(crate::broker::blocking::is_blocked()));
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        state.ctx.metrics.render(),
    )
}
