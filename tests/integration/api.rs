//! The read-only HTTP API against the real PostgreSQL and RabbitMQ: every route
//! and field, pagination, period statistics (also after `reset-frequency` and `delete`), the
//! detail view's fallback, daily counts in the workshop's time zone, the alert list, strict
//! input with JSON errors, auth, health, metrics, the OpenAPI document, and that it writes
//! nothing. Data comes in through the real tracker: `message.sent`/`message.failed` events
//! published to RabbitMQ.

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

#[tokio::test]
async fn the_report_list_pages_with_limit_offset_and_x_total_count() {
    let s = scenario().await;
    let (headers, all) = json_with(&s.app, "/whatsapp-report/", StatusCode::OK).await;
    assert_eq!(total_count(&headers), 3);
    let all = all.as_array().unwrap().clone();
    assert_eq!(all.len(), 3);
    // Latest message first: A1 (19:00), A2 (16:59:59), B1 (11-10).
    let order: Vec<&str> = all
        .iter()
        .map(|r| r["id_vehicle"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        [s.a1.to_string(), s.a2.to_string(), s.b1.to_string()]
    );
    let a1 = &all[0];
    let mut keys: Vec<&str> = a1.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "created_at",
            "frequency",
            "id",
            "id_customer",
            "id_vehicle",
            "last_message_date",
            "updated_at"
        ]
    );
    assert_eq!(a1["id_customer"], s.a.to_string());
    assert_eq!(a1["frequency"], 3);
    assert_eq!(
        at(a1["last_message_date"].as_str().unwrap()),
        at("2026-11-24T19:00:00Z")
    );

    let (headers, page) =
        json_with(&s.app, "/whatsapp-report/?limit=1&offset=1", StatusCode::OK).await;
    assert_eq!(total_count(&headers), 3);
    assert_eq!(page, json!([all[1]]));
    let (headers, page) = json_with(&s.app, "/whatsapp-report?limit=2", StatusCode::OK).await;
    assert_eq!(
        total_count(&headers),
        3,
        "the path without the slash is the same list"
    );
    assert_eq!(page, json!(all[..2]));
    let (headers, page) = json_with(
        &s.app,
        "/whatsapp-report/?offset=9223372036854775807",
        StatusCode::OK,
    )
    .await;
    assert_eq!(total_count(&headers), 3);
    assert_eq!(page, json!([]));

    let (headers, page) = json_with(
        &s.app,
        &format!("/whatsapp-report/?customer={}&sort=frequency", s.a),
        StatusCode::OK,
    )
    .await;
    assert_eq!(total_count(&headers), 2);
    assert_eq!(page[0]["id_vehicle"], s.a1.to_string());
    assert_eq!(page[1]["frequency"], 1);
    let (headers, _) = json_with(
        &s.app,
        &format!("/whatsapp-report/?vehicle={}", s.b1),
        StatusCode::OK,
    )
    .await;
    assert_eq!(total_count(&headers), 1);
}

#[tokio::test]
async fn single_reports_are_found_by_id_by_customer_and_by_pair_or_are_a_404() {
    let s = scenario().await;
    let (_, all) = json_with(&s.app, "/whatsapp-report/", StatusCode::OK).await;
    let b1 = all[2].clone();
    let id = b1["id"].as_str().unwrap();

    let (_, by_id) = json_with(&s.app, &format!("/whatsapp-report/{id}"), StatusCode::OK).await;
    assert_eq!(by_id, b1);
    let (_, pair) = json_with(
        &s.app,
        &format!("/whatsapp-report/customer/{}/vehicle/{}", s.b, s.b1),
        StatusCode::OK,
    )
    .await;
    assert_eq!(pair, b1);
    let (headers, customer) = json_with(
        &s.app,
        &format!("/whatsapp-report/customer/{}", s.a),
        StatusCode::OK,
    )
    .await;
    assert_eq!(total_count(&headers), 2);
    assert_eq!(customer, json!(all.as_array().unwrap()[..2]));
    let (headers, none) = json_with(
        &s.app,
        &format!("/whatsapp-report/customer/{}", Uuid::new_v4()),
        StatusCode::OK,
    )
    .await;
    assert_eq!((total_count(&headers), none), (0, json!([])));

    assert_error(
        s.app
            .get(&format!("/whatsapp-report/{}", Uuid::new_v4()))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
        "unknown report id",
    )
    .await;
    assert_error(
        s.app
            .get(&format!(
                "/whatsapp-report/customer/{}/vehicle/{}",
                s.a, s.b1
            ))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
        "a customer and a vehicle that were never paired",
    )
    .await;
}

