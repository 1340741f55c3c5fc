//! `GET /openapi.json`: the OpenAPI 3 description, generated from the same annotations that
//! register the routes, so the two cannot drift apart.

use axum::Json;
use axum::extract::State;

use super::super::ApiState;

#[utoipa::path(get, path = "/openapi.json", tag = "operations", summary = "This OpenAPI 3 description",
    responses((status = 200, description = "OpenAPI 3 document", content_type = "application/json")))]
pub async fn openapi(State(state): State<ApiState>) -> Json<utoipa::openapi::OpenApi> {
    Json((*state.openapi).clone())
}
