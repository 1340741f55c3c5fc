//! `GET /healthz` (the process runs) and `GET /readyz` (database and broker reachable).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use super::super::ApiState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: &'static str,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`
    pub status: &'static str,
    pub database: bool,
    pub broker: bool,
}

#[utoipa::path(get, path = "/healthz", tag = "operations", summary = "Liveness",
    responses((status = 200, description = "The process is running", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[utoipa::path(get, path = "/readyz", tag = "operations", summary = "Readiness",
    responses(
        (status = 200, description = "Database and broker reachable", body = Readiness),
        (status = 503, description = "Database or broker unreachable", body = Readiness),
    ))]
pub async fn readyz(State(state): State<ApiState>) -> (StatusCode, Json<Readiness>) {
    let database = crate::db::ping(&state.ctx.pool).await;
    let broker = state.ctx.broker.is_connected();
    let ready = database && broker;
    (
        if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(Readiness {
            status: if ready { "ready" } else { "not_ready" },
            database,
            broker,
        }),
    )
}
