//! `GET /whatsapp-report/messages`: the per-message history, newest first.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;

use super::super::error::{ApiError, ErrorBody};
use super::super::params::Params;
use super::super::{ApiState, with_total};
use crate::db::reports::{self, MessageFilter, MessageRecord};

#[utoipa::path(
    get,
    path = "/whatsapp-report/messages",
    tag = "messages",
    summary = "Message history",
    description = "Every reminder sent or failed, newest first, with the customer's name and plate number where known. Kept when reports are reset or deleted.",
    params(
        ("status" = Option<String>, Query, description = "`sent` or `failed`"),
        ("customer" = Option<uuid::Uuid>, Query, description = "Only this customer"),
        ("vehicle" = Option<uuid::Uuid>, Query, description = "Only this vehicle"),
        ("from" = Option<chrono::NaiveDate>, Query, description = "First day, YYYY-MM-DD, workshop time zone"),
        ("to" = Option<chrono::NaiveDate>, Query, description = "Last day, YYYY-MM-DD, workshop time zone"),
        ("limit" = Option<i64>, Query, description = "Page size, 1 to 1000 (default 50)"),
        ("offset" = Option<i64>, Query, description = "Rows to skip (default 0)"),
    ),
    responses(
        (status = 200, description = "A page of messages", body = Vec<MessageRecord>,
         headers(("X-Total-Count" = i64, description = "Messages matching the filters, all pages"))),
        (status = 400, description = "Malformed parameter", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn messages(
    State(state): State<ApiState>,
    params: Params,
) -> Result<impl IntoResponse, ApiError> {
    let filter = MessageFilter {
        status: params.status()?,
        customer: params.uuid("customer")?,
        vehicle: params.uuid("vehicle")?,
        period: params.period(state.tz)?,
    };
    let page = params.page()?;
    let (rows, total) = reports::messages(&state.pool, &filter, page).await?;
    Ok(with_total(total, Json(rows)))
}