#[tokio::test]
async fn statistics_count_totals_and_a_period_from_the_message_history_even_after_a_reset() {
    let s = scenario().await;
    let stats = s.app.get_json("/whatsapp-report/statistics").await;
    assert_eq!(
        stats,
        json!({
            "total_reports": 3,
            "total_messages": 5,
            "unique_customers": 2,
            "unique_vehicles": 3,
            "average_frequency": 1.67,
            "max_frequency": 3,
            "last_message_date": "2026-11-24T19:00:00Z",
            "total_failed": 2,
            "from": null,
            "to": null
        })
    );

    // Calendar days in Asia/Jakarta: 2026-11-24 starts at 2026-11-23T17:00Z, so the message at
    // 16:59:59Z on the 24th is the 24th's and the one at 17:30Z is the 25th's.
    let period = |from: &str, to: &str| {
        let path = format!("/whatsapp-report/statistics?from={from}&to={to}");
        let app = &s.app;
        async move { app.get_json(&path).await }
    };
    let both = period("2026-11-24", "2026-11-25").await;
    assert_eq!(both["total_messages"], 3);
    assert_eq!(both["total_failed"], 1);
    assert_eq!(both["last_message_date"], "2026-11-24T19:00:00Z");
    assert_eq!(
        (both["from"].clone(), both["to"].clone()),
        (json!("2026-11-24"), json!("2026-11-25"))
    );
    assert_eq!(both["total_reports"], 3, "not restricted by the period");
    let one = period("2026-11-25", "2026-11-25").await;
    assert_eq!(
        (one["total_messages"].clone(), one["total_failed"].clone()),
        (json!(2), json!(1))
    );
    let early = s
        .app
        .get_json("/whatsapp-report/statistics?to=2026-11-20")
        .await;
    assert_eq!(early["total_messages"], 2);
    assert_eq!(early["total_failed"], 0);
    assert_eq!(early["last_message_date"], "2026-11-20T03:00:00Z");
    let quiet = period("2026-11-11", "2026-11-19").await;
    assert_eq!(quiet["total_messages"], 0);
    assert_eq!(quiet["last_message_date"], Value::Null);
    assert_eq!(quiet["average_frequency"], 0.0);

    // `reminder report reset-frequency --customer A` and `reminder report delete <B1>`, as
    // the CLI does them.
    let (rows, cleared) = reports::reset_frequency(s.app.pool(), Some(s.a), None)
        .await
        .unwrap();
    assert_eq!((rows, cleared), (2, 4));
    let stats = s.app.get_json("/whatsapp-report/statistics").await;
    assert_eq!(stats["total_reports"], 3);
    assert_eq!(stats["total_messages"], 1);
    assert_eq!(stats["max_frequency"], 1);
    assert_eq!(stats["average_frequency"], 0.33);
    assert_eq!(
        period("2026-11-24", "2026-11-25").await["total_messages"],
        3,
        "a reset keeps the history, so the period still counts its messages"
    );
    let b1_id = s
        .app
        .get_json(&format!("/whatsapp-report/customer/{}", s.b))
        .await[0]["id"]
        .as_str()
        .unwrap()
        .parse::<Uuid>()
        .unwrap();
    reports::delete(s.app.pool(), b1_id)
        .await
        .unwrap()
        .expect("deleted");
    let stats = s.app.get_json("/whatsapp-report/statistics").await;
    assert_eq!(stats["total_reports"], 2);
    assert_eq!(stats["total_messages"], 0);
    assert_eq!(stats["unique_customers"], 1);
    assert_eq!(stats["unique_vehicles"], 2);
    assert_eq!(stats["max_frequency"], 0);
    assert_eq!(stats["total_failed"], 2);
    assert_eq!(
        period("2026-11-01", "2026-11-30").await["total_messages"],
        5
    );
    assert_eq!(
        aggregate_drift(s.app.pool()).await.unwrap(),
        vec![],
        "the trigger-maintained aggregates match a recount"
    );
}

#[tokio::test]
async fn the_detail_view_prefers_master_data_and_falls_back_to_what_the_events_said() {
    let s = scenario().await;
    let (headers, detail) = json_with(&s.app, "/whatsapp-report/detail", StatusCode::OK).await;
    assert_eq!(total_count(&headers), 3);
    let by_vehicle = |v: Uuid| {
        detail
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id_vehicle"] == v.to_string())
            .unwrap()
            .clone()
    };
    let a1 = by_vehicle(s.a1);
    assert_eq!(a1["customer_name"], "Budi Santoso");
    assert_eq!(a1["customer_phone"], "6281111111111");
    assert_eq!(a1["plate_number"], "B 1111 AAA");
    assert_eq!(a1["brand"], "Honda");
    assert_eq!(a1["model"], "Vario 125");
    assert_eq!(a1["next_maintenance_date"], "2026-12-01");
    assert_eq!(a1["frequency"], 3);
    for key in [
        "id",
        "id_customer",
        "last_message_date",
        "created_at",
        "updated_at",
    ] {
        assert!(a1.get(key).is_some(), "{key}");
    }
    // The customer is known, the vehicle is not: its plate is what the latest event said.
    let a2 = by_vehicle(s.a2);
    assert_eq!(a2["customer_name"], "Budi Santoso");
    assert_eq!(a2["plate_number"], "B 2222 BBB");
    assert_eq!(a2["brand"], Value::Null);
    assert_eq!(a2["model"], Value::Null);
    assert_eq!(a2["next_maintenance_date"], Value::Null);
    assert_eq!(a2["failed_count"], 1);
    // Neither is known.
    let b1 = by_vehicle(s.b1);
    assert_eq!(b1["customer_name"], "Siti Rahma");
    assert_eq!(b1["customer_phone"], "6281234567890");
    assert_eq!(b1["plate_number"], "D 4321 ABC");
    assert_eq!(b1["brand"], Value::Null);

    let (headers, page) = json_with(
        &s.app,
        &format!("/whatsapp-report/detail?customer={}&limit=1&offset=1", s.a),
        StatusCode::OK,
    )
    .await;
    assert_eq!(total_count(&headers), 2);
    assert_eq!(page, json!([a2]));

    // The same view as CSV: header row first, one line per report, no page limit.
    let r = s
        .app
        .get("/whatsapp-report/export.csv?sort=frequency")
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()[reqwest::header::CONTENT_TYPE],
        "text/csv; charset=utf-8"
    );
    let csv = r.text().await.unwrap();
    let lines: Vec<&str> = csv.split_terminator("\r\n").collect();
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(lines[0].starts_with("id,id_customer,id_vehicle,customer_name,customer_phone,plate_number,brand,model,next_maintenance_date,frequency"));
    assert!(
        lines[1].contains(&s.a1.to_string()) && lines[1].contains(",Honda,Vario 125,2026-12-01,3,"),
        "{}",
        lines[1]
    );
    assert!(
        lines.iter().any(|l| l.contains(&s.b1.to_string())
            && l.contains(",Siti Rahma,6281234567890,D 4321 ABC,,,,1,")),
        "{csv}"
    );
    let filtered = s
        .app
        .get(&format!("/whatsapp-report/export.csv?customer={}", s.b))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(filtered.split_terminator("\r\n").count(), 2);
}

