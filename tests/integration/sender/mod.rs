//! The sender role against the real RabbitMQ and PostgreSQL, with the WhatsApp Cloud API played
//! by a local mock: retries and their back-off, permanent failures, never sending a reminder
//! twice, dead-lettering bad events, and binary-mode CloudEvents.
//!
//! Outcome events are observed on a private queue bound to `message.sent` / `message.failed`
//! on the test's exchange (exclusive, so it disappears with the connection), or through the
//! tracker and the API when the test is about what gets counted.

mod answers;
mod delivery;
mod fleet;
mod once;
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

    /// Publishes `event` upstream, then waits for `n` outcome events and returns them.
    async fn after(&self, event: &Value, n: usize) -> Vec<Value> {
        self.amqp.publish_event(event).await;
        self.take(n).await
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

/// A running sender whose provider accepts every message, with an observer of its outcomes;
/// the environment lives as long as the caller keeps it.
async fn sender_with_ok_provider() -> (MockServer, TestEnv, Outcomes, TestApp) {
    let mock = MockServer::start().await;
    mock_cloud_api_ok(&mock).await;
    let env = cloud_api_env(&mock);
    let outcomes = Outcomes::observe(&env).await;
    let app = env.spawn(&[Role::Sender]).await;
    (mock, env, outcomes, app)
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
