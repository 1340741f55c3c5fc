//! `GET /whatsapp-report/never-reminded`: vehicles whose maintenance fell due in the period and
//! that got no successful reminder in the days before, each with why.

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use chrono::{Days, Utc};

use super::super::error::{ApiError, ErrorBody};
use super::super::params::Params;
use super::super::{ApiState, with_total};
use crate::domain::CountryCode;
use crate::reporting::never_reminded::{self, NeverReminded, Window};

#[utoipa::path(
    get,
    path = "/whatsapp-report/never-reminded",
    tag = "statistics",
    summary = "Vehicles due and never reminded",
    description = "Vehicles whose next maintenance date lies from `from` to `to` (calendar days in the workshop's time zone, both inclusive; default the last 30 days through today) with no message sent to that customer and vehicle from producer.days_ahead days before that date through that date. `reason` is `opted_out` (the customer's phone is opted out now), `failed` (with `error_code` of the latest failure in that window) or `not_attempted`. Ordered by date, then vehicle id.",
    params(
        ("from" = Option<chrono::NaiveDate>, Query, description = "First due date, YYYY-MM-DD"),
        ("to" = Option<chrono::NaiveDate>, Query, description = "Last due date, YYYY-MM-DD (default today)"),
        ("limit" = Option<i64>, Query, description = "Page size, 1 to 1000 (default 50)"),
        ("offset" = Option<i64>, Query, description = "Vehicles to skip (default 0)"),
    ),
    responses(
        (status = 200, description = "Never-reminded vehicles", body = Vec<NeverReminded>,
         headers(("X-Total-Count" = i64, description = "Never-reminded vehicles, all pages"))),
        (status = 400, description = "Malformed parameter, or from after to", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn never_reminded(
    State(state): State<ApiState>,
    params: Params,
) -> Result<Response, ApiError> {
    let (from, to) = params.dates()?;
    let page = params.page()?;
    let today = Utc::now().with_timezone(&state.tz).date_naive();
    let to = to.unwrap_or(today);
    // The last 30 days through `to`, as `/daily` counts them.
    let from = from.unwrap_or_else(|| to.checked_sub_days(Days::new(29)).unwrap_or(to));
    if from > to {
        return Err(ApiError::bad_request(
            "invalid_period",
            format!("from ({from}) is after to ({to})"),
        ));
    }
    let settings = &state.ctx.settings;
    let country = CountryCode::parse(&settings.whatsapp.default_country_code)
        .map_err(|e| ApiError::Internal(e.into()))?;
    let window = Window {
        from,
        to,
        days_ahead: i32::try_from(settings.producer.days_ahead).unwrap_or(i32::MAX),
        tz: state.tz.name().to_string(),
    };
    let (rows, total) = never_reminded::page(&state.pool, &window, &country, page).await?;
    Ok(with_total(total, Json(rows)))
}
