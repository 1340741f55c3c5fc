//! Consent against the real services: keyword replies, upstream and Meta preference changes
//! in `at` order, error 131050, the producer skipping opted-out phones, and the sender refusing
//! an upstream reminder for one.

use std::time::Duration;

use chrono::{DateTime, Days, NaiveDate, Utc};
use lapin::options::{BasicAckOptions, BasicGetOptions};
use reminder::db::master_data::{self, NewCustomer, NewVehicle};
use reminder::producer::{Producer, Trigger};
use reminder::startup::Role;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use wiremock::MockServer;

use reminder_harness::prelude::*;

const WAIT: Duration = Duration::from_secs(30);

fn event(ty: &str, data: Value) -> Value {
    json!({
        "specversion": "1.0",
        "id": Uuid::new_v4().to_string(),
        "source": "test/upstream",
        "type": ty,
        "time": Utc::now().to_rfc3339(),
        "datacontenttype": "application/json",
        "data": data,
    })
}

/// A reply as the webhook role publishes it: the phone already in E.164 digits.
fn reply(phone: &str, text: &str, at: DateTime<Utc>) -> Value {
    event(
        "reply.received",
        json!({"phone": phone, "text": text, "at": at.to_rfc3339(), "provider": "cloud_api",
               "provider_message_id": format!("wamid.{}", Uuid::new_v4().simple()),
               "type": "text"}),
    )
}

fn consent_changed(phone: &str, opted_out: bool, source: &str, at: DateTime<Utc>) -> Value {
    event(
        "consent.changed",
        json!({"phone": phone, "opted_out": opted_out, "source": source, "at": at.to_rfc3339()}),
    )
}

/// The recorded consent of a phone (E.164 digits): opted out or not, and the source.
async fn consent_of(pool: &PgPool, phone: &str) -> Option<(bool, String)> {
    sqlx::query_as("SELECT opted_out, source FROM consent WHERE phone = $1")
        .bind(phone)
        .fetch_optional(pool)
        .await
        .unwrap()
}

async fn wait_for_consent(pool: &PgPool, phone: &str, expected: Option<(bool, &str)>) {
    let expected = expected.map(|(o, s)| (o, s.to_string()));
    wait_until(WAIT, || async { consent_of(pool, phone).await == expected }).await;
}

