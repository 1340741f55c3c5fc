//! The sender role against the real RabbitMQ and PostgreSQL, with the WhatsApp Cloud API played
//! by a local mock: retries and their back-off, permanent failures, never sending a reminder
//! twice, dead-lettering bad events, and binary-mode CloudEvents.
//!
//! Outcome events are observed on a private queue bound to `message.sent` / `message.failed`
//! on the test's exchange (exclusive, so it disappears with the connection), or through the
//! tracker and the API when the test is about what gets counted.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::NaiveDate;
use lapin::BasicProperties;
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use reminder::configuration::{ProviderKind, Secret};
use reminder::db::dispatch::{self, Claim, DispatchStatus};
use reminder::domain::events::outcome_id;
use reminder::domain::{CountryCode, MaintenanceDue, PhoneNumber};
use reminder::sender::parking::declare_retry_queue;
use reminder::startup::Role;
use serde_json::{Value, json};
use tokio::time::Instant;
use uuid::Uuid;
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use reminder_harness::prelude::*;

const WAIT: Duration = Duration::from_secs(30);

/// A private queue receiving every outcome event the sender publishes.
struct Outcomes {
    amqp: TestAmqp,
    queue: String,
}

impl Outcomes {
    async fn observe(env: &TestEnv) -> Outcomes {
        let amqp = env.amqp().await;
        let queue = amqp
            .channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("observer queue")
            .name()
            .to_string();
        for key in ["message.sent", "message.failed"] {
            amqp.channel
                .queue_bind(
                    queue.as_str().into(),
                    amqp.topology.exchange.as_str().into(),
                    key.into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .expect("bind");
        }
        Outcomes { amqp, queue }
    }

    /// Waits for `n` outcome events and returns them (parsed CloudEvents).
    async fn take(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        let mut out = Vec::new();
        while out.len() < n {
            let got = self
                .amqp
                .channel
                .basic_get(
                    self.queue.as_str().into(),
                    BasicGetOptions { no_ack: false },
                )
                .await
                .expect("basic.get");
            match got {
                Some(m) => {
                    m.delivery
                        .acker
                        .ack(BasicAckOptions::default())
                        .await
                        .expect("ack");
                    out.push(serde_json::from_slice(&m.delivery.data).expect("JSON event"));
                }
                None => {
                    assert!(
                        Instant::now() < deadline,
                        "only {} of {n} outcome events within {WAIT:?}: {out:?}",
                        out.len()
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        out
    }
}

fn cloud_api_env(mock: &MockServer) -> TestEnv {
    let mut env = TestEnv::new();
    env.use_cloud_api(mock);
    env
}

async fn calls(mock: &MockServer) -> usize {
    mock.received_requests().await.unwrap().len()
}

/// The mock answers `first` to the first `n` calls, then succeeds.
async fn fail_then_succeed(mock: &MockServer, first: ResponseTemplate, n: u64) {
    Mock::given(method("POST"))
        .and(path(messages_path()))
        .respond_with(first)
        .up_to_n_times(n)
        .with_priority(1)
        .mount(mock)
        .await;
    mock_cloud_api_ok(mock).await;
}

fn new_id() -> String {
    Uuid::new_v4().to_string()
}

/// The value of one series of `reminder_events_consumed_total` for the sender.
fn consumed(app: &TestApp, outcome: &str) -> u64 {
    let needle = format!("outcome=\"{outcome}\"");
    app.ctx
        .metrics
        .render()
        .lines()
        .filter(|l| {
            l.starts_with("reminder_events_consumed_total{")
                && l.contains("role=\"sender\"")
                && l.contains(&needle)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

async fn report_frequency(app: &TestApp, customer: Uuid, vehicle: Uuid) -> Option<i64> {
    let r = app
        .get(&format!(
            "/whatsapp-report/customer/{customer}/vehicle/{vehicle}"
        ))
        .await;
    if r.status() == 404 {
        return None;
    }
    let body: Value = r.json().await.unwrap();
    body["frequency"].as_i64()
}

fn sample_due() -> MaintenanceDue {
    MaintenanceDue {
        customer_id: Uuid::new_v4(),
        vehicle_id: Uuid::new_v4(),
        customer_name: "Budi Santoso".into(),
        phone: PhoneNumber::parse("081234567890", &CountryCode::parse("62").unwrap()).unwrap(),
        plate_number: "B 1234 XYZ".into(),
        vehicle: None,
        due_date: NaiveDate::from_ymd_opt(2026, 11, 26).unwrap(),
        locale: None,
    }
}

#[tokio::test]
async fn a_maintenance_due_is_sent_as_a_template_and_its_message_sent_carries_the_provider_id() {
    let mock = MockServer::start().await;
    mock_cloud_api_ok(&mock).await;
    let env = cloud_api_env(&mock);
    let outcomes = Outcomes::observe(&env).await;
    let app = env.spawn(&[Role::Sender]).await;
    let (id, customer, vehicle) = (new_id(), Uuid::new_v4(), Uuid::new_v4());

    outcomes
        .amqp
        .publish_event(&maintenance_due(&id, customer, vehicle))
        .await;

    let events = outcomes.take(1).await;
    let sent = &events[0];
    assert_eq!(sent["type"], "message.sent");
    assert_eq!(sent["specversion"], "1.0");
    assert_eq!(sent["id"], outcome_id("message.sent", &id));
    let data = &sent["data"];
    assert_eq!(data["reminder_id"], id);
    assert_eq!(data["customer_id"], customer.to_string());
    assert_eq!(data["vehicle_id"], vehicle.to_string());
    assert_eq!(data["phone"], "6281234567890");
    assert_eq!(data["provider"], "cloud_api");
    assert_eq!(
        data["provider_message_id"],
        "wamid.HBgLNjI4MTIzNDU2Nzg5MBUCABEYEjA"
    );
    assert_eq!(data["attempts"], 1);
    let requests = mock.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body["to"], "6281234567890");
    assert_eq!(body["biz_opaque_callback_data"], id);
    assert_eq!(
        body["template"]["components"][0]["parameters"],
        json!([
            {"type": "text", "text": "Budi Santoso"},
            {"type": "text", "text": "B 1234 XYZ"},
            {"type": "text", "text": "26 November 2026"}
        ])
    );
    app.stop().await;
}

#[tokio::test]
async fn a_maintenance_due_is_sent_through_fonnte_when_configured() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/send"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "detail": "success! message in queue",
            "id": ["80367170"],
            "process": "pending",
            "requestid": 2937124,
            "status": true,
            "target": ["6281234567890"]
        })))
        .mount(&mock)
        .await;
    let mut env = TestEnv::new();
    env.settings.whatsapp.provider = ProviderKind::Fonnte;
    env.settings.whatsapp.fonnte.base_url = mock.uri();
    env.settings.whatsapp.fonnte.token = Secret::new("fonnte-token");
    let outcomes = Outcomes::observe(&env).await;
    let app = env.spawn(&[Role::Sender]).await;
    let id = new_id();

    outcomes
        .amqp
        .publish_event(&maintenance_due(&id, Uuid::new_v4(), Uuid::new_v4()))
        .await;

    let events = outcomes.take(1).await;
    assert_eq!(events[0]["type"], "message.sent");
    assert_eq!(events[0]["data"]["provider"], "fonnte");
    assert_eq!(events[0]["data"]["provider_message_id"], "80367170");
    let requests = mock.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let form: std::collections::BTreeMap<String, String> =
        serde_urlencoded::from_bytes(&requests[0].body).unwrap();
    assert_eq!(form["target"], "6281234567890");
    assert_eq!(
        form["message"],
        "Halo Budi Santoso, kendaraan B 1234 XYZ Anda dijadwalkan servis berkala pada 26 November 2026. Balas pesan ini untuk booking jadwal. Terima kasih."
    );
    app.stop().await;
}

#[tokio::test]
async fn a_429_then_200_is_sent_once_and_counted_once() {
    let mock = MockServer::start().await;
    fail_then_succeed(
        &mock,
        cloud_api_error(429, 4, "(#4) Application request limit reached"),
        1,
    )
    .await;
    let env = cloud_api_env(&mock);
    let app = env.spawn(&[Role::Sender, Role::Tracker, Role::Api]).await;
    let amqp = env.amqp().await;
    let (id, customer, vehicle) = (new_id(), Uuid::new_v4(), Uuid::new_v4());

    amqp.publish_event(&maintenance_due(&id, customer, vehicle))
        .await;

    wait_until(WAIT, || async {
        report_frequency(&app, customer, vehicle).await == Some(1)
    })
    .await;
    assert_eq!(calls(&mock).await, 2);
    let history = app.get_json("/whatsapp-report/messages").await;
    let history = history.as_array().unwrap();
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0]["reminder_id"], id);
    assert_eq!(history[0]["status"], "sent");
    assert_eq!(history[0]["attempts"], 2);
    let stats = app.get_json("/whatsapp-report/statistics").await;
    assert_eq!(stats["total_messages"], 1);
    assert_eq!(stats["total_failed"], 0);
    assert_eq!(consumed(&app, "retry"), 1);
    assert_eq!(consumed(&app, "sent"), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_130429_throughput_error_is_retried() {
    let mock = MockServer::start().await;
    fail_then_succeed(&mock, cloud_api_error(400, 130429, "Rate limit hit"), 1).await;
    let env = cloud_api_env(&mock);
    let outcomes = Outcomes::observe(&env).await;
    let app = env.spawn(&[Role::Sender]).await;
    let id = new_id();

    outcomes
        .amqp
        .publish_event(&maintenance_due(&id, Uuid::new_v4(), Uuid::new_v4()))
        .await;

    let events = outcomes.take(1).await;
    assert_eq!(events[0]["type"], "message.sent");
    assert_eq!(events[0]["data"]["attempts"], 2);
    assert_eq!(calls(&mock).await, 2);
    app.stop().await;
}

/// Answers 429 with `Retry-After: {seconds}` first, then success, and notes when each call came.
struct RetryAfterOnce {
    seconds: u64,
    calls: Arc<Mutex<Vec<Instant>>>,
}

impl Respond for RetryAfterOnce {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut calls = self.calls.lock().unwrap();
        calls.push(Instant::now());
        if calls.len() == 1 {
            cloud_api_error(429, 80007, "Rate limit issues")
                .insert_header("Retry-After", self.seconds.to_string())
        } else {
            cloud_api_ok("wamid.after-retry")
        }
    }
}

#[tokio::test]
async fn the_retry_after_header_holds_the_next_attempt_back() {
    let mock = MockServer::start().await;
    let times = Arc::new(Mutex::new(Vec::new()));
    Mock::given(method("POST"))
        .respond_with(RetryAfterOnce {
            seconds: 1,
            calls: times.clone(),
        })
        .mount(&mock)
        .await;
    let mut env = cloud_api_env(&mock);
    // Without Retry-After the first retry would come after 38–50 ms.
    env.settings.sender.retry_initial_ms = 50;
    let outcomes = Outcomes::observe(&env).await;
    let app = env.spawn(&[Role::Sender]).await;

    outcomes
        .amqp
        .publish_event(&maintenance_due(&new_id(), Uuid::new_v4(), Uuid::new_v4()))
        .await;

    let events = outcomes.take(1).await;
    assert_eq!(
        events[0]["data"]["provider_message_id"],
        "wamid.after-retry"
    );
    let times = times.lock().unwrap().clone();
    assert_eq!(times.len(), 2);
    assert!(
        times[1] - times[0] >= Duration::from_secs(1),
        "retried after {:?}, before the provider's Retry-After",
        times[1] - times[0]
    );
    app.stop().await;
}

#[tokio::test]
async fn a_duplicate_arriving_during_the_back_off_does_not_call_the_provider_early() {
    let mock = MockServer::start().await;
    let times = Arc::new(Mutex::new(Vec::new()));
    Mock::given(method("POST"))
        .respond_with(RetryAfterOnce {
            seconds: 2,
            calls: times.clone(),
        })
        .mount(&mock)
        .await;
    let mut env = cloud_api_env(&mock);
    env.settings.sender.retry_initial_ms = 50;
    let outcomes = Outcomes::observe(&env).await;
    let app = env.spawn(&[Role::Sender]).await;
    let event = maintenance_due(&new_id(), Uuid::new_v4(), Uuid::new_v4());

    outcomes.amqp.publish_event(&event).await;
    wait_until(WAIT, || async { consumed(&app, "retry") == 1 }).await;
    outcomes.amqp.publish_event(&event).await;

    let events = outcomes.take(2).await;
    assert_eq!(events[0], events[1]);
    let times = times.lock().unwrap().clone();
    assert_eq!(times.len(), 2, "one failed call and one successful call");
    assert!(
        times[1] - times[0] >= Duration::from_secs(2),
        "the second call came {:?} after the first, inside the provider's Retry-After",
        times[1] - times[0]
    );
    assert!(consumed(&app, "deferred") >= 1);
    app.stop().await;
}

#[tokio::test]
async fn errors_131026_and_190_fail_at_once_without_a_retry() {
    let mock = MockServer::start().await;
    let (undeliverable, bad_token) = (new_id(), new_id());
    Mock::given(body_partial_json(
        json!({"biz_opaque_callback_data": undeliverable}),
    ))
    .respond_with(cloud_api_error(400, 131026, "Message undeliverable"))
    .mount(&mock)
    .await;
    Mock::given(body_partial_json(
        json!({"biz_opaque_callback_data": bad_token}),
    ))
    .respond_with(cloud_api_error(
        401,
        190,
        "Error validating access token: Session has expired",
    ))
    .mount(&mock)
    .await;
    let env = cloud_api_env(&mock);
    let app = env.spawn(&[Role::Sender, Role::Tracker, Role::Api]).await;
    let amqp = env.amqp().await;

    for id in [&undeliverable, &bad_token] {
        amqp.publish_event(&maintenance_due(id, Uuid::new_v4(), Uuid::new_v4()))
            .await;
    }

    wait_until(WAIT, || async {
        let failed = app
            .get_json("/whatsapp-report/messages?status=failed")
            .await;
        failed.as_array().unwrap().len() == 2
    })
    .await;
    let failed = app
        .get_json("/whatsapp-report/messages?status=failed")
        .await;
    for (id, code) in [(&undeliverable, "131026"), (&bad_token, "190")] {
        let m = failed
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["reminder_id"] == **id)
            .expect("a message.failed for each reminder");
        assert_eq!(m["error_code"], code);
        assert_eq!(m["attempts"], 1);
        assert_eq!(m["provider"], "cloud_api");
        assert!(m["provider_message_id"].is_null());
        assert!(!m["error"].as_str().unwrap().is_empty());
    }
    assert_eq!(calls(&mock).await, 2);
    let stats = app.get_json("/whatsapp-report/statistics").await;
    assert_eq!(stats["total_reports"], 0);
    assert_eq!(stats["total_failed"], 2);
    app.stop().await;
}

