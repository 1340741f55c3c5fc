//! Each WhatsApp provider against a local mock server speaking that provider's real request and
//! response format: the exact request it sends, how it reads success, and how every kind of
//! failure is classified (transient or permanent, and the `error_code` it carries).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::Version;
use chrono::NaiveDate;
use reminder::configuration::{ProviderKind, Secret, Settings, WhatsappSettings};
use reminder::domain::{CountryCode, PhoneNumber};
use reminder::sender::providers::{self, ErrorClass, OutboundMessage, SendError};
use serde_json::{Value, json};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

use reminder_harness::mock_provider::scripted::fonnte_ok;
use reminder_harness::mock_provider::{Behaviour, MockCloudApi, point_at};
use reminder_harness::prelude::*;

const FONNTE_TOKEN: &str = "fonnte-test-token";
const TEXT: &str = "Halo Budi Santoso, kendaraan B 1234 XYZ Anda dijadwalkan servis berkala pada 26 November 2026. Balas pesan ini untuk booking jadwal. Terima kasih.";

fn message(reminder_id: &str) -> OutboundMessage {
    OutboundMessage {
        reminder_id: reminder_id.into(),
        to: PhoneNumber::parse("0812-3456-7890", &CountryCode::parse("62").unwrap()).unwrap(),
        customer_name: "Budi Santoso".into(),
        plate_number: "B 1234 XYZ".into(),
        vehicle: Some("Honda Vario 125".into()),
        due_date: NaiveDate::from_ymd_opt(2026, 11, 26).unwrap(),
        due_date_text: "26 November 2026".into(),
        locale: "id".into(),
        text: TEXT.into(),
    }
}

fn cloud_api_settings(mock: &MockServer) -> WhatsappSettings {
    let mut w = Settings::defaults().whatsapp;
    point_at(&mut w, &mock.uri());
    w
}

fn fonnte_settings(mock: &MockServer) -> WhatsappSettings {
    let mut w = Settings::defaults().whatsapp;
    w.provider = ProviderKind::Fonnte;
    w.fonnte.base_url = mock.uri();
    w.fonnte.token = Secret::new(FONNTE_TOKEN);
    w.request_timeout_ms = 2000;
    w
}

/// Sends one message through the provider `settings` configure.
async fn send(settings: &WhatsappSettings) -> Result<String, SendError> {
    let provider = providers::from_settings(settings).expect("the provider builds");
    provider
        .send(&message("rem-1"))
        .await
        .map(|r| r.provider_message_id)
}

async fn answer_always(mock: &MockServer, response: ResponseTemplate) {
    mock.reset().await;
    Mock::given(any()).respond_with(response).mount(mock).await;
}

fn header<'a>(request: &'a wiremock::Request, name: &str) -> &'a str {
    request
        .headers
        .get(name)
        .unwrap_or_else(|| panic!("header {name} missing"))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn the_cloud_api_gets_a_template_message_with_name_plate_and_due_date() {
    let mock = MockServer::start().await;
    answer_always(&mock, cloud_api_ok("wamid.HBgLNjI4MTIzNDU2Nzg5MBUCABEYEjA")).await;

    let id = send(&cloud_api_settings(&mock)).await.expect("sent");

    assert_eq!(id, "wamid.HBgLNjI4MTIzNDU2Nzg5MBUCABEYEjA");
    let requests = mock.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.method.as_str(), "POST");
    assert_eq!(r.url.path(), messages_path());
    assert_eq!(header(r, "authorization"), format!("Bearer {ACCESS_TOKEN}"));
    assert_eq!(header(r, "content-type"), "application/json");
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        body,
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "6281234567890",
            "type": "template",
            "template": {
                "name": "maintenance_reminder",
                "language": {"code": "id"},
                "components": [{
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": "Budi Santoso"},
                        {"type": "text", "text": "B 1234 XYZ"},
                        {"type": "text", "text": "26 November 2026"}
                    ]
                }]
            },
            "biz_opaque_callback_data": "rem-1"
        })
    );
}

#[tokio::test]
async fn the_cloud_api_gets_a_text_message_when_no_template_is_configured() {
    let mock = MockServer::start().await;
    answer_always(&mock, cloud_api_ok("wamid.text")).await;
    let mut settings = cloud_api_settings(&mock);
    settings.cloud_api.template_name = String::new();

    assert_eq!(send(&settings).await.expect("sent"), "wamid.text");

    let requests = mock.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(
        body,
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "6281234567890",
            "type": "text",
            "text": {"preview_url": false, "body": TEXT},
            "biz_opaque_callback_data": "rem-1"
        })
    );
}