/// One page of `/whatsapp-report/messages?{query}`: `X-Total-Count` and the rows.
async fn history(app: &TestApp, query: &str) -> (i64, Vec<Value>) {
    let (headers, rows) = json_with(
        app,
        &format!("/whatsapp-report/messages?{query}"),
        StatusCode::OK,
    )
    .await;
    (total_count(&headers), rows.as_array().unwrap().clone())
}

#[tokio::test]
async fn the_message_history_is_newest_first_and_filters_by_status_customer_vehicle_and_period() {
    let s = scenario().await;
    let (headers, all) = json_with(&s.app, "/whatsapp-report/messages", StatusCode::OK).await;
    assert_eq!(total_count(&headers), 7);
    let times: Vec<DateTime<Utc>> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|m| at(m["at"].as_str().unwrap()))
        .collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted, "newest first");
    let newest = &all[0];
    assert_eq!(newest["status"], "failed");
    assert_eq!(newest["id_customer"], s.b.to_string());
    assert_eq!(newest["id_vehicle"], s.b1.to_string());
    assert_eq!(newest["provider"], "cloud_api");
    assert_eq!(newest["provider_message_id"], Value::Null);
    assert_eq!(newest["error_code"], "131026");
    assert_eq!(newest["error"], "Message undeliverable");
    assert_eq!(newest["attempts"], 1);
    assert!(
        newest["reminder_id"]
            .as_str()
            .is_some_and(|r| !r.is_empty())
    );
    let sent = &all[1];
    assert_eq!(sent["status"], "sent");
    assert!(
        sent["provider_message_id"]
            .as_str()
            .unwrap()
            .starts_with("wamid.")
    );
    assert_eq!(
        (sent["error_code"].clone(), sent["error"].clone()),
        (Value::Null, Value::Null)
    );
    assert_eq!(at(sent["at"].as_str().unwrap()), at("2026-11-24T19:00:00Z"));

    let count = |query: String| {
        let app = &s.app;
        async move {
            let (total, rows) = history(app, &query).await;
            (total, rows.len() as i64)
        }
    };
    assert_eq!(count("status=failed".into()).await, (2, 2));
    assert_eq!(count("status=sent".into()).await, (5, 5));
    assert_eq!(count(format!("customer={}", s.a)).await, (5, 5));
    assert_eq!(count(format!("vehicle={}", s.a2)).await, (2, 2));
    assert_eq!(count(format!("customer={}&status=sent", s.b)).await, (1, 1));
    assert_eq!(count("from=2026-11-25&to=2026-11-25".into()).await, (3, 3));
    assert_eq!(
        count("from=2026-11-24&to=2026-11-24&status=sent".into()).await,
        (1, 1)
    );
    assert_eq!(
        count(format!("from=2026-11-21&customer={}", s.a)).await,
        (4, 4)
    );
    assert_eq!(count("to=2026-11-19".into()).await, (1, 1));
    assert_eq!(count("limit=2&offset=5".into()).await, (7, 2));
    assert_eq!(count("offset=7".into()).await, (7, 0));

    let (_, page) = json_with(
        &s.app,
        "/whatsapp-report/messages?limit=2&offset=1",
        StatusCode::OK,
    )
    .await;
    assert_eq!(page, json!(all.as_array().unwrap()[1..3]));
}