/// Waits until the tracker queue is empty and nothing is unacked (every event handled).
async fn wait_for_tracker(amqp: &TestAmqp) {
    wait_until(WAIT, || async {
        amqp.depth(&amqp.topology.tracker_queue).await == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn whole_text_keywords_opt_out_and_back_in_and_other_texts_change_nothing() {
    let env = TestEnv::new();
    let app = env.spawn(&[Role::Tracker]).await;
    let amqp = env.amqp().await;
    let pool = app.pool();
    let t0 = Utc::now();

    amqp.publish_event(&reply("6281211110001", "STOP", t0))
        .await;
    amqp.publish_event(&reply("6281211110002", "berhenti ", t0))
        .await;
    amqp.publish_event(&reply("6281211110003", "jangan stop dulu", t0))
        .await;
    wait_for_consent(pool, "6281211110001", Some((true, "keyword"))).await;
    wait_for_consent(pool, "6281211110002", Some((true, "keyword"))).await;
    wait_for_tracker(&amqp).await;
    assert_eq!(consent_of(pool, "6281211110003").await, None);

    amqp.publish_event(&reply(
        "6281211110001",
        "MULAI",
        t0 + chrono::Duration::seconds(5),
    ))
    .await;
    wait_for_consent(pool, "6281211110001", Some((false, "keyword"))).await;
    assert!(amqp.drain_dead().await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_late_older_change_does_not_undo_a_newer_one_and_131050_opts_out() {
    let env = TestEnv::new();
    let app = env.spawn(&[Role::Tracker]).await;
    let amqp = env.amqp().await;
    let pool = app.pool();
    let newer = Utc::now();
    let older = newer - chrono::Duration::hours(1);

    amqp.publish_event(&consent_changed("081222220001", true, "upstream", newer))
        .await;
    wait_for_consent(pool, "6281222220001", Some((true, "upstream"))).await;
    amqp.publish_event(&consent_changed(
        "081222220001",
        false,
        "user_preferences",
        older,
    ))
    .await;
    wait_for_tracker(&amqp).await;
    assert_eq!(
        consent_of(pool, "6281222220001").await,
        Some((true, "upstream".into()))
    );
    // A newer Meta preference change does apply.
    amqp.publish_event(&consent_changed(
        "081222220001",
        false,
        "user_preferences",
        newer + chrono::Duration::seconds(1),
    ))
    .await;
    wait_for_consent(pool, "6281222220001", Some((false, "user_preferences"))).await;

    let (customer, vehicle) = (Uuid::new_v4(), Uuid::new_v4());
    amqp.publish_event(&event(
        "message.failed",
        json!({"reminder_id": Uuid::new_v4().to_string(), "customer_id": customer,
               "vehicle_id": vehicle, "provider": "cloud_api", "error_code": "131050",
               "error": "the user stopped business messages", "attempts": 1,
               "failed_at": Utc::now().to_rfc3339(), "phone": "6281222220002"}),
    ))
    .await;
    wait_for_consent(pool, "6281222220002", Some((true, "provider_error"))).await;
    assert!(amqp.drain_dead().await.is_empty());
    app.stop().await;
}

async fn insert_vehicle(pool: &PgPool, phone: &str, due: NaiveDate) -> (Uuid, Uuid) {
    let (customer, vehicle) = (Uuid::new_v4(), Uuid::new_v4());
    master_data::upsert_customers(
        pool,
        &[NewCustomer {
            id: customer,
            name: "Budi".into(),
            phone: phone.into(),
        }],
    )
    .await
    .unwrap();
    master_data::upsert_vehicles(
        pool,
        &[NewVehicle {
            id: vehicle,
            id_customer: customer,
            plate_number: format!("B {} XYZ", &phone[phone.len().saturating_sub(4)..]),
            brand: None,
            model: None,
            next_maintenance_date: Some(due),
        }],
    )
    .await
    .unwrap();
    (customer, vehicle)
}

/// The vehicle ids of the reminders waiting in the sender queue (taken).
async fn take_published(amqp: &TestAmqp) -> Vec<Uuid> {
    let mut out = Vec::new();
    while let Some(m) = amqp
        .channel
        .basic_get(
            amqp.topology.sender_queue.as_str().into(),
            BasicGetOptions { no_ack: false },
        )
        .await
        .unwrap()
    {
        m.delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .unwrap();
        let e: Value = serde_json::from_slice(&m.delivery.data).unwrap();
        out.push(e["data"]["vehicle_id"].as_str().unwrap().parse().unwrap());
    }
    out.sort();
    out
}

async fn producer(env: &TestEnv) -> Producer {
    let ctx = reminder::startup::connect(
        env.settings.clone(),
        "test producer",
        CancellationToken::new(),
    )
    .await
    .unwrap();
    wait_until(WAIT, || async { ctx.broker.is_connected() }).await;
    Producer::new(ctx).unwrap()
}

#[tokio::test]
async fn an_opted_out_phone_is_skipped_by_the_scan_and_refused_by_the_sender_until_it_opts_in() {
    let mock = MockServer::start().await;
    mock_cloud_api_ok(&mock).await;
    let mut env = TestEnv::new();
    env.use_cloud_api(&mock);
    let tracker = env.spawn(&[Role::Tracker]).await;
    let amqp = env.amqp().await;
    let pool = tracker.pool().clone();
    let today = NaiveDate::from_ymd_opt(2026, 12, 5).unwrap();
    let (customer, vehicle) = insert_vehicle(&pool, "0812-3333-0001", today).await;
    let (_, other) = insert_vehicle(&pool, "0812-3333-0002", today).await;

    amqp.publish_event(&reply("6281233330001", "STOP", Utc::now()))
        .await;
    wait_for_consent(&pool, "6281233330001", Some((true, "keyword"))).await;

    let producer = producer(&env).await;
    let summary = producer
        .scan(today, Trigger::Manual, None, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(summary.skipped_opted_out, 1);
    assert_eq!(take_published(&amqp).await, vec![other]);

    // An upstream reminder for the opted-out phone: no provider call, one message.failed.
    let sender = env.spawn(&[Role::Sender]).await;
    let id = Uuid::new_v4().to_string();
    let mut due = maintenance_due(&id, customer, vehicle);
    due["data"]["phone"] = json!("+62 812 3333 0001");
    amqp.publish_event(&due).await;
    amqp.publish_event(&due).await;
    wait_until(WAIT, || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM message_log WHERE reminder_id = $1 AND status = 'failed'",
        )
        .bind(&id)
        .fetch_one(&pool)
        .await
        .unwrap()
            == 1
    })
    .await;
    let (code, attempts): (String, i32) =
        sqlx::query_as("SELECT error_code, attempts FROM message_log WHERE reminder_id = $1")
            .bind(&id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((code.as_str(), attempts), ("opted_out", 0));
    assert_eq!(mock.received_requests().await.unwrap().len(), 0);

    // Back in: the next scan reminds again.
    amqp.publish_event(&reply("6281233330001", "MULAI", Utc::now()))
        .await;
    wait_for_consent(&pool, "6281233330001", Some((false, "keyword"))).await;
    sender.stop().await;
    let summary = producer
        .scan(today, Trigger::Manual, None, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(summary.skipped_opted_out, 0);
    let mut both = vec![vehicle, other];
    both.sort();
    assert_eq!(take_published(&amqp).await, both);
    tracker.stop().await;
}

#[tokio::test]
async fn the_cadence_reminds_on_the_listed_days_and_skips_after_a_reply() {
    let mut env = TestEnv::new();
    env.settings.producer.remind_days_before = vec![3, 0];
    let pool = env.pool().await;
    let amqp = env.amqp().await;
    let today = NaiveDate::from_ymd_opt(2026, 12, 5).unwrap();
    let in_two = today + Days::new(2);
    let (_, due_in_two) = insert_vehicle(&pool, "081244440001", in_two).await;
    let (_, due_today) = insert_vehicle(&pool, "081244440002", today).await;
    let (replied_customer, replied) = insert_vehicle(&pool, "081244440003", today).await;
    // The D-3 reminder of `replied` was sent; its customer answered after it.
    let d3 = today - Days::new(3);
    let first = reminder::domain::events::maintenance_due_id(replied, today, d3);
    let sent_at = Utc::now() - chrono::Duration::days(3);
    sqlx::query(
        "INSERT INTO reminder_dispatch (reminder_id, id_customer, id_vehicle, phone, status,
             attempts, provider, provider_message_id, outcome_at)
         VALUES ($1, $2, $3, '6281244440003', 'sent', 1, 'log', 'wamid.x', $4)",
    )
    .bind(&first)
    .bind(replied_customer)
    .bind(replied)
    .bind(sent_at)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO replies (event_id, provider, provider_message_id, phone, id_customer, type, text, at)
         VALUES ('r1', 'cloud_api', 'wamid.r1', '6281244440003', $1, 'text', 'ok', $2)",
    )
    .bind(replied_customer)
    .bind(sent_at + chrono::Duration::hours(1))
    .execute(&pool)
    .await
    .unwrap();

    let producer = producer(&env).await;
    let summary = producer
        .scan(today, Trigger::Manual, None, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(take_published(&amqp).await, vec![due_today]);
    assert_eq!(summary.skipped_already_replied, 1);
    // Due in two days: reminded on its due date.
    producer
        .scan(in_two, Trigger::Manual, None, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(take_published(&amqp).await, vec![due_in_two]);
}

#[tokio::test]
async fn preview_shows_what_the_scan_then_publishes_and_changes_nothing() {
    let mut env = TestEnv::new();
    env.settings.producer.remind_days_before = vec![3, 0];
    let pool = env.pool().await;
    let amqp = env.amqp().await;
    let today = NaiveDate::from_ymd_opt(2026, 12, 5).unwrap();
    for (phone, due) in [
        ("081255550001", today),
        ("081255550002", today + Days::new(3)),
        ("081255550003", today + Days::new(2)),
        ("081255550004", today),
        ("12", today),
    ] {
        insert_vehicle(&pool, phone, due).await;
    }
    reminder::db::consent::apply(
        &pool,
        &[reminder::domain::consent::ConsentChanged {
            phone: reminder::domain::PhoneNumber::from_normalised("6281255550004").unwrap(),
            opted_out: true,
            source: reminder::domain::consent::ConsentSource::Cli,
            at: Utc::now(),
        }],
    )
    .await
    .unwrap();
    let snapshot = || async {
        let mut counts = Vec::new();
        for table in [
            "consent",
            "reminder_dispatch",
            "producer_runs",
            "message_log",
            "replies",
        ] {
            let n: i64 =
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            counts.push(n);
        }
        counts.push(i64::from(amqp.depth(&amqp.topology.sender_queue).await));
        counts
    };
    let before = snapshot().await;
    let config = std::env::temp_dir().join(format!("preview-{}.toml", env.id));
    std::fs::write(&config, "[producer]\nremind_days_before = [3, 0]\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_reminder"))
        .args(["preview", "--date", "2026-12-05", "--config"])
        .arg(&config)
        .env("REMINDER__DATABASE__URL", &env.settings.database.url)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&config);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (remind, skip) = text.split_once("it would skip:").unwrap();
    let plates = |part: &str| -> Vec<String> {
        let mut v: Vec<String> = part
            .lines()
            .filter(|l| l.starts_with("  "))
            .map(|l| l.split(" | ").nth(2).unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(plates(remind), vec!["B 0001 XYZ", "B 0002 XYZ"], "{text}");
    assert!(remind.contains("2 reminder(s)"), "{text}");
    assert!(remind.contains("*********0001"), "{text}");
    assert!(
        skip.contains("B 0004 XYZ") && skip.contains("opted out"),
        "{text}"
    );
    assert!(skip.contains("invalid phone"), "{text}");
    assert!(skip.contains("2 skipped"), "{text}");
    assert_eq!(snapshot().await, before);

    let producer = producer(&env).await;
    producer
        .scan(today, Trigger::Manual, None, &CancellationToken::new())
        .await
        .unwrap();
    let published = take_published(&amqp).await;
    let mut published_plates: Vec<String> =
        sqlx::query_scalar("SELECT plate_number FROM vehicles WHERE id = ANY($1)")
            .bind(&published)
            .fetch_all(&pool)
            .await
            .unwrap();
    published_plates.sort();
    assert_eq!(published.len(), 2);
    assert_eq!(published_plates, plates(remind));
}

/// A signed `user_preferences` change, as Meta posts it to the webhook.
fn preference(wa_id: &str, value: &str, at: i64) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "1029", "changes": [{
        "field": "user_preferences",
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": "15550001111", "phone_number_id": "1065"},
                  "contacts": [{"wa_id": wa_id, "profile": {"name": "Budi"}}],
                  "user_preferences": [{"wa_id": wa_id, "detail": "User requested to stop marketing messages",
                                        "category": "marketing_messages", "value": value,
                                        "timestamp": at}]}}]}]})
}

