//! `GET /whatsapp-report/detail`: reports joined with their customer and vehicle.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use uuid::Uuid;

use super::super::error::{ApiError, ErrorBody};
use super::super::params::Params;
use super::super::{ApiState, with_total};
use super::list::report_filter;
use crate::db::reports::{self, ReportDetail, ReportSort};

#[utoipa::path(
    get,
    path = "/whatsapp-report/detail",
    tag = "reports",
    summary = "List reports with customer and vehicle details",
    description = "Like the list, each report also carrying the customer's name and phone and the vehicle's plate, brand, model and next maintenance date. Where the master data lacks the pair, the name, phone and plate the latest event carried are shown; other fields are null.",
    params(
        ("limit" = Option<i64>, Query, description = "Page size, 1 to 1000 (default 50)"),
        ("offset" = Option<i64>, Query, description = "Rows to skip (default 0)"),
        ("customer" = Option<uuid::Uuid>, Query, description = "Only this customer's reports"),
        ("vehicle" = Option<uuid::Uuid>, Query, description = "Only this vehicle's reports"),
        ("sort" = Option<String>, Query, description = "`recent` (default) or `frequency`"),
    ),
    responses(
        (status = 200, description = "A page of detailed reports", body = Vec<ReportDetail>,
         headers(("X-Total-Count" = i64, description = "Reports matching the filters, all pages"))),
        (status = 400, description = "Malformed parameter", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn list_details(
    State(state): State<ApiState>,
    params: Params,
) -> Result<impl IntoResponse, ApiError> {
    let filter = report_filter(&params)?;
    let page = params.page()?;
    let key = (
        filter.customer,
        filter.vehicle,
        filter.sort,
        page.limit,
        page.offset,
    );
    let pool = state.pool.clone();
    // Dashboards open on the same first page: requests arriving together share the query
    // and the JSON, which is most of this route's cost.
    let answer = state
        .details
        .run(key, move || async move {
            let (rows, total) = reports::detail(&pool, &filter, page)
                .await
                .map_err(Arc::new)?;
            let body = serde_json::to_vec(&rows).expect("a detail row always serialises");
            Ok((Bytes::from(body), total))
        })
        .await;
    let (body, total) = answer.map_err(|e| ApiError::from_db(&e))?;
    Ok(with_total(
        total,
        ([(CONTENT_TYPE, "application/json")], body),
    ))
}

/// What identifies one detail page: customer, vehicle, sort, limit, offset.
pub type Key = (Option<Uuid>, Option<Uuid>, ReportSort, i64, i64);
/// The page as JSON and the total, shared by every request that joined the query.
pub type Answer = Result<(Bytes, i64), Arc<sqlx::Error>>;
