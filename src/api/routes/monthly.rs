//! `GET /whatsapp-report/monthly.pdf`: the monthly management report as a PDF.
//!
//! A month of history takes longer to gather than a page of JSON, so this route is exempt from
//! `http.request_timeout_ms` and reads through the process's main pool, whose sessions carry no
//! statement timeout (its queries only read).

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use super::super::ApiState;
use super::super::error::{ApiError, ErrorBody};
use super::super::params::Params;
use crate::reporting::monthly;

/// The route's path, which the request-timeout layer leaves unbounded.
pub const PATH: &str = "/whatsapp-report/monthly.pdf";

#[utoipa::path(
    get,
    path = "/whatsapp-report/monthly.pdf",
    tag = "statistics",
    summary = "Monthly management report (PDF)",
    description = "The figures of /statistics for the month's first to last day, the messages per day as a chart, the ten most reminded pairs, the most common failure reasons and the never-reminded count, as an A4 PDF.",
    params(
        ("month" = Option<String>, Query, description = "YYYY-MM (default: the previous month in the workshop's time zone)"),
    ),
    responses(
        (status = 200, description = "The report", content_type = "application/pdf", body = Vec<u8>),
        (status = 400, description = "Malformed month", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn monthly_pdf(
    State(state): State<ApiState>,
    params: Params,
) -> Result<Response, ApiError> {
    let first = match params.text("month") {
        Some(raw) => monthly::parse_month(raw)
            .map_err(|e| ApiError::bad_request("invalid_month", e.to_string()))?,
        None => monthly::previous_month(state.tz, Utc::now()),
    };
    let days_ahead = state.ctx.settings.producer.days_ahead;
    let bytes = monthly::pdf(&state.ctx.pool, state.tz, days_ahead, first)
        .await
        .map_err(|e| match e.downcast_ref::<sqlx::Error>() {
            Some(db) => ApiError::from_db(db),
            None => ApiError::Internal(e),
        })?;
    let name = format!(
        "inline; filename=\"reminders-{}.pdf\"",
        first.format("%Y-%m")
    );
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/pdf"),
    );
    if let Ok(v) = HeaderValue::from_str(&name) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}