#[tokio::test]
async fn cloud_api_error_codes_are_transient_or_permanent_as_documented() {
    let mock = MockServer::start().await;
    let settings = cloud_api_settings(&mock);
    for code in [
        1, 2, 4, 80007, 130429, 131000, 131016, 131048, 131056, 131057, 133016,
    ] {
        answer_always(&mock, cloud_api_error(400, code, "try later")).await;
        let e = send(&settings).await.unwrap_err();
        assert_eq!(e.class, ErrorClass::Transient, "code {code}");
        assert_eq!(e.code, code.to_string());
    }
    for (status, code) in [
        (400, 131026),
        (401, 190),
        (400, 100),
        (400, 131047),
        (400, 132001),
    ] {
        answer_always(&mock, cloud_api_error(status, code, "refused")).await;
        let e = send(&settings).await.unwrap_err();
        assert_eq!(e.class, ErrorClass::Permanent, "code {code}");
        assert_eq!(e.code, code.to_string());
        assert!(e.message.contains("refused"), "{}", e.message);
    }
}

#[tokio::test]
async fn cloud_api_429_and_5xx_are_transient_whatever_the_body_says() {
    let mock = MockServer::start().await;
    let settings = cloud_api_settings(&mock);

    answer_always(&mock, cloud_api_error(500, 131026, "internal")).await;
    let e = send(&settings).await.unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Transient, "131026")
    );

    answer_always(
        &mock,
        ResponseTemplate::new(503).set_body_string("<html>down</html>"),
    )
    .await;
    let e = send(&settings).await.unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Transient, "http_503")
    );

    answer_always(
        &mock,
        ResponseTemplate::new(429).insert_header("Retry-After", "7"),
    )
    .await;
    let e = send(&settings).await.unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Transient, "http_429")
    );
    assert_eq!(e.retry_after, Some(Duration::from_secs(7)));

    answer_always(
        &mock,
        ResponseTemplate::new(404).set_body_string("not found"),
    )
    .await;
    let e = send(&settings).await.unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Permanent, "http_404")
    );
}

#[tokio::test]
async fn a_provider_slower_than_the_request_timeout_is_a_transient_timeout() {
    let mock = MockServer::start().await;
    let mut settings = cloud_api_settings(&mock);
    settings.request_timeout_ms = 200;
    answer_always(
        &mock,
        cloud_api_ok("wamid.late").set_delay(Duration::from_secs(2)),
    )
    .await;

    let e = send(&settings).await.unwrap_err();

    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Transient, "timeout")
    );
}

#[tokio::test]
async fn an_unreachable_provider_is_a_transient_connect_error() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut settings = Settings::defaults().whatsapp;
    point_at(&mut settings, &format!("http://127.0.0.1:{port}"));

    let e = send(&settings).await.unwrap_err();

    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Transient, "connect")
    );
}

#[tokio::test]
async fn fonnte_gets_the_token_header_and_the_target_message_and_country_code_form_fields() {
    let mock = MockServer::start().await;
    answer_always(&mock, fonnte_ok("80367170")).await;

    let id = send(&fonnte_settings(&mock)).await.expect("sent");

    assert_eq!(id, "80367170");
    let requests = mock.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.method.as_str(), "POST");
    assert_eq!(r.url.path(), "/send");
    assert_eq!(header(r, "authorization"), FONNTE_TOKEN);
    assert_eq!(
        header(r, "content-type"),
        "application/x-www-form-urlencoded"
    );
    let form: BTreeMap<String, String> = serde_urlencoded::from_bytes(&r.body).unwrap();
    let expected: BTreeMap<String, String> = [
        ("target", "6281234567890"),
        ("message", TEXT),
        ("countryCode", "62"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(form, expected);
}

#[tokio::test]
async fn fonnte_succeeds_only_when_the_body_says_status_true() {
    let mock = MockServer::start().await;
    let settings = fonnte_settings(&mock);

    // Fonnte refuses with HTTP 200 and a reason.
    answer_always(
        &mock,
        ResponseTemplate::new(200)
            .set_body_json(json!({"reason": "token invalid", "status": false})),
    )
    .await;
    let e = send(&settings).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Permanent);
    assert_eq!(e.code, "fonnte_rejected");
    assert!(e.message.contains("token invalid"), "{}", e.message);

    answer_always(
        &mock,
        ResponseTemplate::new(200).set_body_json(json!({"detail": "?"})),
    )
    .await;
    assert_eq!(
        send(&settings).await.unwrap_err().class,
        ErrorClass::Permanent
    );

    // Not Fonnte's JSON at all (a proxy's page): worth another try.
    answer_always(&mock, ResponseTemplate::new(200).set_body_string("<html>")).await;
    let e = send(&settings).await.unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Transient, "bad_response")
    );
}

