//! `GET /whatsapp-report/customer/{id_customer}` and
//! `GET /whatsapp-report/customer/{id_customer}/vehicle/{id_vehicle}`.

use axum::Json;
use axum::extract::State;

use super::super::ApiState;
use super::super::error::{ApiError, ErrorBody};
use super::super::params::Ids;
use crate::db::reports::{self, Report};

#[utoipa::path(
    get,
    path = "/whatsapp-report/customer/{id_customer}",
    tag = "reports",
    summary = "One customer's reports",
    params(("id_customer" = uuid::Uuid, Path, description = "Customer id")),
    responses(
        (status = 200, description = "The customer's reports, latest first (empty when none)", body = Vec<Report>),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn customer_reports(
    State(state): State<ApiState>,
    Ids(ids): Ids,
) -> Result<Json<Vec<Report>>, ApiError> {
    Ok(Json(reports::by_customer(&state.ctx.pool, ids[0]).await?))
}

#[utoipa::path(
    get,
    path = "/whatsapp-report/customer/{id_customer}/vehicle/{id_vehicle}",
    tag = "reports",
    summary = "The report of one customer and vehicle",
    params(
        ("id_customer" = uuid::Uuid, Path, description = "Customer id"),
        ("id_vehicle" = uuid::Uuid, Path, description = "Vehicle id"),
    ),
    responses(
        (status = 200, description = "The report", body = Report),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No report for this pair", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn pair_report(
    State(state): State<ApiState>,
    Ids(ids): Ids,
) -> Result<Json<Report>, ApiError> {
    reports::by_pair(&state.ctx.pool, ids[0], ids[1])
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound("no report for this customer and vehicle".into()))
}