#[tokio::test]
async fn a_provider_time_out_is_retried() {
    let mock = MockServer::start().await;
    fail_then_succeed(
        &mock,
        cloud_api_ok("wamid.too-late").set_delay(Duration::from_secs(3)),
        1,
    )
    .await;
    let mut env = cloud_api_env(&mock);
    // Long enough for the mock's prompt answer on a loaded machine, far below its slow one.
    env.settings.whatsapp.request_timeout_ms = 1000;
    let outcomes = Outcomes::observe(&env).await;
    let app = env.spawn(&[Role::Sender]).await;

    outcomes
        .amqp
        .publish_event(&maintenance_due(&new_id(), Uuid::new_v4(), Uuid::new_v4()))
        .await;

    let events = outcomes.take(1).await;
    assert_eq!(events[0]["type"], "message.sent");
    assert_eq!(
        events[0]["data"]["provider_message_id"],
        "wamid.HBgLNjI4MTIzNDU2Nzg5MBUCABEYEjA"
    );
    assert_eq!(events[0]["data"]["attempts"], 2);
    assert_eq!(calls(&mock).await, 2);
    app.stop().await;
}

#[tokio::test]
async fn a_reminder_failing_transiently_every_time_fails_after_max_attempts() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string("Service Unavailable"))
        .mount(&mock)
        .await;
    let mut env = cloud_api_env(&mock);
    env.settings.whatsapp.max_attempts = 3;
    let outcomes = Outcomes::observe(&env).await;
    let app = env.spawn(&[Role::Sender]).await;
    let id = new_id();

    outcomes
        .amqp
        .publish_event(&maintenance_due(&id, Uuid::new_v4(), Uuid::new_v4()))
        .await;

    let events = outcomes.take(1).await;
    let failed = &events[0];
    assert_eq!(failed["type"], "message.failed");
    assert_eq!(failed["id"], outcome_id("message.failed", &id));
    assert_eq!(failed["data"]["reminder_id"], id);
    assert_eq!(failed["data"]["error_code"], "http_503");
    assert_eq!(failed["data"]["attempts"], 3);
    assert_eq!(calls(&mock).await, 3);
    app.stop().await;
}

