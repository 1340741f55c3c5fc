//! The webhook listener's handlers: Meta's subscription handshake and signed notifications,
//! Fonnte's notifications behind a secret path token, and `/healthz`.
//!
//! A notification is authenticated on its raw bytes before anything reads them, parsed into
//! reports, and answered 200 only once every report's event is confirmed by the broker. Nothing
//! of a body is logged beyond counts and event ids.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::json;

use super::WebhookState;
use super::signature::{SIGNATURE_HEADER, verify_signature, verify_token_matches};
use crate::domain::webhook::{Parsed, event, fonnte, meta};
use crate::metrics::WebhookLabels;

const META: &str = "cloud_api";
const FONNTE: &str = "fonnte";

/// How a webhook request ended, as counted in `reminder_webhook_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    Verified,
    Forbidden,
    BadSignature,
    BadRequest,
    NotFound,
    TooLarge,
    Unavailable,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Verified => "verified",
            Outcome::Forbidden => "forbidden",
            Outcome::BadSignature => "bad_signature",
            Outcome::BadRequest => "bad_request",
            Outcome::NotFound => "not_found",
            Outcome::TooLarge => "too_large",
            Outcome::Unavailable => "unavailable",
        }
    }

    pub const ALL: [Outcome; 8] = [
        Outcome::Accepted,
        Outcome::Verified,
        Outcome::Forbidden,
        Outcome::BadSignature,
        Outcome::BadRequest,
        Outcome::NotFound,
        Outcome::TooLarge,
        Outcome::Unavailable,
    ];

    fn status(self) -> StatusCode {
        match self {
            Outcome::Accepted | Outcome::Verified => StatusCode::OK,
            Outcome::Forbidden => StatusCode::FORBIDDEN,
            Outcome::BadSignature => StatusCode::UNAUTHORIZED,
            Outcome::BadRequest => StatusCode::BAD_REQUEST,
            Outcome::NotFound => StatusCode::NOT_FOUND,
            Outcome::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Outcome::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// Counts the request and answers with the outcome's status and a JSON body.
fn answer(
    state: &WebhookState,
    provider: &'static str,
    outcome: Outcome,
    message: &str,
) -> Response {
    count(state, provider, outcome);
    let body = if outcome == Outcome::Accepted {
        json!({"status": "accepted", "message": message})
    } else {
        json!({"error": outcome.as_str(), "message": message})
    };
    (outcome.status(), Json(body)).into_response()
}

pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

pub async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": "not_found", "message": "no such route"})),
    )
        .into_response()
}

/// `GET /webhooks/whatsapp`: Meta's subscription handshake. The challenge goes back as plain
/// text when the verify token matches (compared in constant time); anything else is 403.
pub async fn meta_handshake(
    State(state): State<WebhookState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let expected = state.ctx.settings.whatsapp.cloud_api.verify_token.expose();
    let given = query
        .get("hub.verify_token")
        .map(String::as_str)
        .unwrap_or("");
    let subscribe = query.get("hub.mode").map(String::as_str) == Some("subscribe");
    match query.get("hub.challenge") {
        Some(challenge) if subscribe && verify_token_matches(expected, given) => {
            count(&state, META, Outcome::Verified);
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                challenge.clone(),
            )
                .into_response()
        }
        _ => answer(&state, META, Outcome::Forbidden, "verification refused"),
    }
}

/// `POST /webhooks/whatsapp`: a notification signed with the app secret.
pub async fn meta_notification(
    State(state): State<WebhookState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(rejection) => return rejected(&state, META, rejection),
    };
    let secret = state.ctx.settings.whatsapp.cloud_api.app_secret.expose();
    let signature = headers.get(SIGNATURE_HEADER).map(|v| v.as_bytes());
    if let Err(e) = verify_signature(secret.as_bytes(), signature, &body) {
        tracing::info!(reason = %e, "refused a webhook with a bad signature");
        return answer(&state, META, Outcome::BadSignature, &e.to_string());
    }
    let parsed = meta::parse(&body, Utc::now(), |raw| state.normalise(raw));
    publish(&state, META, parsed.map_err(|e| e.to_string())).await
}

/// `POST /webhooks/fonnte/{token}`: a status or incoming message, JSON or form-encoded. Fonnte
/// signs nothing, so the secret token in the path authenticates it; a wrong one is a 404, as if
/// the route did not exist.
pub async fn fonnte_notification(
    State(state): State<WebhookState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let expected = state.ctx.settings.whatsapp.fonnte.webhook_token.expose();
    if !verify_token_matches(expected, &token) {
        return answer(&state, FONNTE, Outcome::NotFound, "no such route");
    }
    let body = match body {
        Ok(b) => b,
        Err(rejection) => return rejected(&state, FONNTE, rejection),
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let parsed = fonnte::parse(&body, content_type, Utc::now(), |raw| state.normalise(raw));
    publish(&state, FONNTE, parsed.map_err(|e| e.to_string())).await
}

fn count(state: &WebhookState, provider: &'static str, outcome: Outcome) {
    state
        .ctx
        .metrics
        .webhook_requests
        .get_or_create(&WebhookLabels {
            provider,
            outcome: outcome.as_str(),
        })
        .inc();
}

/// A body that could not be read: too large (413) or cut off.
fn rejected(state: &WebhookState, provider: &'static str, rejection: BytesRejection) -> Response {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        answer(state, provider, Outcome::TooLarge, "the body is over 1 MiB")
    } else {
        answer(
            state,
            provider,
            Outcome::BadRequest,
            "the body could not be read",
        )
    }
}

/// Publishes what a body reported and answers: 200 once every event is confirmed, 503 when
/// the broker did not take them all, 400 for a body that is not readable at all.
async fn publish(
    state: &WebhookState,
    provider: &'static str,
    parsed: Result<Parsed, String>,
) -> Response {
    let parsed = match parsed {
        Ok(p) => p,
        Err(e) => return answer(state, provider, Outcome::BadRequest, &e),
    };
    match state.publish(&parsed.reports).await {
        Ok(()) => {
            let ids: Vec<String> = parsed.reports.iter().map(event::id).collect();
            tracing::debug!(provider, events = ?ids, ignored = parsed.ignored, "webhook published");
            answer(
                state,
                provider,
                Outcome::Accepted,
                &format!("{} events", parsed.reports.len()),
            )
        }
        Err(e) => {
            tracing::warn!(provider, error = %e, events = parsed.reports.len(), "could not publish a webhook's events; answering 503");
            answer(
                state,
                provider,
                Outcome::Unavailable,
                "the broker is unavailable; retry",
            )
        }
    }
}