#[tokio::test]
async fn fonnte_429_and_5xx_are_transient_and_other_http_errors_permanent() {
    let mock = MockServer::start().await;
    let settings = fonnte_settings(&mock);

    answer_always(
        &mock,
        ResponseTemplate::new(429).insert_header("Retry-After", "3"),
    )
    .await;
    let e = send(&settings).await.unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Transient, "http_429")
    );
    assert_eq!(e.retry_after, Some(Duration::from_secs(3)));

    answer_always(
        &mock,
        ResponseTemplate::new(502).set_body_string("bad gateway"),
    )
    .await;
    let e = send(&settings).await.unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Transient, "http_502")
    );

    answer_always(
        &mock,
        ResponseTemplate::new(401).set_body_string("<html>no</html>"),
    )
    .await;
    let e = send(&settings).await.unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Permanent, "http_401")
    );
}

#[tokio::test]
async fn the_log_provider_succeeds_without_credentials() {
    let settings = Settings::defaults().whatsapp;
    assert_eq!(settings.provider, ProviderKind::Log);

    let id = send(&settings).await.expect("sent");

    assert_eq!(id, "log.rem-1");
}

/// A Cloud API mock that holds each request long enough that sends started together are in
/// flight together, letting one HTTP/2 connection carry `max_streams` requests at once.
async fn holding_mock(max_streams: u32) -> MockCloudApi {
    MockCloudApi::start_with(Behaviour {
        delay: Duration::from_millis(300),
        max_streams,
        ..Behaviour::default()
    })
    .await
    .expect("the mock starts")
}

/// Settings for `mock`, speaking HTTP/2 from the first byte or not.
fn mock_settings(mock: &MockCloudApi, http2_prior_knowledge: bool) -> WhatsappSettings {
    let mut w = Settings::defaults().whatsapp;
    point_at(&mut w, &mock.url);
    w.http2_prior_knowledge = http2_prior_knowledge;
    w
}

/// Sends `n` messages at once through `provider`.
async fn send_concurrently(provider: &dyn providers::WhatsappProvider, n: usize) {
    let messages: Vec<OutboundMessage> = (0..n).map(|i| message(&format!("rem-{i}"))).collect();
    let sends = messages.iter().map(|m| provider.send(m));
    for result in futures::future::join_all(sends).await {
        result.expect("sent");
    }
}

fn provider(settings: &WhatsappSettings) -> Arc<dyn providers::WhatsappProvider> {
    providers::from_settings(settings).expect("the provider builds")
}

#[tokio::test]
async fn concurrent_sends_share_one_http2_connection_when_the_provider_is_said_to_speak_it() {
    let server = holding_mock(200).await;

    send_concurrently(&*provider(&mock_settings(&server, true)), 5).await;

    assert_eq!(server.versions(), vec![Version::HTTP_2; 5]);
    assert_eq!(server.connections(), 1);
    assert!(server.most_at_once() > 1, "one connection, several at once");
}

#[tokio::test]
async fn concurrent_sends_to_an_http_url_use_http1_connections_by_default() {
    let server = holding_mock(200).await;

    send_concurrently(&*provider(&mock_settings(&server, false)), 5).await;

    assert_eq!(server.versions(), vec![Version::HTTP_11; 5]);
    assert_eq!(server.connections(), 5);
}

#[tokio::test]
async fn http2_sends_beyond_the_servers_stream_limit_wait_for_a_stream_on_the_one_connection() {
    let server = holding_mock(2).await;
    let provider = provider(&mock_settings(&server, true));
    // The first send opens the connection and learns the server's limit (its SETTINGS).
    send_concurrently(&*provider, 1).await;

    send_concurrently(&*provider, 6).await;

    assert_eq!(server.versions().len(), 7);
    assert_eq!(server.connections(), 1);
    assert!(server.most_at_once() <= 2);
}
