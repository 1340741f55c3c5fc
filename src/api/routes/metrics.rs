//! `GET /metrics`: every series of this process in the Prometheus text format.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::super::ApiState;

#[utoipa::path(get, path = "/metrics", tag = "operations", summary = "Prometheus metrics",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    // Whether RabbitMQ is blocking this process is the broker's state; it is read at scrape time.
    state
        .ctx
        .metrics
        .broker_blocked
        .set(i64::from(crate::broker::blocking::is_blocked()));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.ctx.metrics.render(),
    )
}
