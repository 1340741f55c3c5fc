//! What consent and the cadence do to sending: the scan skips opted-out phones and the sender
//! refuses them, the cadence's days and the skip after a reply, and the preview.

use chrono::{Days, NaiveDate, Utc};
use reminder::producer::Trigger;
use reminder::startup::Role;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use wiremock::MockServer;

use reminder_harness::prelude::*;

use super::*;

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