#[tokio::test]
async fn a_stop_and_a_resume_posted_to_the_webhook_opt_the_phone_out_and_back_in() {
    use reminder::configuration::Secret;
    use reminder::webhook::signature::sign;
    const SECRET: &str = "consent-app-secret";
    let mut env = TestEnv::new();
    env.settings.webhook.bind = "127.0.0.1:0".into();
    env.settings.whatsapp.cloud_api.app_secret = Secret::new(SECRET);
    let app = env.spawn(&[Role::Webhook, Role::Tracker]).await;
    let post = |body: Value| {
        let app = &app;
        async move {
            let bytes = serde_json::to_vec(&body).unwrap();
            let url = format!("{}/webhooks/whatsapp", app.webhook.as_deref().unwrap());
            app.http
                .post(url)
                .header("content-type", "application/json")
                .header("X-Hub-Signature-256", sign(SECRET.as_bytes(), &bytes))
                .body(bytes)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let now = Utc::now().timestamp();

    assert_eq!(
        post(preference("6281255550001", "stop", now - 60)).await,
        200
    );
    wait_for_consent(
        app.pool(),
        "6281255550001",
        Some((true, "user_preferences")),
    )
    .await;

    assert_eq!(
        post(preference("6281255550001", "resume", now - 30)).await,
        200
    );
    wait_for_consent(
        app.pool(),
        "6281255550001",
        Some((false, "user_preferences")),
    )
    .await;

    // Delivered again late, the older stop does not undo the newer resume.
    assert_eq!(
        post(preference("6281255550001", "stop", now - 60)).await,
        200
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        consent_of(app.pool(), "6281255550001").await,
        Some((false, "user_preferences".to_string()))
    );
    app.stop().await;
}
