//! `GET /whatsapp-report/customer/{id_customer}` and
//! `GET /whatsapp-report/customer/{id_customer}/vehicle/{id_vehicle}`.

use axum::Json;
use axum::extract::State;

use axum::response::Response;

use super::super::error::{ApiError, ErrorBody};
use super::super::params::{Ids, MAX_LIMIT, Params};
use super::super::{ApiState, with_total};
use crate::db::reports::{self, Report};

#[utoipa::path(
    get,
    path = "/whatsapp-report/customer/{id_customer}",
    tag = "reports",
    summary = "One customer's reports",
    description = "Every report of the customer, latest first; an empty array when there are none. Paged like the list, but a page holds up to 1000 reports by default.",
    params(
        ("id_customer" = uuid::Uuid, Path, description = "Customer id"),
        ("limit" = Option<i64>, Query, description = "Page size, 1 to 1000 (default 1000)"),
        ("offset" = Option<i64>, Query, description = "Rows to skip (default 0)"),
    ),
    responses(
        (status = 200, description = "The customer's reports, latest first (empty when none)", body = Vec<Report>,
         headers(("X-Total-Count" = i64, description = "The customer's reports, all pages"))),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn customer_reports(
    State(state): State<ApiState>,
    Ids(ids): Ids,
    params: Params,
) -> Result<Response, ApiError> {
    let page = params.page_or(MAX_LIMIT)?;
    let (rows, total) = reports::by_customer(&state.pool, ids[0], page).await?;
    Ok(with_total(total, Json(rows)))
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
    reports::by_pair(&state.pool, ids[0], ids[1])
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound("no report for this customer and vehicle".into()))
}
