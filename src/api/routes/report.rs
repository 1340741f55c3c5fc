//! `GET /whatsapp-report/{id}`: one report by its own id.

use axum::Json;
use axum::extract::State;

use super::super::ApiState;
use super::super::error::{ApiError, ErrorBody};
use super::super::params::Ids;
use crate::db::reports::{self, Report};

#[utoipa::path(
    get,
    path = "/whatsapp-report/{id}",
    tag = "reports",
    summary = "One report by id",
    params(("id" = uuid::Uuid, Path, description = "Report id")),
    responses(
        (status = 200, description = "The report", body = Report),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such report", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn report_by_id(
    State(state): State<ApiState>,
    Ids(ids): Ids,
) -> Result<Json<Report>, ApiError> {
    reports::by_id(&state.pool, ids[0])
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no report with id {}", ids[0])))
}