#[tokio::test]
async fn an_unreachable_provider_fails_with_error_code_connect_after_max_attempts() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mock = MockServer::start().await;
    let mut env = cloud_api_env(&mock);
    env.settings.whatsapp.cloud_api.base_url = format!("http://127.0.0.1:{port}");
    env.settings.whatsapp.max_attempts = 2;
    let outcomes = Outcomes::observe(&env).await;
    let app = env.spawn(&[Role::Sender]).await;

    outcomes
        .amqp
        .publish_event(&maintenance_due(&new_id(), Uuid::new_v4(), Uuid::new_v4()))
        .await;

    let events = outcomes.take(1).await;
    assert_eq!(events[0]["type"], "message.failed");
    assert_eq!(events[0]["data"]["error_code"], "connect");
    assert_eq!(events[0]["data"]["attempts"], 2);
    app.stop().await;
}

#[tokio::test]
async fn the_same_maintenance_due_published_three_times_sends_one_message() {
    let mock = MockServer::start().await;
    mock_cloud_api_ok(&mock).await;
    let env = cloud_api_env(&mock);
    let outcomes = Outcomes::observe(&env).await;
    let app = env.spawn(&[Role::Sender]).await;
    let id = new_id();
    let event = maintenance_due(&id, Uuid::new_v4(), Uuid::new_v4());

    for _ in 0..3 {
        outcomes.amqp.publish_event(&event).await;
    }

    let events = outcomes.take(3).await;
    assert_eq!(calls(&mock).await, 1);
    // Every delivery published the very same message.sent: same id, same content.
    for e in &events {
        assert_eq!(e["type"], "message.sent");
        assert_eq!(e["id"], outcome_id("message.sent", &id));
        assert_eq!(e, &events[0]);
    }
    // A handler counts its delivery after the ack, which follows the publish seen above.
    wait_until(WAIT, || async {
        consumed(&app, "sent") + consumed(&app, "duplicate") == 3
    })
    .await;
    assert_eq!(consumed(&app, "sent"), 1);
    assert_eq!(consumed(&app, "duplicate"), 2);
    app.stop().await;
}

