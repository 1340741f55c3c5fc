//! `GET /whatsapp-report/daily`: messages sent and failed per day, with how many of each day's
//! sent messages were delivered and read and the replies received that day, zero days included.

use axum::Json;
use axum::extract::State;
use chrono::{Days, NaiveDate, Utc};
use serde::Serialize;

use super::super::ApiState;
use super::super::error::{ApiError, ErrorBody};
use super::super::params::{Params, start_of_day};
use crate::db::reports;

/// Longest range one request may ask for.
const MAX_DAYS: i64 = 3660;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DailyCount {
    /// Calendar day in the workshop's time zone.
    pub date: NaiveDate,
    pub sent: i64,
    pub failed: i64,
    /// Of the messages sent that day, those the provider reported delivered (read included).
    pub delivered: i64,
    /// Of the messages sent that day, those the provider reported read.
    pub read: i64,
    /// Customers' replies received that day.
    pub replies: i64,
}

#[utoipa::path(
    get,
    path = "/whatsapp-report/daily",
    tag = "statistics",
    summary = "Messages per day",
    description = "One entry per calendar day (workshop time zone) from `from` to `to`, both inclusive; default the last 30 days. Days without messages are included with zeros. `delivered` and `read` count the messages sent that day that the provider reported delivered (read ones included) and read; `replies` the replies received that day.",
    params(
        ("from" = Option<NaiveDate>, Query, description = "First day, YYYY-MM-DD"),
        ("to" = Option<NaiveDate>, Query, description = "Last day, YYYY-MM-DD (default today)"),
    ),
    responses(
        (status = 200, description = "Counts per day", body = Vec<DailyCount>),
        (status = 400, description = "Malformed date, from after to, or a range over 3660 days", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn daily(
    State(state): State<ApiState>,
    params: Params,
) -> Result<Json<Vec<DailyCount>>, ApiError> {
    let (from, to) = params.dates()?;
    let today = Utc::now().with_timezone(&state.tz).date_naive();
    let to = to.unwrap_or(today);
    let from = match from {
        Some(f) => f,
        None => to.checked_sub_days(Days::new(29)).unwrap_or(to),
    };
    if from > to {
        return Err(ApiError::bad_request(
            "invalid_period",
            format!("from ({from}) is after to ({to})"),
        ));
    }
    if (to - from).num_days() >= MAX_DAYS {
        return Err(ApiError::bad_request(
            "invalid_period",
            format!("at most {MAX_DAYS} days per request"),
        ));
    }
    let end = to.checked_add_days(Days::new(1)).unwrap_or(to);
    let rows = reports::daily(
        &state.pool,
        state.tz.name(),
        start_of_day(state.tz, from),
        start_of_day(state.tz, end),
    )
    .await?;
    let mut rows = rows.into_iter().peekable();
    let mut out = Vec::with_capacity((to - from).num_days() as usize + 1);
    for day in from.iter_days().take_while(|d| *d <= to) {
        let counts = match rows.peek() {
            Some(c) if c.day == day => rows.next(),
            _ => None,
        };
        let count = |f: fn(&reports::DayCounts) -> i64| counts.as_ref().map_or(0, f);
        out.push(DailyCount {
            date: day,
            sent: count(|c| c.sent),
            failed: count(|c| c.failed),
            delivered: count(|c| c.delivered),
            read: count(|c| c.read),
            replies: count(|c| c.replies),
        });
    }
    Ok(Json(out))
}
