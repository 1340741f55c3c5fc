//! `GET /whatsapp-report/over-reminded`: pairs reminded more than `alerts.max_frequency` times
//! within the last `days` days: customers and vehicles being reminded too often.

use axum::Json;
use axum::extract::State;
use chrono::{Duration, Utc};

use axum::response::Response;

use super::super::error::{ApiError, ErrorBody};
use super::super::params::Params;
use super::super::{ApiState, with_total};
use crate::db::reports::{self, OverReminded};

#[utoipa::path(
    get,
    path = "/whatsapp-report/over-reminded",
    tag = "statistics",
    summary = "Over-reminded customers and vehicles",
    description = "Pairs whose messages sent in the last `days` days exceed `max` (defaults: alerts.window_days and alerts.max_frequency), most reminded first.",
    params(
        ("days" = Option<i64>, Query, description = "Window in days, 1 to 3660 (default alerts.window_days)"),
        ("max" = Option<i64>, Query, description = "Threshold (default alerts.max_frequency)"),
        ("limit" = Option<i64>, Query, description = "Page size, 1 to 1000 (default 50)"),
        ("offset" = Option<i64>, Query, description = "Pairs to skip (default 0)"),
    ),
    responses(
        (status = 200, description = "Over-reminded pairs", body = Vec<OverReminded>,
         headers(("X-Total-Count" = i64, description = "Over-reminded pairs, all pages"))),
        (status = 400, description = "Malformed parameter", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn over_reminded(
    State(state): State<ApiState>,
    params: Params,
) -> Result<Response, ApiError> {
    let alerts = &state.ctx.settings.alerts;
    let days = params.integer("days")?.unwrap_or(alerts.window_days as i64);
    if !(1..=3660).contains(&days) {
        return Err(ApiError::bad_request(
            "invalid_days",
            "days must be between 1 and 3660",
        ));
    }
    let max = params
        .integer("max")?
        .unwrap_or(alerts.max_frequency as i64)
        .min(i64::from(i32::MAX));
    let page = params.page()?;
    let since = Utc::now() - Duration::days(days);
    let (rows, total) = reports::over_reminded(&state.pool, since, max, page).await?;
    Ok(with_total(total, Json(rows)))
}
