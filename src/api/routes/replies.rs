//! `GET /whatsapp-report/replies`: customers' replies, newest first.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;

use super::super::error::{ApiError, ErrorBody};
use super::super::params::Params;
use super::super::{ApiState, with_total};
use crate::db::reports::{self, ReplyFilter, ReplyRecord};

#[utoipa::path(
    get,
    path = "/whatsapp-report/replies",
    tag = "messages",
    summary = "Customers' replies",
    description = "What customers wrote back, newest first, each attributed to the reminder it answers: the message it names as its context, else the latest message sent to that phone within 7 days before it, else nobody (null ids). With the customer's name and the plate number of the vehicle whose reminder was answered, where known.",
    params(
        ("customer" = Option<uuid::Uuid>, Query, description = "Only this customer"),
        ("from" = Option<chrono::NaiveDate>, Query, description = "First day received, YYYY-MM-DD, workshop time zone"),
        ("to" = Option<chrono::NaiveDate>, Query, description = "Last day received, YYYY-MM-DD, workshop time zone"),
        ("limit" = Option<i64>, Query, description = "Page size, 1 to 1000 (default 50)"),
        ("offset" = Option<i64>, Query, description = "Rows to skip (default 0)"),
    ),
    responses(
        (status = 200, description = "A page of replies", body = Vec<ReplyRecord>,
         headers(("X-Total-Count" = i64, description = "Replies matching the filters, all pages"))),
        (status = 400, description = "Malformed parameter", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn replies(
    State(state): State<ApiState>,
    params: Params,
) -> Result<impl IntoResponse, ApiError> {
    let filter = ReplyFilter {
        customer: params.uuid("customer")?,
        period: params.period(state.tz)?,
    };
    let page = params.page()?;
    let (rows, total) = reports::replies(&state.pool, &filter, page).await?;
    Ok(with_total(total, Json(rows)))
}
