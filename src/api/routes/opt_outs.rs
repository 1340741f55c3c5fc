//! `GET /whatsapp-report/opt-outs`: the phones opted out of reminders now, newest first, with
//! the customer who has each phone where one is known.

use axum::Json;
use axum::extract::State;
use axum::response::Response;

use super::super::error::{ApiError, ErrorBody};
use super::super::params::Params;
use super::super::{ApiState, with_total};
use crate::db::consent::{self, OptOut};

#[utoipa::path(
    get,
    path = "/whatsapp-report/opt-outs",
    tag = "consent",
    summary = "Phones opted out now",
    description = "Phones opted out of reminders now (by a STOP reply, Meta's marketing preference, error 131050, the workshop's own systems or the CLI), newest first, with the customer who has the phone (null where none is known).",
    params(
        ("limit" = Option<i64>, Query, description = "Page size, 1 to 1000 (default 50)"),
        ("offset" = Option<i64>, Query, description = "Phones to skip (default 0)"),
    ),
    responses(
        (status = 200, description = "Opted-out phones", body = Vec<OptOut>,
         headers(("X-Total-Count" = i64, description = "Opted-out phones, all pages"))),
        (status = 400, description = "Malformed parameter", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn opt_outs(State(state): State<ApiState>, params: Params) -> Result<Response, ApiError> {
    let page = params.page()?;
    let code = &state.ctx.settings.whatsapp.default_country_code;
    let (rows, total) = consent::opt_outs(&state.pool, code, page.limit, page.offset).await?;
    Ok(with_total(total, Json(rows)))
}
