//! `GET /`: the dashboard, static files compiled into the binary. It reads only the public
//! JSON routes (the page asks for the bearer token when the server wants one and keeps it in
//! the browser's localStorage).
//!
//! The page loads nothing from elsewhere and runs no inline script, so a strict
//! Content-Security-Policy costs nothing and stops injected markup from running.

use axum::http::{HeaderName, HeaderValue, header};
use axum::response::IntoResponse;

const INDEX: &str = include_str!("../assets/index.html");
const SCRIPT: &str = include_str!("../assets/dashboard.js");
const COMMON_SCRIPT: &str = include_str!("../assets/common.js");
const CHARTS_SCRIPT: &str = include_str!("../assets/charts.js");
const SEARCH_SCRIPT: &str = include_str!("../assets/search.js");
const REPORTING_SCRIPT: &str = include_str!("../assets/reporting.js");
const STYLE: &str = include_str!("../assets/dashboard.css");
const OPT_OUTS: &str = include_str!("../assets/optouts.js");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    let headers: [(HeaderName, HeaderValue); 3] = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
    ];
    (headers, body)
}

#[utoipa::path(get, path = "/", tag = "operations", summary = "Dashboard (HTML)",
    description = "Headline statistics, the sent, delivered, read and replied funnel, messages per day, customers' replies, the most reminded and over-reminded customers, recent failures and a customer search, built on the JSON routes.",
    responses((status = 200, description = "The dashboard page", content_type = "text/html", body = String)))]
pub async fn index() -> impl IntoResponse {
    asset("text/html; charset=utf-8", INDEX)
}

#[utoipa::path(get, path = "/assets/dashboard.js", tag = "operations", summary = "The dashboard's script",
    responses((status = 200, description = "JavaScript", content_type = "text/javascript", body = String)))]
pub async fn script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

#[utoipa::path(get, path = "/assets/optouts.js", tag = "operations", summary = "The dashboard's opt-out panel",
    responses((status = 200, description = "JavaScript", content_type = "text/javascript", body = String)))]
pub async fn opt_outs_script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", OPT_OUTS)
}

#[utoipa::path(get, path = "/assets/dashboard.css", tag = "operations", summary = "The dashboard's style sheet",
    responses((status = 200, description = "CSS", content_type = "text/css", body = String)))]
pub async fn style() -> impl IntoResponse {
    asset("text/css; charset=utf-8", STYLE)
}

#[utoipa::path(get, path = "/assets/reporting.js", tag = "operations", summary = "The dashboard's reporting panel script",
    responses((status = 200, description = "JavaScript", content_type = "text/javascript", body = String)))]
pub async fn reporting_script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", REPORTING_SCRIPT)
}

#[utoipa::path(get, path = "/assets/common.js", tag = "operations", summary = "What the dashboard's scripts share",
    responses((status = 200, description = "JavaScript", content_type = "text/javascript", body = String)))]
pub async fn common_script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", COMMON_SCRIPT)
}

#[utoipa::path(get, path = "/assets/charts.js", tag = "operations", summary = "The dashboard's charts",
    responses((status = 200, description = "JavaScript", content_type = "text/javascript", body = String)))]
pub async fn charts_script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", CHARTS_SCRIPT)
}

#[utoipa::path(get, path = "/assets/search.js", tag = "operations", summary = "The dashboard's customer search",
    responses((status = 200, description = "JavaScript", content_type = "text/javascript", body = String)))]
pub async fn search_script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", SEARCH_SCRIPT)
}