/// The history's customer and vehicle filters go through one index keyed by both ids of a row
/// (migration `20261130000002_history_recipient_index.sql`); an id used for a customer and for
/// some other pair's vehicle must still select only what the filter names.
#[tokio::test]
async fn the_history_filters_tell_a_customer_from_a_vehicle_with_the_same_id() {
    let env = TestEnv::new();
    let app = env.spawn(&[Role::Api]).await;
    let (x, v1, v2, c2) = (
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    let outcome = |n: i64, customer: Uuid, vehicle: Uuid| {
        let reminder_id = Uuid::new_v4().to_string();
        reminder::domain::MessageOutcome {
            event_id: reminder::domain::events::outcome_id("message.sent", &reminder_id),
            reminder_id,
            customer_id: customer,
            vehicle_id: vehicle,
            status: reminder::domain::OutcomeStatus::Sent,
            provider: "cloud_api".into(),
            provider_message_id: Some(format!("wamid.{n}")),
            error_code: None,
            error: None,
            attempts: 1,
            at: Utc::now() - chrono::Duration::minutes(n),
            phone: None,
            customer_name: None,
            plate_number: None,
        }
    };
    // Customer x with vehicles v1 (twice) and v2; customer c2 with a vehicle whose id is x.
    let batch = [
        outcome(1, x, v1),
        outcome(2, x, v1),
        outcome(3, x, v2),
        outcome(4, c2, x),
    ];
    reminder::db::tracking::apply_batch(app.pool(), &batch)
        .await
        .unwrap();
    let select = |query: String| {
        let app = &app;
        async move {
            let (total, rows) = history(app, &query).await;
            let pairs: Vec<(String, String)> = rows
                .iter()
                .map(|m| {
                    (
                        m["id_customer"].as_str().unwrap().to_string(),
                        m["id_vehicle"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            (total, pairs)
        }
    };
    let pair = |c: Uuid, v: Uuid| (c.to_string(), v.to_string());
    assert_eq!(
        select(format!("customer={x}")).await,
        (3, vec![pair(x, v1), pair(x, v1), pair(x, v2)])
    );
    assert_eq!(select(format!("vehicle={x}")).await, (1, vec![pair(c2, x)]));
    assert_eq!(
        select(format!("customer={x}&vehicle={v2}")).await,
        (1, vec![pair(x, v2)])
    );
    assert_eq!(
        select(format!("customer={x}&vehicle={x}")).await,
        (0, vec![])
    );
    assert_eq!(
        select(format!("customer={c2}&status=sent&limit=1")).await,
        (1, vec![pair(c2, x)])
    );
}

#[tokio::test]
async fn daily_counts_include_zero_days_and_use_the_workshop_time_zone() {
    let s = scenario().await;
    let (_, days) = json_with(
        &s.app,
        "/whatsapp-report/daily?from=2026-11-23&to=2026-11-26",
        StatusCode::OK,
    )
    .await;
    // 2026-11-24T17:30Z is already the 25th in Asia/Jakarta (UTC+7); 16:59:59Z is still the 24th.
    assert_eq!(
        days,
        json!([
            {"date": "2026-11-23", "sent": 0, "failed": 0},
            {"date": "2026-11-24", "sent": 1, "failed": 0},
            {"date": "2026-11-25", "sent": 2, "failed": 1},
            {"date": "2026-11-26", "sent": 0, "failed": 0}
        ])
    );
    let (_, one) = json_with(
        &s.app,
        "/whatsapp-report/daily?from=2026-11-10&to=2026-11-10",
        StatusCode::OK,
    )
    .await;
    assert_eq!(one, json!([{"date": "2026-11-10", "sent": 1, "failed": 0}]));

    // By default the last 30 days, ending today in the workshop's zone.
    let (_, default) = json_with(&s.app, "/whatsapp-report/daily", StatusCode::OK).await;
    let default = default.as_array().unwrap();
    assert_eq!(default.len(), 30);
    let today = Utc::now()
        .with_timezone(&chrono_tz::Asia::Jakarta)
        .date_naive()
        .to_string();
    let last = default.last().unwrap()["date"]
        .as_str()
        .unwrap()
        .to_string();
    // The day may turn between the two readings of the clock.
    assert!(last <= today, "{last} vs {today}");
}

#[tokio::test]
async fn daily_counts_follow_the_configured_time_zone() {
    let s = scenario_with(|settings| settings.producer.timezone = "UTC".into()).await;
    let (_, days) = json_with(
        &s.app,
        "/whatsapp-report/daily?from=2026-11-24&to=2026-11-25",
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        days,
        json!([
            {"date": "2026-11-24", "sent": 3, "failed": 1},
            {"date": "2026-11-25", "sent": 0, "failed": 0}
        ])
    );
}

#[tokio::test]
async fn over_reminded_lists_pairs_sent_more_than_the_threshold_in_the_window_most_first() {
    let env = TestEnv::new();
    let app = env.spawn(&[Role::Tracker, Role::Api]).await;
    let amqp = env.amqp().await;
    let (c, x, y, z) = (
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    let now = Utc::now();
    let ago = |hours: i64| (now - chrono::Duration::hours(hours)).to_rfc3339();
    let mut published = 0;
    for (vehicle, count) in [(x, 6), (y, 5), (z, 4)] {
        for i in 0..count {
            amqp.publish_event(&sent(c, vehicle, &ago(24 * i + 1), "Budi", "B 1 X"))
                .await;
            published += 1;
        }
    }
    // Outside the default 30-day window, and a failure: neither counts.
    amqp.publish_event(&sent(c, x, &ago(24 * 40), "Budi", "B 1 X"))
        .await;
    amqp.publish_event(&failed(c, z, &ago(2))).await;
    wait_for_messages(app.pool(), published + 2).await;

    let (headers, pairs) = json_with(&app, "/whatsapp-report/over-reminded", StatusCode::OK).await;
    assert_eq!(total_count(&headers), 2);
    let pairs = pairs.as_array().unwrap();
    assert_eq!(pairs.len(), 2);
    assert_eq!(pairs[0]["id_vehicle"], x.to_string());
    assert_eq!(pairs[0]["messages_in_window"], 6);
    assert_eq!(pairs[0]["frequency"], 7);
    assert_eq!(pairs[0]["customer_name"], "Budi");
    assert!(pairs[0]["id"].as_str().is_some());
    assert_eq!(pairs[1]["id_vehicle"], y.to_string());
    assert_eq!(pairs[1]["messages_in_window"], 5);

    // Over 60 days x has 7; y's 5 do not exceed a threshold of 5.
    let (headers, wider) = json_with(
        &app,
        "/whatsapp-report/over-reminded?days=60&max=5",
        StatusCode::OK,
    )
    .await;
    assert_eq!(total_count(&headers), 1);
    assert_eq!(wider[0]["id_vehicle"], x.to_string());
    assert_eq!(wider[0]["messages_in_window"], 7);
    let (headers, second) = json_with(
        &app,
        "/whatsapp-report/over-reminded?limit=1&offset=1",
        StatusCode::OK,
    )
    .await;
    assert_eq!(total_count(&headers), 2);
    assert_eq!(second[0]["id_vehicle"], y.to_string());
    let (headers, past_the_end) = json_with(
        &app,
        "/whatsapp-report/over-reminded?offset=5",
        StatusCode::OK,
    )
    .await;
    assert_eq!((total_count(&headers), past_the_end), (2, json!([])));
}

#[tokio::test]
async fn malformed_input_is_a_400_with_the_documented_error_body() {
    let env = TestEnv::new();
    let app = env.spawn(&[Role::Api]).await;
    let id = Uuid::new_v4();
    let long_id = "a".repeat(5000);
    let cases: Vec<(String, &str)> = vec![
        ("/whatsapp-report/not-a-uuid".into(), "invalid_id"),
        (format!("/whatsapp-report/{id}x"), "invalid_id"),
        (format!("/whatsapp-report/{long_id}"), "invalid_id"),
        ("/whatsapp-report/%FF%FE%00".into(), "invalid_id"),
        ("/whatsapp-report/%F0%9F%9A%97".into(), "invalid_id"),
        ("/whatsapp-report/customer/12345".into(), "invalid_id"),
        (
            format!("/whatsapp-report/customer/{id}/vehicle/nope"),
            "invalid_id",
        ),
        (
            format!("/whatsapp-report/customer/nope/vehicle/{id}"),
            "invalid_id",
        ),
        ("/whatsapp-report/?customer=nope".into(), "invalid_id"),
        (
            "/whatsapp-report/detail?vehicle=%27%20OR%201%3D1".into(),
            "invalid_id",
        ),
        (
            "/whatsapp-report/messages?customer=123".into(),
            "invalid_id",
        ),
        ("/whatsapp-report/export.csv?vehicle=x".into(), "invalid_id"),
        ("/whatsapp-report/?limit=abc".into(), "invalid_limit"),
        ("/whatsapp-report/?limit=-1".into(), "invalid_limit"),
        ("/whatsapp-report/?limit=0".into(), "invalid_limit"),
        ("/whatsapp-report/?limit=1001".into(), "invalid_limit"),
        ("/whatsapp-report/?limit=1e3".into(), "invalid_limit"),
        ("/whatsapp-report/?limit=10.5".into(), "invalid_limit"),
        ("/whatsapp-report/?limit=".into(), "invalid_limit"),
        (
            "/whatsapp-report/detail?limit=99999999999999999999999".into(),
            "invalid_limit",
        ),
        ("/whatsapp-report/?offset=-1".into(), "invalid_offset"),
        (
            "/whatsapp-report/messages?offset=ten".into(),
            "invalid_offset",
        ),
        (
            "/whatsapp-report/?offset=9223372036854775808".into(),
            "invalid_offset",
        ),
        (
            format!("/whatsapp-report/customer/{id}?limit=5000"),
            "invalid_limit",
        ),
        (
            "/whatsapp-report/statistics?from=2026-13-01".into(),
            "invalid_date",
        ),
        (
            "/whatsapp-report/statistics?from=2026-02-30".into(),
            "invalid_date",
        ),
        (
            "/whatsapp-report/statistics?to=yesterday".into(),
            "invalid_date",
        ),
        (
            "/whatsapp-report/statistics?from=2026-1-5".into(),
            "invalid_date",
        ),
        (
            "/whatsapp-report/statistics?from=-200000-01-01".into(),
            "invalid_date",
        ),
        (
            "/whatsapp-report/statistics?to=%2B99999-01-01".into(),
            "invalid_date",
        ),
        (
            "/whatsapp-report/messages?from=0000-01-01".into(),
            "invalid_date",
        ),
        (
            "/whatsapp-report/daily?to=2026-11-25T00:00:00Z".into(),
            "invalid_date",
        ),
        (
            "/whatsapp-report/statistics?from=2026-11-26&to=2026-11-25".into(),
            "invalid_period",
        ),
        (
            "/whatsapp-report/messages?from=2026-11-26&to=2026-11-25".into(),
            "invalid_period",
        ),
        (
            "/whatsapp-report/daily?from=2026-11-26&to=2026-11-25".into(),
            "invalid_period",
        ),
        (
            "/whatsapp-report/daily?from=2000-01-01&to=2026-01-01".into(),
            "invalid_period",
        ),
        (
            "/whatsapp-report/messages?status=pending".into(),
            "invalid_status",
        ),
        ("/whatsapp-report/?sort=random".into(), "invalid_sort"),
        ("/whatsapp-report/?limit=1&limit=2".into(), "invalid_query"),
        (
            "/whatsapp-report/statistics?from=2026-11-01&from=2026-11-02".into(),
            "invalid_query",
        ),
        (
            "/whatsapp-report/over-reminded?days=0".into(),
            "invalid_days",
        ),
        (
            "/whatsapp-report/over-reminded?days=x".into(),
            "invalid_days",
        ),
        (
            "/whatsapp-report/over-reminded?max=-4".into(),
            "invalid_parameter",
        ),
    ];
    for (path, code) in cases {
        assert_error(app.get(&path).await, StatusCode::BAD_REQUEST, code, &path).await;
    }
}

#[tokio::test]
async fn nothing_a_client_sends_is_a_server_error() {
    let env = TestEnv::new();
    let app = env.spawn(&[Role::Api]).await;
    let id = Uuid::new_v4();
    let long = "9".repeat(3000);
    let routes = [
        "/whatsapp-report/".to_string(),
        "/whatsapp-report".into(),
        "/whatsapp-report/detail".into(),
        "/whatsapp-report/statistics".into(),
        "/whatsapp-report/messages".into(),
        "/whatsapp-report/daily".into(),
        "/whatsapp-report/over-reminded".into(),
        "/whatsapp-report/export.csv".into(),
        format!("/whatsapp-report/customer/{id}"),
        format!("/whatsapp-report/customer/{id}/vehicle/{id}"),
        format!("/whatsapp-report/{id}"),
        "/healthz".into(),
        "/metrics".into(),
        "/openapi.json".into(),
        "/".into(),
    ];
    let queries = [
        String::new(),
        "?".into(),
        "?&&&=&=".into(),
        "?%ZZ=%ZZ&%=%".into(),
        "?limit=%FF&offset=%00".into(),
        "?from=%E2%80%AE2026-11-01".into(),
        "?from=9999-12-31".into(),
        "?from=1900-01-01".into(),
        "?to=1900-01-01".into(),
        "?from=9999-12-31&to=9999-12-31".into(),
        "?limit=1000&offset=9223372036854775807".into(),
        format!("?offset={long}"),
        format!("?customer={long}&vehicle={long}"),
        "?customer=%7B00000000-0000-0000-0000-000000000000%7D".into(),
        "?status=sent&status=failed".into(),
        "?days=3660&max=9223372036854775807".into(),
        "?max=2147483648".into(),
        "?sort=frequency&limit=1000".into(),
        "?%F0%9F%98%80=%F0%9F%98%80".into(),
        "?from=2026-11-25&to=".into(),
    ];
    for route in &routes {
        for query in &queries {
            let path = format!("{route}{query}");
            let r = app.get(&path).await;
            let status = r.status();
            assert!(
                status.is_success() || status.is_client_error(),
                "GET {path}: {status}"
            );
            if status.is_client_error() {
                let code = error_code(r, &path).await;
                match status {
                    StatusCode::BAD_REQUEST => {
                        assert!(code.starts_with("invalid_"), "GET {path}: {code}")
                    }
                    // The random ids have no report.
                    StatusCode::NOT_FOUND => assert_eq!(code, "not_found", "GET {path}"),
                    other => panic!("GET {path}: {other}"),
                }
            }
        }
    }
}

#[tokio::test]
async fn other_methods_are_a_405_with_a_json_body() {
    let env = TestEnv::new();
    let app = env.spawn(&[Role::Api]).await;
    let id = Uuid::new_v4();
    let cases = [
        (Method::POST, "/whatsapp-report/".to_string()),
        (Method::POST, "/whatsapp-report".into()),
        (Method::PUT, "/whatsapp-report/statistics".into()),
        (Method::DELETE, format!("/whatsapp-report/{id}")),
        (Method::PATCH, format!("/whatsapp-report/customer/{id}")),
        (
            Method::DELETE,
            format!("/whatsapp-report/customer/{id}/vehicle/{id}"),
        ),
        (Method::POST, "/whatsapp-report/export.csv".into()),
        (Method::OPTIONS, "/whatsapp-report/messages".into()),
        (Method::POST, "/healthz".into()),
        (Method::DELETE, "/metrics".into()),
        (Method::PUT, "/openapi.json".into()),
        (Method::POST, "/".into()),
    ];
    for (method, path) in cases {
        let r = app
            .http
            .request(method.clone(), app.url(&path))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.headers()[reqwest::header::ALLOW],
            "GET, HEAD",
            "{method} {path}"
        );
        assert_error(
            r,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            &format!("{method} {path}"),
        )
        .await;
    }
    // HEAD is GET without the body.
    let r = app
        .http
        .head(app.url("/whatsapp-report/statistics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()[reqwest::header::CONTENT_TYPE],
        "application/json"
    );
    assert!(r.bytes().await.unwrap().is_empty());
    // Unknown paths are a JSON 404.
    for path in [
        "/nope",
        "/whatsapp-report/statistics/extra",
        "/docs",
        "/whatsapp-report/customer/x/y",
    ] {
        assert_error(
            app.get(path).await,
            StatusCode::NOT_FOUND,
            "not_found",
            path,
        )
        .await;
    }
}

#[tokio::test]
async fn a_configured_token_guards_every_report_route_and_nothing_else() {
    let env = TestEnv::new();
    let mut settings = env.settings.clone();
    settings.http.api_token = Secret::new("s3cret-token");
    let app = env.spawn_with(settings, &[Role::Api]).await;
    let id = Uuid::new_v4();
    for path in [
        "/whatsapp-report/".to_string(),
        "/whatsapp-report".into(),
        "/whatsapp-report/detail".into(),
        "/whatsapp-report/statistics".into(),
        "/whatsapp-report/messages".into(),
        "/whatsapp-report/daily".into(),
        "/whatsapp-report/over-reminded".into(),
        "/whatsapp-report/export.csv".into(),
        format!("/whatsapp-report/customer/{id}"),
        format!("/whatsapp-report/customer/{id}/vehicle/{id}"),
        format!("/whatsapp-report/{id}"),
    ] {
        let url = app.url(&path);
        let r = app.http.get(&url).send().await.unwrap();
        assert_eq!(r.headers()[reqwest::header::WWW_AUTHENTICATE], "Bearer");
        assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized", &path).await;
        for wrong in [
            "Bearer s3cret-toke",
            "Bearer s3cret-token2",
            "Basic czNjcmV0LXRva2Vu",
            "s3cret-token",
            "Bearer",
        ] {
            let r = app
                .http
                .get(&url)
                .header("authorization", wrong)
                .send()
                .await
                .unwrap();
            assert_error(
                r,
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                &format!("{path} with {wrong}"),
            )
            .await;
        }
        let r = app
            .http
            .get(&url)
            .bearer_auth("s3cret-token")
            .send()
            .await
            .unwrap();
        assert_ne!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert!(
            r.status() == StatusCode::OK || r.status() == StatusCode::NOT_FOUND,
            "{path}: {}",
            r.status()
        );
    }
    let r = app
        .http
        .get(app.url("/whatsapp-report/statistics"))
        .header("authorization", "bearer s3cret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "the scheme name is case-insensitive"
    );
    for open in ["/healthz", "/readyz", "/metrics", "/openapi.json", "/"] {
        assert_eq!(app.get(open).await.status(), StatusCode::OK, "{open}");
    }

    // Without a token configured, no header is needed.
    let open = env.spawn(&[Role::Api]).await;
    assert_eq!(
        open.get("/whatsapp-report/statistics").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn health_readiness_metrics_and_the_dashboard_are_served() {
    let env = TestEnv::new();
    let app = env.spawn(&[Role::Api]).await;
    let (_, health) = json_with(&app, "/healthz", StatusCode::OK).await;
    assert_eq!(health, json!({"status": "ok"}));
    let (_, ready) = json_with(&app, "/readyz", StatusCode::OK).await;
    assert_eq!(
        ready,
        json!({"status": "ready", "database": true, "broker": true})
    );

    app.get("/whatsapp-report/statistics").await;
    app.get("/whatsapp-report/nope").await;
    let r = app.get("/metrics").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = r.text().await.unwrap();
    assert!(
        text.contains(r#"http_requests_total{route="/whatsapp-report/statistics",status="200"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"http_requests_total{route="/whatsapp-report/{id}",status="400"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"http_request_duration_seconds_count{route="/whatsapp-report/statistics"} 1"#
        ),
        "{text}"
    );

    let r = app.get("/").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
}

#[tokio::test]
async fn the_database_being_down_is_a_503_and_not_ready() {
    let env = TestEnv::new();
    let mut settings = env.settings.clone();
    // Nothing listens on port 1: every connection attempt is refused.
    settings.database.url = "postgres://postgres@127.0.0.1:1/reminder_nowhere".into();
    settings.database.migrate_on_start = false;
    settings.database.acquire_timeout_ms = 300;
    let app = env.spawn_with(settings, &[Role::Api]).await;
    for path in [
        "/whatsapp-report/",
        "/whatsapp-report/detail",
        "/whatsapp-report/statistics",
        "/whatsapp-report/messages",
        "/whatsapp-report/daily",
        "/whatsapp-report/over-reminded",
        "/whatsapp-report/export.csv",
    ] {
        assert_error(
            app.get(path).await,
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            path,
        )
        .await;
    }
    let r = app.get("/readyz").await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"status": "not_ready", "database": false, "broker": true})
    );
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_broker_being_down_is_not_ready() {
    let env = TestEnv::new();
    let mut settings = env.settings.clone();
    settings.amqp.url = "amqp://guest:guest@127.0.0.1:1/%2f".into();
    let app = env.spawn_unready(settings, &[Role::Api]).await;
    let r = app.get("/readyz").await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"status": "not_ready", "database": true, "broker": false})
    );
    assert_eq!(
        app.get("/whatsapp-report/statistics").await.status(),
        StatusCode::OK,
        "reads need only the database"
    );
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_the_router_serves() {
    let env = TestEnv::new();
    let app = env.spawn(&[Role::Api]).await;
    let (_, doc) = json_with(&app, "/openapi.json", StatusCode::OK).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for route in [
        "/whatsapp-report/",
        "/whatsapp-report/detail",
        "/whatsapp-report/statistics",
        "/whatsapp-report/customer/{id_customer}",
        "/whatsapp-report/customer/{id_customer}/vehicle/{id_vehicle}",
        "/whatsapp-report/{id}",
        "/whatsapp-report/messages",
        "/whatsapp-report/daily",
        "/whatsapp-report/over-reminded",
        "/whatsapp-report/export.csv",
        "/",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
    ] {
        assert!(paths.contains_key(route), "{route} is not in the document");
    }
    // Every documented operation is a GET the router answers (never its 404 or 405 fallback),
    // and the router serves nothing else: it is built from the same registrations, and paths
    // the document lacks are 404s.
    for (path, item) in paths {
        let methods: Vec<&String> = item
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| {
                [
                    "get", "put", "post", "delete", "options", "head", "patch", "trace",
                ]
                .contains(&k.as_str())
            })
            .collect();
        assert_eq!(methods, ["get"], "{path}");
        let concrete = path
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    Uuid::new_v4().to_string()
                } else {
                    segment.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let r = app.get(&concrete).await;
        assert_ne!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "{path}");
        if r.status() == StatusCode::NOT_FOUND {
            let body: Value = r.json().await.unwrap();
            assert_ne!(
                body["message"], "no such route",
                "{path} is documented but not served"
            );
        }
    }
    for undocumented in [
        "/docs",
        "/swagger",
        "/api",
        "/whatsapp-report/statistics/today",
        "/assets/other.js",
    ] {
        assert_eq!(
            app.get(undocumented).await.status(),
            StatusCode::NOT_FOUND,
            "{undocumented}"
        );
    }
    // The document marks the report routes as guarded by the optional bearer token.
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test]
async fn the_api_writes_nothing() {
    let s = scenario().await;
    let before = snapshot(s.app.pool()).await;
    let paths = [
        "/whatsapp-report/".to_string(),
        "/whatsapp-report/detail?sort=frequency".into(),
        "/whatsapp-report/statistics".into(),
        "/whatsapp-report/statistics?from=2026-11-01&to=2026-11-30".into(),
        "/whatsapp-report/messages?status=sent".into(),
        "/whatsapp-report/daily".into(),
        "/whatsapp-report/over-reminded?days=365&max=0".into(),
        "/whatsapp-report/export.csv".into(),
        format!("/whatsapp-report/customer/{}", s.a),
        format!("/whatsapp-report/customer/{}/vehicle/{}", s.a, s.a1),
        "/readyz".into(),
        "/metrics".into(),
    ];
    for path in &paths {
        assert_eq!(s.app.get(path).await.status(), StatusCode::OK, "{path}");
    }
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
        for path in &paths {
            s.app
                .http
                .request(method.clone(), s.app.url(path))
                .body("{}")
                .send()
                .await
                .unwrap();
        }
    }
    assert_eq!(snapshot(s.app.pool()).await, before);
}

/// A digest of every table's content.
async fn snapshot(pool: &PgPool) -> Vec<(String, Option<String>)> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut out = Vec::new();
    for table in tables {
        let digest: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM \"{table}\" t"
        )))
        .fetch_one(pool)
        .await
        .unwrap();
        out.push((table, digest));
    }
    out
}

