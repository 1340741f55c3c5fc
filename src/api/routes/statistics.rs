//! `GET /whatsapp-report/statistics`: totals from the maintained aggregates (no table scan).

use axum::Json;
use axum::extract::State;

use super::super::ApiState;
use super::super::error::{ApiError, ErrorBody};
use super::super::params::Params;
use std::sync::Arc;

use chrono::NaiveDate;

use crate::db::reports::{self, Period, Statistics};

#[utoipa::path(
    get,
    path = "/whatsapp-report/statistics",
    tag = "statistics",
    summary = "Aggregate statistics",
    description = "Totals over every report. With `from` and/or `to` (calendar days in the workshop's time zone, both inclusive), `total_messages`, `total_failed` and `last_message_date` count only messages in that period, from the message history (so a frequency reset does not hide them); `total_delivered`, `total_read` and `total_failed_after_send` count the messages sent in the period by how far the provider reported they got, and `total_replies` the replies received in it; the other fields stay totals over the current reports.",
    params(
        ("from" = Option<chrono::NaiveDate>, Query, description = "First day, YYYY-MM-DD"),
        ("to" = Option<chrono::NaiveDate>, Query, description = "Last day, YYYY-MM-DD"),
    ),
    responses(
        (status = 200, description = "Statistics", body = Statistics),
        (status = 400, description = "Malformed date, or from after to", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn statistics(
    State(state): State<ApiState>,
    params: Params,
) -> Result<Json<Statistics>, ApiError> {
    let period = params.period(state.tz)?;
    let days = params.dates()?;
    let pool = state.pool.clone();
    let answer = state
        .statistics
        .run((period, days.0, days.1), move || async move {
            reports::statistics(&pool, period, days)
                .await
                .map_err(Arc::new)
        })
        .await;
    answer.map(Json).map_err(|e| ApiError::from_db(&e))
}

/// What identifies one statistics query.
pub type Key = (Option<Period>, Option<NaiveDate>, Option<NaiveDate>);
/// Its answer, shared by every request that joined it.
pub type Answer = Result<Statistics, Arc<sqlx::Error>>;
