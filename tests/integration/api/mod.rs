//! The read-only HTTP API against the real PostgreSQL and RabbitMQ: every route
//! and field, pagination, period statistics (also after `reset-frequency` and `delete`), the
//! detail view's fallback, daily counts in the workshop's time zone, the alert list, strict
//! input with JSON errors, auth, health, metrics, the OpenAPI document, and that it writes
//! nothing. Data comes in through the real tracker: `message.sent`/`message.failed` events
//! published to RabbitMQ.

mod daily;
mod history;
mod input;
mod operations;
mod routes;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reminder::configuration::Secret;
use reminder::db::master_data::{NewCustomer, NewVehicle, upsert_customers, upsert_vehicles};
use reminder::db::reports;
use reminder::startup::Role;
use reminder_harness::fixtures::reports::{self as fixtures, FixtureSize, aggregate_drift};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use reminder_harness::prelude::*;

/// The pairs of the shared scenario: customer A (in the master data) with vehicle A1 (in the
/// master data) and A2 (not), and customer B with vehicle B1 (neither in the master data).
struct Scenario {
    // Fields drop in order: the app stops before its database is dropped.
    app: TestApp,
    _env: TestEnv,
    a: Uuid,
    a1: Uuid,
    a2: Uuid,
    b: Uuid,
    b1: Uuid,
}

/// Publishes the scenario's seven outcomes through RabbitMQ to the real tracker:
///
/// | pair  | outcome | at (UTC)             | day in Asia/Jakarta |
/// |-------|---------|----------------------|---------------------|
/// | A/A1  | sent    | 2026-11-20T03:00:00Z | 2026-11-20          |
/// | A/A1  | sent    | 2026-11-24T17:30:00Z | 2026-11-25          |
/// | A/A1  | sent    | 2026-11-24T19:00:00Z | 2026-11-25          |
/// | A/A2  | sent    | 2026-11-24T16:59:59Z | 2026-11-24          |
/// | A/A2  | failed  | 2026-11-22T05:00:00Z | 2026-11-22          |
/// | B/B1  | sent    | 2026-11-10T05:00:00Z | 2026-11-10          |
/// | B/B1  | failed  | 2026-11-24T20:00:00Z | 2026-11-25          |
async fn scenario() -> Scenario {
    scenario_with(|_| {}).await
}

async fn scenario_with(configure: impl FnOnce(&mut reminder::configuration::Settings)) -> Scenario {
    let env = TestEnv::new();
    let mut settings = env.settings.clone();
    configure(&mut settings);
    let app = env.spawn_with(settings, &[Role::Tracker, Role::Api]).await;
    let (a, a1, a2, b, b1) = (
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    upsert_customers(
        app.pool(),
        &[NewCustomer {
            id: a,
            name: "Budi Santoso".into(),
            phone: "6281111111111".into(),
        }],
    )
    .await
    .unwrap();
    upsert_vehicles(
        app.pool(),
        &[NewVehicle {
            id: a1,
            id_customer: a,
            plate_number: "B 1111 AAA".into(),
            brand: Some("Honda".into()),
            model: Some("Vario 125".into()),
            next_maintenance_date: Some("2026-12-01".parse().unwrap()),
        }],
    )
    .await
    .unwrap();
    let amqp = env.amqp().await;
    for event in [
        sent(a, a1, "2026-11-20T03:00:00Z", "Budi", "B 1111 AAA"),
        sent(a, a1, "2026-11-24T17:30:00Z", "Budi", "B 1111 AAA"),
        sent(a, a1, "2026-11-24T19:00:00Z", "Budi", "B 1111 AAA"),
        sent(a, a2, "2026-11-24T16:59:59Z", "Budi S.", "B 2222 BBB"),
        failed(a, a2, "2026-11-22T05:00:00Z"),
        sent(b, b1, "2026-11-10T05:00:00Z", "Siti Rahma", "D 4321 ABC"),
        failed(b, b1, "2026-11-24T20:00:00Z"),
    ] {
        amqp.publish_event(&event).await;
    }
    wait_for_messages(app.pool(), 7).await;
    Scenario {
        _env: env,
        app,
        a,
        a1,
        a2,
        b,
        b1,
    }
}

/// A `message.sent` as the sender publishes it, with what it knew about the recipient.
fn sent(customer: Uuid, vehicle: Uuid, at: &str, name: &str, plate: &str) -> Value {
    let mut event = message_sent(&Uuid::new_v4().to_string(), customer, vehicle, at);
    event["data"]["customer_name"] = json!(name);
    event["data"]["plate_number"] = json!(plate);
    event
}

fn failed(customer: Uuid, vehicle: Uuid, at: &str) -> Value {
    let reminder_id = Uuid::new_v4().to_string();
    json!({
        "specversion": "1.0",
        "id": reminder::domain::events::outcome_id("message.failed", &reminder_id),
        "source": "test/sender",
        "type": "message.failed",
        "time": at,
        "datacontenttype": "application/json",
        "data": {
            "reminder_id": reminder_id,
            "customer_id": customer,
            "vehicle_id": vehicle,
            "provider": "cloud_api",
            "error_code": "131026",
            "error": "Message undeliverable",
            "attempts": 1,
            "failed_at": at
        }
    })
}

async fn wait_for_messages(pool: &PgPool, n: i64) {
    wait_until(Duration::from_secs(20), || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM message_log")
            .fetch_one(pool)
            .await
            .unwrap()
            == n
    })
    .await;
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// The JSON body of a response that must have `status`, checking it is JSON.
async fn json_with(
    app: &TestApp,
    path: &str,
    status: StatusCode,
) -> (reqwest::header::HeaderMap, Value) {
    let r = app.get(path).await;
    assert_eq!(r.status(), status, "GET {path}");
    let headers = r.headers().clone();
    assert_eq!(
        headers[reqwest::header::CONTENT_TYPE],
        "application/json",
        "GET {path}"
    );
    (headers, r.json().await.expect("a JSON body"))
}

fn total_count(headers: &reqwest::header::HeaderMap) -> i64 {
    headers["x-total-count"].to_str().unwrap().parse().unwrap()
}

/// Checks the documented error body: exactly `error` (the code) and a non-empty `message`.
async fn assert_error(r: reqwest::Response, status: StatusCode, code: &str, what: &str) {
    assert_eq!(r.status(), status, "{what}");
    assert_eq!(error_code(r, what).await, code, "{what}");
}

/// The `error` code of a JSON error body, after checking its shape.
async fn error_code(r: reqwest::Response, what: &str) -> String {
    assert_eq!(
        r.headers()[reqwest::header::CONTENT_TYPE],
        "application/json",
        "{what}"
    );
    let body: Value = r.json().await.expect("a JSON error body");
    let object = body.as_object().expect("an object");
    assert_eq!(object.len(), 2, "{what}: {body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty() && m.len() < 300),
        "{what}: {body}"
    );
    body["error"].as_str().expect("a string code").to_string()
}
