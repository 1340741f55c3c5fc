//! `GET /whatsapp-report/`: a page of reports, with `X-Total-Count`.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;

use super::super::error::{ApiError, ErrorBody};
use super::super::params::Params;
use super::super::{ApiState, with_total};
use crate::db::reports::{self, Report, ReportFilter};

#[utoipa::path(
    get,
    path = "/whatsapp-report/",
    tag = "reports",
    summary = "List reports",
    description = "One row per customer and vehicle: how many reminders were sent and when the last one went out.",
    params(
        ("limit" = Option<i64>, Query, description = "Page size, 1 to 1000 (default 50)"),
        ("offset" = Option<i64>, Query, description = "Rows to skip (default 0)"),
        ("customer" = Option<uuid::Uuid>, Query, description = "Only this customer's reports"),
        ("vehicle" = Option<uuid::Uuid>, Query, description = "Only this vehicle's reports"),
        ("sort" = Option<String>, Query, description = "`recent` (default: latest message first) or `frequency`"),
    ),
    responses(
        (status = 200, description = "A page of reports", body = Vec<Report>,
         headers(("X-Total-Count" = i64, description = "Reports matching the filters, all pages"))),
        (status = 400, description = "Malformed parameter", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn list_reports(
    State(state): State<ApiState>,
    params: Params,
) -> Result<impl IntoResponse, ApiError> {
    let filter = report_filter(&params)?;
    let page = params.page()?;
    let (rows, total) = reports::list(&state.pool, &filter, page).await?;
    Ok(with_total(total, Json(rows)))
}

/// The same list without the trailing slash, so `/whatsapp-report?limit=10` works as a user
/// would expect.
#[utoipa::path(
    get,
    path = "/whatsapp-report",
    tag = "reports",
    summary = "List reports (same as /whatsapp-report/)",
    params(
        ("limit" = Option<i64>, Query, description = "Page size, 1 to 1000 (default 50)"),
        ("offset" = Option<i64>, Query, description = "Rows to skip (default 0)"),
        ("customer" = Option<uuid::Uuid>, Query, description = "Only this customer's reports"),
        ("vehicle" = Option<uuid::Uuid>, Query, description = "Only this vehicle's reports"),
        ("sort" = Option<String>, Query, description = "`recent` (default: latest message first) or `frequency`"),
    ),
    responses(
        (status = 200, description = "A page of reports", body = Vec<Report>,
         headers(("X-Total-Count" = i64, description = "Reports matching the filters, all pages"))),
        (status = 400, description = "Malformed parameter", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn list_reports_without_slash(
    state: State<ApiState>,
    params: Params,
) -> Result<impl IntoResponse, ApiError> {
    list_reports(state, params).await
}

/// The filters shared by the list, the detail view and the CSV export.
pub fn report_filter(params: &Params) -> Result<ReportFilter, ApiError> {
    Ok(ReportFilter {
        customer: params.uuid("customer")?,
        vehicle: params.uuid("vehicle")?,
        sort: params.sort()?,
    })
}
