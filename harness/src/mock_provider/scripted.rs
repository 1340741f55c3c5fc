//! Answers in each provider's real format for a wiremock server, for tests that script every
//! response themselves (a status, a body, a delay) and read back the exact requests.

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::PHONE_NUMBER_ID;

/// The Cloud API messages endpoint the mocks serve.
pub fn messages_path() -> String {
    format!("/v21.0/{PHONE_NUMBER_ID}/messages")
}

/// A Cloud API success answer.
pub fn cloud_api_ok(message_id: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": "6281234567890", "wa_id": "6281234567890"}],
        "messages": [{"id": message_id}]
    }))
}

/// A Cloud API error answer.
pub fn cloud_api_error(status: u16, code: i64, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(cloud_api_error_body(code, message))
}

/// The body of a Cloud API error (Graph API format).
pub fn cloud_api_error_body(code: i64, message: &str) -> Value {
    json!({
        "error": {
            "message": message,
            "type": "OAuthException",
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": message},
            "fbtrace_id": "AbCdEf"
        }
    })
}

/// A Fonnte success answer for message `id`.
pub fn fonnte_ok(id: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "detail": "success! message in queue",
        "id": [id],
        "process": "pending",
        "requestid": 2937124,
        "status": true,
        "target": ["6281234567890"]
    }))
}

/// Mounts a Cloud API that always succeeds.
pub async fn mock_cloud_api_ok(mock: &MockServer) {
    Mock::given(method("POST"))
        .and(path(messages_path()))
        .respond_with(cloud_api_ok("wamid.HBgLNjI4MTIzNDU2Nzg5MBUCABEYEjA"))
        .mount(mock)
        .await;
}