#[tokio::test]
async fn two_deliveries_of_one_reminder_handled_at_once_send_one_message() {
    let mock = MockServer::start().await;
    // A slow provider: the second delivery arrives while the first is still being sent.
    Mock::given(method("POST"))
        .respond_with(cloud_api_ok("wamid.slow").set_delay(Duration::from_secs(1)))
        .mount(&mock)
        .await;
    let env = cloud_api_env(&mock);
    let outcomes = Outcomes::observe(&env).await;
    let app = env.spawn(&[Role::Sender]).await;
    let id = new_id();
    let event = maintenance_due(&id, Uuid::new_v4(), Uuid::new_v4());

    outcomes.amqp.publish_event(&event).await;
    outcomes.amqp.publish_event(&event).await;

    let events = outcomes.take(2).await;
    assert_eq!(calls(&mock).await, 1);
    assert_eq!(events[0], events[1]);
    assert_eq!(events[0]["data"]["provider_message_id"], "wamid.slow");
    app.stop().await;
}

#[tokio::test]
async fn a_shutdown_waits_for_a_hung_send_only_as_long_as_the_shutdown_timeout_and_leaves_it_queued()
 {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(cloud_api_ok("wamid.hung").set_delay(Duration::from_secs(60)))
        .mount(&mock)
        .await;
    let mut env = cloud_api_env(&mock);
    env.settings.whatsapp.request_timeout_ms = 120_000;
    env.settings.runtime.shutdown_timeout_secs = 2;
    let amqp = env.amqp().await;
    let app = env.spawn(&[Role::Sender]).await;
    amqp.publish_event(&maintenance_due(&new_id(), Uuid::new_v4(), Uuid::new_v4()))
        .await;
    wait_until(WAIT, || async { calls(&mock).await == 1 }).await;

    let stopping = Instant::now();
    app.stop().await;
    let took = stopping.elapsed();

    assert!(
        took >= Duration::from_millis(1900),
        "the send in flight was not given the shutdown timeout: stopped after {took:?}"
    );
    assert!(
        took < Duration::from_secs(5),
        "the shutdown took {took:?} with a 2 s timeout"
    );
    // Abandoned unacked: the broker holds it for the next sender.
    let queue = env.topology().sender_queue;
    wait_until(WAIT, || async { amqp.depth(&queue).await == 1 }).await;
}