/// Deep pages of the history seek through the quarter-hour buckets; they must be exactly the
/// rows a plain `OFFSET` over the whole history returns. The data comes from the scale loader
/// (`reminder_harness::fixtures::reports`), whose aggregates must agree with a recount.
#[tokio::test]
async fn deep_pages_of_the_message_history_match_a_plain_offset_scan() {
    let env = TestEnv::new();
    let app = env.spawn(&[Role::Api]).await;
    let size = FixtureSize {
        reports: 2_000,
        messages: 24_000,
        days: 60,
        chunk: 10_000,
    };
    fixtures::load(app.pool(), &size, Utc::now()).await.unwrap();
    assert_eq!(aggregate_drift(app.pool()).await.unwrap(), vec![]);
    let stats = app.get_json("/whatsapp-report/statistics").await;
    assert_eq!(stats["total_reports"], 2_000);
    assert_eq!(
        stats["total_messages"].as_i64().unwrap() + stats["total_failed"].as_i64().unwrap(),
        24_000
    );
    let (customer, _) = fixtures::pair_ids(app.pool(), 7).await.unwrap();
    let (headers, mine) = json_with(
        &app,
        &format!("/whatsapp-report/customer/{customer}"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(total_count(&headers), 2, "pairs 6 and 7 share a customer");
    assert_eq!(mine.as_array().unwrap().len(), 2);

    let today = Utc::now()
        .with_timezone(&chrono_tz::Asia::Jakarta)
        .date_naive();
    let month_ago = today - chrono::Days::new(30);
    for (query, status, from) in [
        ("offset=15000&limit=50", None, None),
        ("offset=23990&limit=50", None, None),
        ("status=sent&offset=12345&limit=100", Some("sent"), None),
        (
            &*format!("from={month_ago}&offset=10001&limit=7"),
            None,
            Some(month_ago),
        ),
    ] {
        let (headers, page) = json_with(
            &app,
            &format!("/whatsapp-report/messages?{query}"),
            StatusCode::OK,
        )
        .await;
        let params: std::collections::HashMap<&str, &str> = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .collect();
        let (offset, limit): (i64, i64) = (
            params["offset"].parse().unwrap(),
            params["limit"].parse().unwrap(),
        );
        let start = from.map(|d| reminder::api::params::start_of_day(chrono_tz::Asia::Jakarta, d));
        let expected: Vec<String> = sqlx::query_scalar(
            "SELECT reminder_id FROM message_log
             WHERE ($1::text IS NULL OR status = $1) AND ($2::timestamptz IS NULL OR at >= $2)
             ORDER BY at DESC, event_id OFFSET $3 LIMIT $4",
        )
        .bind(status)
        .bind(start)
        .bind(offset)
        .bind(limit)
        .fetch_all(app.pool())
        .await
        .unwrap();
        let total: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM message_log
             WHERE ($1::text IS NULL OR status = $1) AND ($2::timestamptz IS NULL OR at >= $2)",
        )
        .bind(status)
        .bind(start)
        .fetch_one(app.pool())
        .await
        .unwrap();
        let got: Vec<String> = page
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["reminder_id"].as_str().unwrap().to_string())
            .collect();
        assert!(!expected.is_empty(), "{query}");
        assert_eq!(got, expected, "{query}");
        assert_eq!(total_count(&headers), total, "{query}");
    }
}
