//! `GET /`: the dashboard, static files compiled into the binary. It reads only the public
//! JSON routes.

use axum::http::header;
use axum::response::{Html, IntoResponse};

const INDEX: &str = include_str!("../assets/index.html");
const SCRIPT: &str = include_str!("../assets/dashboard.js");
const STYLE: &str = include_str!("../assets/dashboard.css");

#[utoipa::path(get, path = "/", tag = "operations", summary = "Dashboard (HTML)",
    responses((status = 200, description = "The dashboard page", content_type = "text/html", body = String)))]
pub async fn index() -> Html<&'static str> {
    Html(INDEX)
}

#[utoipa::path(get, path = "/assets/dashboard.js", tag = "operations", summary = "The dashboard's script",
    responses((status = 200, description = "JavaScript", content_type = "text/javascript", body = String)))]
pub async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
}

#[utoipa::path(get, path = "/assets/dashboard.css", tag = "operations", summary = "The dashboard's style sheet",
    responses((status = 200, description = "CSS", content_type = "text/css", body = String)))]
pub async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE)
}