#[tokio::test]
async fn a_claimed_reminder_is_busy_for_other_handlers_until_its_outcome_is_recorded() {
    let env = TestEnv::new();
    let pool = env.pool().await;
    let due = sample_due();
    let lease = Duration::from_secs(30);

    let first = dispatch::claim(&pool, "r1", &due, "cloud_api", lease, 5)
        .await
        .unwrap();
    let second = dispatch::claim(&pool, "r1", &due, "cloud_api", lease, 5)
        .await
        .unwrap();
    dispatch::record_sent(&pool, "r1", "wamid.1", chrono::Utc::now())
        .await
        .unwrap();
    let third = dispatch::claim(&pool, "r1", &due, "cloud_api", lease, 5)
        .await
        .unwrap();

    assert!(matches!(first, Claim::Send { attempt: 1 }));
    assert!(
        matches!(second, Claim::Busy { wait } if wait > Duration::from_secs(25)),
        "the second claim waits for the lease"
    );
    match third {
        Claim::Done(record) => {
            assert_eq!(record.status, DispatchStatus::Sent);
            assert_eq!(record.provider_message_id.as_deref(), Some("wamid.1"));
            assert_eq!(record.attempts, 1);
        }
        _ => panic!("a recorded reminder is done"),
    }
}

#[tokio::test]
async fn a_reminder_backing_off_cannot_be_claimed_before_its_next_attempt() {
    let env = TestEnv::new();
    let pool = env.pool().await;
    let due = sample_due();
    let lease = Duration::from_secs(30);

    dispatch::claim(&pool, "r1", &due, "cloud_api", lease, 5)
        .await
        .unwrap();
    dispatch::record_retry(
        &pool,
        "r1",
        1,
        "130429",
        "Rate limit hit",
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    let early = dispatch::claim(&pool, "r1", &due, "cloud_api", lease, 5)
        .await
        .unwrap();
    dispatch::claim(&pool, "r2", &due, "cloud_api", lease, 5)
        .await
        .unwrap();
    dispatch::record_retry(&pool, "r2", 1, "130429", "Rate limit hit", Duration::ZERO)
        .await
        .unwrap();
    let due_now = dispatch::claim(&pool, "r2", &due, "cloud_api", lease, 5)
        .await
        .unwrap();

    assert!(
        matches!(early, Claim::NotYet { wait } if wait > Duration::from_secs(55)),
        "an early claim is told to wait"
    );
    assert!(matches!(due_now, Claim::Send { attempt: 2 }));
}

#[tokio::test]
async fn a_handler_whose_lease_was_taken_over_cannot_overwrite_the_newer_attempt() {
    let env = TestEnv::new();
    let pool = env.pool().await;
    let due = sample_due();
    let lease = Duration::from_secs(30);

    // Attempt 1's lease runs out at once (its handler stalled); attempt 2 takes over.
    dispatch::claim(&pool, "r1", &due, "cloud_api", Duration::ZERO, 5)
        .await
        .unwrap();
    let newer = dispatch::claim(&pool, "r1", &due, "cloud_api", lease, 5)
        .await
        .unwrap();
    let stale_retry = dispatch::record_retry(&pool, "r1", 1, "131000", "late", Duration::ZERO)
        .await
        .unwrap();
    let stale_failure =
        dispatch::record_failed(&pool, "r1", Some(1), "131026", "late", chrono::Utc::now())
            .await
            .unwrap();

    assert!(matches!(newer, Claim::Send { attempt: 2 }));
    assert!(
        !stale_retry,
        "a stale attempt does not turn the newer one into a retry"
    );
    assert_eq!(
        stale_failure.status,
        DispatchStatus::Sending,
        "nor fails it"
    );
    assert!(
        stale_failure.lease_left_ms > 25_000,
        "the newer lease stands"
    );
}

#[tokio::test]
async fn a_reminder_recorded_as_sent_before_a_crash_is_published_again_without_sending() {
    let mock = MockServer::start().await;
    mock_cloud_api_ok(&mock).await;
    let env = cloud_api_env(&mock);
    let id = new_id();
    let due = sample_due();
    // A sender died after recording the provider's answer, before publishing message.sent.
    let pool = env.pool().await;
    dispatch::claim(&pool, &id, &due, "cloud_api", Duration::from_secs(30), 5)
        .await
        .unwrap();
    dispatch::record_sent(&pool, &id, "wamid.before-the-crash", chrono::Utc::now())
        .await
        .unwrap();
    let outcomes = Outcomes::observe(&env).await;
    let app = env.spawn(&[Role::Sender]).await;

    outcomes
        .amqp
        .publish_event(&maintenance_due(&id, due.customer_id, due.vehicle_id))
        .await;

    let events = outcomes.take(1).await;
    assert_eq!(events[0]["id"], outcome_id("message.sent", &id));
    assert_eq!(
        events[0]["data"]["provider_message_id"],
        "wamid.before-the-crash"
    );
    assert_eq!(calls(&mock).await, 0);
    // Counted after the ack, which follows the publish seen above.
    wait_until(WAIT, || async { consumed(&app, "duplicate") >= 1 }).await;
    assert_eq!(consumed(&app, "duplicate"), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_reminder_whose_sender_died_mid_call_is_sent_again_once_its_lease_is_over() {
    let mock = MockServer::start().await;
    mock_cloud_api_ok(&mock).await;
    let env = cloud_api_env(&mock);
    let id = new_id();
    let due = sample_due();
    // A sender claimed attempt 1 and died during the provider call; its lease is over.
    let pool = env.pool().await;
    dispatch::claim(&pool, &id, &due, "cloud_api", Duration::ZERO, 5)
        .await
        .unwrap();
    let outcomes = Outcomes::observe(&env).await;
    let app = env.spawn(&[Role::Sender]).await;

    outcomes
        .amqp
        .publish_event(&maintenance_due(&id, due.customer_id, due.vehicle_id))
        .await;

    let events = outcomes.take(1).await;
    assert_eq!(events[0]["type"], "message.sent");
    assert_eq!(events[0]["data"]["attempts"], 2);
    assert_eq!(calls(&mock).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_reminder_whose_last_attempt_died_mid_call_fails_rather_than_risk_another_send() {
    let mock = MockServer::start().await;
    mock_cloud_api_ok(&mock).await;
    let mut env = cloud_api_env(&mock);
    env.settings.whatsapp.max_attempts = 2;
    let id = new_id();
    let due = sample_due();
    // Attempt 1 failed transiently; attempt 2, the last, died during the provider call.
    let pool = env.pool().await;
    dispatch::claim(&pool, &id, &due, "cloud_api", Duration::ZERO, 2)
        .await
        .unwrap();
    dispatch::record_retry(
        &pool,
        &id,
        1,
        "131000",
        "Something went wrong",
        Duration::ZERO,
    )
    .await
    .unwrap();
    dispatch::claim(&pool, &id, &due, "cloud_api", Duration::ZERO, 2)
        .await
        .unwrap();
    let outcomes = Outcomes::observe(&env).await;
    let app = env.spawn(&[Role::Sender]).await;

    outcomes
        .amqp
        .publish_event(&maintenance_due(&id, due.customer_id, due.vehicle_id))
        .await;

    let events = outcomes.take(1).await;
    assert_eq!(events[0]["type"], "message.failed");
    assert_eq!(events[0]["data"]["error_code"], "attempts_exhausted");
    assert_eq!(events[0]["data"]["attempts"], 2);
    assert_eq!(calls(&mock).await, 0);
    app.stop().await;
}

/// A bad event: its label (sent as the AMQP message id), the `x-reminder-error-code` it must
/// get, a word its `x-reminder-error` must contain, its body and content type.
struct Bad {
    label: &'static str,
    code: &'static str,
    reason: &'static str,
    body: Vec<u8>,
    properties: BasicProperties,
}

fn structured(label: &'static str, code: &'static str, reason: &'static str, event: Value) -> Bad {
    Bad {
        label,
        code,
        reason,
        body: serde_json::to_vec(&event).unwrap(),
        properties: BasicProperties::default()
            .with_content_type("application/cloudevents+json".into()),
    }
}

fn with_data(field: &str, value: Value) -> Value {
    let mut e = maintenance_due(&new_id(), Uuid::new_v4(), Uuid::new_v4());
    if value.is_null() {
        e["data"].as_object_mut().unwrap().remove(field);
    } else {
        e["data"][field] = value;
    }
    e
}

#[tokio::test]
async fn each_kind_of_bad_event_lands_in_the_dead_queue_with_its_reason_and_the_sender_carries_on()
{
    let mock = MockServer::start().await;
    mock_cloud_api_ok(&mock).await;
    let mut env = cloud_api_env(&mock);
    env.settings.amqp.max_message_bytes = 4096;
    let outcomes = Outcomes::observe(&env).await;
    let app = env.spawn(&[Role::Sender]).await;

    let mut bad = vec![
        Bad {
            label: "not-json",
            code: "invalid_json",
            reason: "not valid JSON",
            body: b"{\"specversion\": \"1.0\", ".to_vec(),
            properties: BasicProperties::default()
                .with_content_type("application/cloudevents+json".into()),
        },
        structured("array", "invalid_json", "not a JSON object", json!([1, 2])),
        structured("specversion", "bad_specversion", "specversion", {
            let mut e = with_data("vehicle", json!("Honda Vario 125"));
            e["specversion"] = json!("0.3");
            e
        }),
        structured("type", "wrong_type", "message.sent", {
            let mut e = with_data("vehicle", json!("Honda Vario 125"));
            e["type"] = json!("message.sent");
            e
        }),
        structured(
            "missing-customer",
            "missing_field",
            "data.customer_id",
            with_data("customer_id", Value::Null),
        ),
        structured(
            "bad-vehicle-id",
            "invalid_field",
            "data.vehicle_id",
            with_data("vehicle_id", json!("not-a-uuid")),
        ),
        structured(
            "bad-date",
            "invalid_field",
            "data.due_date",
            with_data("due_date", json!("26/11/2026")),
        ),
        structured(
            "bad-phone",
            "invalid_field",
            "data.phone",
            with_data("phone", json!("call me maybe")),
        ),
        structured(
            "empty-name",
            "invalid_field",
            "data.customer_name",
            with_data("customer_name", json!("")),
        ),
        structured(
            "too-large",
            "too_large",
            "over the limit",
            with_data("notes", json!("x".repeat(5000))),
        ),
    ];
    // Binary mode without its ce-id header.
    let mut headers = FieldTable::default();
    for (k, v) in [
        ("ce-specversion", "1.0"),
        ("ce-source", "test/upstream"),
        ("ce-type", "maintenance.due"),
    ] {
        headers.insert(k.into(), long_string(v));
    }
    bad.push(Bad {
        label: "binary-without-id",
        code: "missing_field",
        reason: "`id`",
        body: serde_json::to_vec(&with_data("vehicle", json!("x"))["data"]).unwrap(),
        properties: BasicProperties::default()
            .with_content_type("application/json".into())
            .with_headers(headers),
    });

    for b in &bad {
        outcomes
            .amqp
            .publish(
                "maintenance.due",
                &b.body,
                b.properties.clone().with_message_id(b.label.into()),
            )
            .await;
    }
    let good = new_id();
    outcomes
        .amqp
        .publish_event(&maintenance_due(&good, Uuid::new_v4(), Uuid::new_v4()))
        .await;

    let events = outcomes.take(1).await;
    assert_eq!(events[0]["data"]["reminder_id"], good);
    let dead = Arc::new(Mutex::new(Vec::new()));
    wait_until(WAIT, || async {
        let more = outcomes.amqp.drain_dead().await;
        let mut dead = dead.lock().unwrap();
        dead.extend(more);
        dead.len() >= bad.len()
    })
    .await;
    let dead = std::mem::take(&mut *dead.lock().unwrap());
    assert_eq!(dead.len(), bad.len());
    for b in &bad {
        let d = dead
            .iter()
            .find(|d| d.properties.message_id().as_ref().map(|s| s.as_str()) == Some(b.label))
            .unwrap_or_else(|| panic!("{} is in the dead queue", b.label));
        let reason = header_text(d, "x-reminder-error").expect("x-reminder-error");
        assert!(
            reason.contains(b.reason),
            "{}: reason {reason:?} should mention {:?}",
            b.label,
            b.reason
        );
        assert_eq!(
            header_text(d, "x-reminder-error-code").as_deref(),
            Some(b.code),
            "{}",
            b.label
        );
        assert_eq!(d.data, b.body, "{}: the body is kept as it was", b.label);
    }
    // Counted after the ack, which follows the dead-letter copy seen above.
    wait_until(WAIT, || async {
        consumed(&app, "dead_lettered") >= bad.len() as u64
    })
    .await;
    assert_eq!(consumed(&app, "dead_lettered"), bad.len() as u64);
    assert_eq!(calls(&mock).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_binary_mode_cloudevent_is_accepted() {
    let mock = MockServer::start().await;
    mock_cloud_api_ok(&mock).await;
    let env = cloud_api_env(&mock);
    let outcomes = Outcomes::observe(&env).await;
    let app = env.spawn(&[Role::Sender]).await;
    let (id, customer, vehicle) = (new_id(), Uuid::new_v4(), Uuid::new_v4());
    let data = maintenance_due(&id, customer, vehicle)["data"].clone();
    let mut headers = FieldTable::default();
    for (k, v) in [
        ("ce-specversion", "1.0"),
        ("ce-id", id.as_str()),
        ("ce-source", "knative/eventing-rabbitmq"),
        ("ce-type", "maintenance.due"),
        ("ce-time", "2026-11-24T01:00:00Z"),
    ] {
        headers.insert(k.into(), long_string(v));
    }

    outcomes
        .amqp
        .publish(
            "maintenance.due",
            &serde_json::to_vec(&data).unwrap(),
            BasicProperties::default()
                .with_content_type("application/json".into())
                .with_headers(headers),
        )
        .await;

    let events = outcomes.take(1).await;
    assert_eq!(events[0]["type"], "message.sent");
    assert_eq!(events[0]["data"]["reminder_id"], id);
    assert_eq!(events[0]["data"]["customer_id"], customer.to_string());
    let requests = mock.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body["biz_opaque_callback_data"], id);
    app.stop().await;
}

#[tokio::test]
async fn a_message_parked_in_a_retry_queue_expires_back_into_the_sender_queue() {
    let env = TestEnv::new();
    let amqp = env.amqp().await;
    let delay = env.settings.sender.retry_delay(1);
    let retry_queue = declare_retry_queue(&amqp.topology, &amqp.channel, delay)
        .await
        .expect("the retry queue declares");

    let confirm = amqp
        .channel
        .basic_publish(
            "".into(),
            retry_queue.as_str().into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            b"parked",
            BasicProperties::default()
                .with_delivery_mode(2)
                .with_expiration("60".into()),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack());

    let back = Arc::new(Mutex::new(None));
    wait_until(WAIT, || async {
        let got = amqp
            .channel
            .basic_get(
                amqp.topology.sender_queue.as_str().into(),
                BasicGetOptions { no_ack: true },
            )
            .await
            .unwrap();
        let found = got.is_some();
        if let Some(m) = got {
            *back.lock().unwrap() = Some(m.delivery);
        }
        found
    })
    .await;
    let back = back.lock().unwrap().take().unwrap();
    assert_eq!(back.data, b"parked");
    let x_death = back
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-death").cloned())
        .expect("x-death header");
    let AMQPValue::FieldArray(deaths) = x_death else {
        panic!("x-death is an array")
    };
    let AMQPValue::FieldTable(first) = &deaths.as_slice()[0] else {
        panic!("x-death holds tables")
    };
    let text = |k: &str| match first.inner().get(k) {
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        other => panic!("{k}: {other:?}"),
    };
    assert_eq!(text("reason"), "expired");
    assert_eq!(text("queue"), retry_queue);
}

#[tokio::test]
async fn a_reminder_the_database_keeps_refusing_ends_in_the_dead_queue_after_the_delivery_limit() {
    let mock = MockServer::start().await;
    mock_cloud_api_ok(&mock).await;
    let mut env = cloud_api_env(&mock);
    env.settings.amqp.delivery_limit = 3;
    let app = env.spawn(&[Role::Sender]).await;
    let amqp = env.amqp().await;

    // A valid event PostgreSQL cannot store (text may not hold a NUL byte): every delivery
    // fails the same way and is requeued, until the queue's delivery limit dead-letters it.
    let poison_id = new_id();
    let mut poison = maintenance_due(&poison_id, Uuid::new_v4(), Uuid::new_v4());
    poison["data"]["customer_name"] = json!("Budi\u{0}Santoso");
    amqp.publish_event(&poison).await;
    let good_id = new_id();
    amqp.publish_event(&maintenance_due(&good_id, Uuid::new_v4(), Uuid::new_v4()))
        .await;

    let dead_queue = env.topology().dead_queue;
    wait_until(WAIT, || async { amqp.depth(&dead_queue).await == 1 }).await;
    let dead = amqp.drain_dead().await;
    assert_eq!(
        header_text(&dead[0], "x-first-death-reason").as_deref(),
        Some("delivery_limit")
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&dead[0].data).unwrap()["id"],
        poison_id
    );
    assert!(consumed(&app, "error") >= 3, "each delivery was tried");
    wait_until(WAIT, || async {
        dispatch::get(app.pool(), &good_id)
            .await
            .unwrap()
            .is_some_and(|r| r.status == DispatchStatus::Sent)
    })
    .await;
    assert_eq!(amqp.depth(&env.topology().sender_queue).await, 0);
    app.stop().await;
}
