//! `GET /whatsapp-report/export.csv`: the detail view as CSV, streamed row by row so a
//! million reports never sit in memory.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use super::super::ApiState;
use super::super::error::{ApiError, ErrorBody};
use super::super::params::Params;
use super::list::report_filter;
use crate::db::reports::{self, export};

#[utoipa::path(
    get,
    path = "/whatsapp-report/export.csv",
    tag = "reports",
    summary = "Export the detail view as CSV",
    description = "Every report matching the filters (no page limit), header row first, streamed.",
    params(
        ("customer" = Option<uuid::Uuid>, Query, description = "Only this customer's reports"),
        ("vehicle" = Option<uuid::Uuid>, Query, description = "Only this vehicle's reports"),
        ("sort" = Option<String>, Query, description = "`recent` (default) or `frequency`"),
    ),
    responses(
        (status = 200, description = "CSV", content_type = "text/csv", body = String),
        (status = 400, description = "Malformed parameter", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn export_csv(
    State(state): State<ApiState>,
    params: Params,
) -> Result<Response, ApiError> {
    let filter = report_filter(&params)?;
    let mut rows = reports::detail_stream(&state.pool, filter);
    // The first row (or the end) decides the status: a database that is down is a 503 with a
    // JSON body, not a 200 whose body breaks off.
    let first = match rows.next().await {
        Some(Err(e)) => return Err(e.into()),
        Some(Ok(row)) => Some(Ok(row)),
        // An empty export: the stream is over and must not be polled again.
        None => {
            rows = futures::stream::empty().boxed();
            None
        }
    };
    let header_row =
        futures::stream::once(async { Ok::<_, std::io::Error>(Bytes::from(export::csv_header())) });
    // Rows already read go out together (up to 256 in one chunk, about 70 KB), so a large
    // export is not one HTTP frame per row; a slow database still gets each row out at once.
    let rows = futures::stream::iter(first)
        .chain(rows)
        .ready_chunks(256)
        .map(|rows| {
            let mut chunk = String::with_capacity(rows.len() * 300);
            for row in rows {
                match row {
                    Ok(r) => chunk.push_str(&export::csv_row(&r)),
                    Err(e) => {
                        // Headers are gone already; cutting the body short is the only signal
                        // left.
                        tracing::error!(error = %e, "CSV export interrupted");
                        return Err(std::io::Error::other(e));
                    }
                }
            }
            Ok(Bytes::from(chunk))
        });
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"whatsapp-report.csv\"",
            ),
        ],
        Body::from_stream(header_row.chain(rows)),
    )
        .into_response())
}
