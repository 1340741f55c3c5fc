//! The tracker against the real broker and database: each event counted once whatever is
//! redelivered, batches that survive a crash between commit and ack, poison events isolated,
//! and the CLI's reset and delete.

use std::process::Command;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use reminder::broker::delivery::with_raw_message;
use reminder::db::reports::{self, Page, ReportFilter};
use reminder::domain::{IncomingEvent, MessageOutcome};
use reminder::startup::Role;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use reminder_harness::prelude::*;

async fn sum_frequency(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT coalesce(sum(frequency), 0)::bigint FROM whatsapp_report")
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn logged(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM message_log")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Waits until the tracker has taken `deliveries` messages through its batches (counted,
/// duplicate or dead-lettered), read from its own batch-size histogram.
async fn processed(app: &TestApp, deliveries: u64) {
    wait_until(Duration::from_secs(20), || async {
        let metrics = app.ctx.metrics.render();
        let sum = metrics
            .lines()
            .find_map(|l| l.strip_prefix("reminder_tracker_batch_size_sum "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        sum as u64 >= deliveries
    })
    .await;
}

fn message_failed(reminder_id: &str, customer: Uuid, vehicle: Uuid, code: &str, at: &str) -> Value {
    json!({
        "specversion": "1.0",
        "id": reminder::domain::events::outcome_id("message.failed", reminder_id),
        "source": "test/sender",
        "type": "message.failed",
        "time": at,
        "data": {
            "reminder_id": reminder_id,
            "customer_id": customer,
            "vehicle_id": vehicle,
            "provider": "cloud_api",
            "error_code": code,
            "error": "Message undeliverable",
            "attempts": 1,
            "failed_at": at
        }
    })
}

#[tokio::test]
async fn the_same_message_sent_delivered_five_times_counts_once() {
    let env = TestEnv::new();
    let app = env.spawn(&[Role::Tracker]).await;
    let amqp = env.amqp().await;
    let (customer, vehicle) = (Uuid::new_v4(), Uuid::new_v4());
    let event = message_sent("r-1", customer, vehicle, "2026-11-24T01:00:00Z");

    for _ in 0..5 {
        amqp.publish_event(&event).await;
    }
    let other = message_sent("r-2", customer, vehicle, "2026-11-25T01:00:00Z");
    amqp.publish_event(&other).await;

    wait_until(Duration::from_secs(20), || async {
        logged(app.pool()).await == 2
    })
    .await;
    processed(&app, 6).await;
    assert_eq!(sum_frequency(app.pool()).await, 2);
    let report = reports::by_pair(app.pool(), customer, vehicle)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.frequency, 2);
    app.stop().await;
}

#[tokio::test]
async fn a_batch_committed_but_never_acked_counts_nothing_more_when_redelivered() {
    let env = TestEnv::new();
    let amqp = env.amqp().await;
    let pool = env.pool().await;
    let events: Vec<Value> = (0..50)
        .map(|i| {
            message_sent(
                &format!("r-{i}"),
                Uuid::new_v4(),
                Uuid::new_v4(),
                "2026-11-24T01:00:00Z",
            )
        })
        .collect();
    for e in &events {
        amqp.publish_event(e).await;
    }

    // A tracker that commits its batch and dies before acking: consume on a separate
    // connection, apply the batch through the tracker's own write path, close without acking.
    let conn = Connection::connect(AMQP_URL, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    channel
        .basic_qos(100, BasicQosOptions::default())
        .await
        .unwrap();
    let mut consumer = channel
        .basic_consume(
            amqp.topology.tracker_queue.as_str().into(),
            "doomed-tracker".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut outcomes = Vec::new();
    while outcomes.len() < events.len() {
        let delivery = consumer.next().await.unwrap().unwrap();
        let outcome = with_raw_message(&delivery, |raw| {
            MessageOutcome::from_event(&IncomingEvent::parse(raw, 65536).unwrap()).unwrap()
        });
        outcomes.push(outcome);
    }
    let applied = reminder::db::tracking::apply_batch(&pool, &outcomes)
        .await
        .unwrap();
    assert_eq!(applied.counted, 50);
    conn.close(320, "crash before ack".into()).await.unwrap();
    assert_eq!(sum_frequency(&pool).await, 50);

    // The real tracker gets the whole batch again and counts none of it.
    let app = env.spawn(&[Role::Tracker]).await;
    processed(&app, 50).await;
    assert_eq!(amqp.depth(&amqp.topology.dead_queue).await, 0);
    assert_eq!(sum_frequency(&pool).await, 50);
    assert_eq!(logged(&pool).await, 50);
    let metrics = app.ctx.metrics.render();
    assert!(
        metrics.contains(
            "reminder_events_consumed_total{role=\"tracker\",type=\"any\",outcome=\"duplicate\"} 50"
        ),
        "{metrics}"
    );
    app.stop().await;
}

/// The statement first tries a plain insert, which a repeated event id makes fail as a whole;
/// the batch is then written again skipping what was recorded. Both ways count only the new
/// events, and a failed attempt leaves nothing behind.
#[tokio::test]
async fn a_batch_repeating_recorded_events_counts_only_its_new_ones_whatever_was_expected() {
    use reminder::db::tracking::{Expect, apply_batch_expecting};
    let env = TestEnv::new();
    let pool = env.pool().await;
    let (customer, vehicle) = (Uuid::new_v4(), Uuid::new_v4());
    let outcome = |n: u32| {
        let event = message_sent(
            &format!("r-{n}"),
            customer,
            vehicle,
            &format!("2026-11-20T03:{n:02}:00Z"),
        );
        let body = serde_json::to_vec(&event).unwrap();
        let raw = reminder::domain::RawMessage {
            body: &body,
            content_type: Some("application/cloudevents+json"),
            header: &|_| None,
        };
        MessageOutcome::from_event(&IncomingEvent::parse(&raw, 65536).unwrap()).unwrap()
    };
    let apply = |events: &[u32], expect: Expect| {
        let batch: Vec<MessageOutcome> = events.iter().copied().map(outcome).collect();
        let pool = &pool;
        async move { apply_batch_expecting(pool, &batch, expect).await.unwrap() }
    };
    assert_eq!(apply(&[1, 2, 3], Expect::New).await.counted, 3);
    // 2 and 3 again, with 4 and 5 new, expected new: the plain insert fails on 2.
    let applied = apply(&[2, 3, 4, 5], Expect::New).await;
    assert_eq!((applied.counted, applied.sent), (2, 2));
    // 1, 5 again and 6 new, expected to repeat: skipped straight away.
    assert_eq!(apply(&[1, 5, 6], Expect::Duplicates).await.counted, 1);
    // Everything again, expected new: nothing more.
    assert_eq!(apply(&[1, 2, 3, 4, 5, 6], Expect::New).await.counted, 0);
    assert_eq!(sum_frequency(&pool).await, 6);
    assert_eq!(logged(&pool).await, 6);
    assert_eq!(
        reminder_harness::fixtures::reports::aggregate_drift(&pool)
            .await
            .unwrap(),
        vec![]
    );
}

#[tokio::test]
async fn batches_written_at_once_over_the_same_pairs_count_every_event_once_and_ack_them_all() {
    let mut env = TestEnv::new();
    // Small batches, four at once, all on five pairs: concurrent batches update the same
    // report rows, and duplicates of earlier events land in later batches.
    env.settings.tracker.batch_size = 25;
    env.settings.tracker.batches_in_flight = 4;
    let amqp = env.amqp().await;
    let pairs: Vec<(Uuid, Uuid)> = (0..5).map(|_| (Uuid::new_v4(), Uuid::new_v4())).collect();
    let events: Vec<Value> = (0..1000)
        .map(|i| {
            let (c, v) = pairs[i % pairs.len()];
            message_sent(&format!("r-{i}"), c, v, "2026-11-24T01:00:00Z")
        })
        .collect();
    let app = env.spawn(&[Role::Tracker]).await;
    for (i, e) in events.iter().enumerate() {
        amqp.publish_event(e).await;
        if i % 5 == 0 {
            amqp.publish_event(&events[i / 2]).await;
        }
    }

    processed(&app, 1200).await;
    app.stop().await;
    let pool = env.pool().await;
    assert_eq!(logged(&pool).await, 1000);
    assert_eq!(sum_frequency(&pool).await, 1000);
    for (c, v) in pairs {
        let report = reports::by_pair(&pool, c, v).await.unwrap().unwrap();
        assert_eq!(report.frequency, 200);
    }
    // Stopped, so anything left unacked would be back in the queue.
    assert_eq!(amqp.depth(&amqp.topology.tracker_queue).await, 0);
    assert_eq!(amqp.depth(&amqp.topology.dead_queue).await, 0);
}

#[tokio::test]
async fn a_late_event_with_an_older_time_keeps_the_latest_last_message_date() {
    let env = TestEnv::new();
    let app = env.spawn(&[Role::Tracker]).await;
    let amqp = env.amqp().await;
    let (customer, vehicle) = (Uuid::new_v4(), Uuid::new_v4());

    amqp.publish_event(&message_sent(
        "new",
        customer,
        vehicle,
        "2026-11-24T08:00:00Z",
    ))
    .await;
    wait_until(Duration::from_secs(20), || async {
        logged(app.pool()).await == 1
    })
    .await;
    let first = reports::by_pair(app.pool(), customer, vehicle)
        .await
        .unwrap()
        .unwrap();
    amqp.publish_event(&message_sent(
        "old",
        customer,
        vehicle,
        "2026-11-20T08:00:00Z",
    ))
    .await;
    wait_until(Duration::from_secs(20), || async {
        logged(app.pool()).await == 2
    })
    .await;

    let report = reports::by_pair(app.pool(), customer, vehicle)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.frequency, 2);
    assert_eq!(
        report.last_message_date,
        "2026-11-24T08:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );
    assert_eq!(report.created_at, first.created_at);
    assert!(report.updated_at > first.updated_at);
    app.stop().await;
}

#[tokio::test]
async fn a_poison_event_in_a_batch_of_100_is_dead_lettered_alone_and_the_99_others_count() {
    let env = TestEnv::new();
    let amqp = env.amqp().await;
    for i in 0..100 {
        if i == 37 {
            amqp.publish(
                "message.sent",
                b"{\"specversion\": \"1.0\", \"id\": \"poison\", \"type\": \"message.sent\", truncated",
                BasicProperties::default().with_content_type("application/cloudevents+json".into()),
            )
            .await;
        } else {
            let e = message_sent(
                &format!("r-{i}"),
                Uuid::new_v4(),
                Uuid::new_v4(),
                "2026-11-24T01:00:00Z",
            );
            amqp.publish_event(&e).await;
        }
    }

    // Started after the 100 are queued, so they arrive as one batch. The tests' 10 ms linger
    // can close a batch before all 100 are delivered when the machine is busy (seen once in
    // CI: two batches); a second is plenty for deliveries already in the queue.
    let mut settings = env.settings.clone();
    settings.tracker.batch_linger_ms = 1000;
    let app = env.spawn_with(settings, &[Role::Tracker]).await;
    wait_until(Duration::from_secs(20), || async {
        logged(app.pool()).await == 99
    })
    .await;
    processed(&app, 100).await;

    assert_eq!(sum_frequency(app.pool()).await, 99);
    let dead = amqp.drain_dead().await;
    assert_eq!(dead.len(), 1);
    let reason = header_text(&dead[0], "x-reminder-error").unwrap();
    assert!(reason.contains("not valid JSON"), "{reason}");
    assert_eq!(
        header_text(&dead[0], "x-reminder-role").as_deref(),
        Some("tracker")
    );
    let metrics = app.ctx.metrics.render();
    assert!(
        metrics.contains("reminder_tracker_batch_size_count 1"),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_event_the_database_refuses_is_isolated_and_dead_lettered_while_its_batch_counts() {
    let env = TestEnv::new();
    let amqp = env.amqp().await;
    for i in 0..20 {
        let mut e = message_sent(
            &format!("r-{i}"),
            Uuid::new_v4(),
            Uuid::new_v4(),
            "2026-11-24T01:00:00Z",
        );
        if i == 5 {
            // Valid JSON and a valid event, but PostgreSQL text cannot hold a NUL character.
            e["data"]["provider"] = json!("cloud\u{0}api");
        }
        amqp.publish_event(&e).await;
    }

    let app = env.spawn(&[Role::Tracker]).await;
    wait_until(Duration::from_secs(20), || async {
        logged(app.pool()).await == 19
    })
    .await;
    processed(&app, 20).await;

    assert_eq!(sum_frequency(app.pool()).await, 19);
    let dead = amqp.drain_dead().await;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        header_text(&dead[0], "x-reminder-error-code").as_deref(),
        Some("database_rejected")
    );
    app.stop().await;
}

#[tokio::test]
async fn failures_are_counted_per_pair_and_in_total_without_adding_to_the_frequency() {
    let env = TestEnv::new();
    let app = env.spawn(&[Role::Tracker]).await;
    let amqp = env.amqp().await;
    let (customer, vehicle) = (Uuid::new_v4(), Uuid::new_v4());
    let (never_reached, its_vehicle) = (Uuid::new_v4(), Uuid::new_v4());

    amqp.publish_event(&message_sent(
        "ok",
        customer,
        vehicle,
        "2026-11-24T01:00:00Z",
    ))
    .await;
    amqp.publish_event(&message_failed(
        "f1",
        customer,
        vehicle,
        "131026",
        "2026-11-24T02:00:00Z",
    ))
    .await;
    amqp.publish_event(&message_failed(
        "f2",
        never_reached,
        its_vehicle,
        "190",
        "2026-11-24T03:00:00Z",
    ))
    .await;
    amqp.publish_event(&message_failed(
        "f2",
        never_reached,
        its_vehicle,
        "190",
        "2026-11-24T03:00:00Z",
    ))
    .await;
    wait_until(Duration::from_secs(20), || async {
        logged(app.pool()).await == 3
    })
    .await;
    processed(&app, 4).await;

    let stats = reports::statistics(app.pool(), None, (None, None))
        .await
        .unwrap();
    assert_eq!(stats.total_messages, 1);
    assert_eq!(stats.total_failed, 2);
    assert_eq!(stats.total_reports, 1);
    let (detail, _) = reports::detail(
        app.pool(),
        &ReportFilter {
            customer: Some(customer),
            ..Default::default()
        },
        Page {
            limit: 10,
            offset: 0,
        },
    )
    .await
    .unwrap();
    assert_eq!(detail.len(), 1);
    assert_eq!(detail[0].frequency, 1);
    assert_eq!(detail[0].failed_count, 1);
    assert!(
        reports::by_pair(app.pool(), never_reached, its_vehicle)
            .await
            .unwrap()
            .is_none()
    );
    app.stop().await;
}

#[tokio::test]
async fn a_pair_unknown_to_the_master_data_is_counted_and_shown_with_what_the_event_said() {
    let env = TestEnv::new();
    let app = env.spawn(&[Role::Tracker]).await;
    let amqp = env.amqp().await;
    let (customer, vehicle) = (Uuid::new_v4(), Uuid::new_v4());
    let mut event = message_sent("r-1", customer, vehicle, "2026-11-24T01:00:00Z");
    event["data"]["customer_name"] = json!("Siti Rahayu");
    event["data"]["plate_number"] = json!("D 4321 ABC");
    amqp.publish_event(&event).await;
    wait_until(Duration::from_secs(20), || async {
        logged(app.pool()).await == 1
    })
    .await;

    let (detail, _) = reports::detail(
        app.pool(),
        &ReportFilter::default(),
        Page {
            limit: 10,
            offset: 0,
        },
    )
    .await
    .unwrap();
    assert_eq!(detail.len(), 1);
    assert_eq!(detail[0].customer_name.as_deref(), Some("Siti Rahayu"));
    assert_eq!(detail[0].customer_phone.as_deref(), Some("6281234567890"));
    assert_eq!(detail[0].plate_number.as_deref(), Some("D 4321 ABC"));
    assert_eq!(detail[0].brand, None);
    app.stop().await;
}

fn reminder_cli(env: &TestEnv, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_reminder"))
        .args(args)
        .env("REMINDER__DATABASE__URL", &env.settings.database.url)
        .env("REMINDER__TELEMETRY__LEVEL", "warn")
        .output()
        .expect("the reminder binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn reset_frequency_and_delete_do_what_they_print_and_keep_the_history() {
    let env = TestEnv::new();
    let app = env.spawn(&[Role::Tracker]).await;
    let amqp = env.amqp().await;
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let (car, bike, van) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    for (i, (c, v)) in [
        (alice, car),
        (alice, car),
        (alice, bike),
        (bob, van),
        (bob, van),
        (bob, van),
    ]
    .into_iter()
    .enumerate()
    {
        amqp.publish_event(&message_sent(
            &format!("r-{i}"),
            c,
            v,
            "2026-11-24T01:00:00Z",
        ))
        .await;
    }
    wait_until(Duration::from_secs(20), || async {
        logged(app.pool()).await == 6
    })
    .await;
    let pool = app.pool().clone();

    let (ok, out, err) = reminder_cli(
        &env,
        &[
            "report",
            "reset-frequency",
            "--customer",
            &alice.to_string(),
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("reset frequency to 0 on 2 report(s)"), "{out}");
    assert!(out.contains("3 message(s) cleared"), "{out}");
    let car_report = reports::by_pair(&pool, alice, car).await.unwrap().unwrap();
    assert_eq!(car_report.frequency, 0);
    assert_eq!(
        car_report.last_message_date,
        "2026-11-24T01:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );
    assert_eq!(
        reports::by_pair(&pool, bob, van)
            .await
            .unwrap()
            .unwrap()
            .frequency,
        3
    );
    let stats = reports::statistics(&pool, None, (None, None))
        .await
        .unwrap();
    assert_eq!(stats.total_messages, 3);
    assert_eq!(stats.total_reports, 3);
    // The history still has all six, so period statistics still count them.
    let tz: chrono_tz::Tz = "Asia/Jakarta".parse().unwrap();
    let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
    let period = reports::Period {
        start: Some(reminder::api::params::start_of_day(tz, day)),
        end: Some(reminder::api::params::start_of_day(
            tz,
            day.succ_opt().unwrap(),
        )),
    };
    let in_period = reports::statistics(&pool, Some(period), (Some(day), Some(day)))
        .await
        .unwrap();
    assert_eq!(in_period.total_messages, 6);

    let van_report = reports::by_pair(&pool, bob, van).await.unwrap().unwrap();
    let (ok, out, err) = reminder_cli(&env, &["report", "delete", &van_report.id.to_string()]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("deleted report {}", van_report.id)),
        "{out}"
    );
    assert!(out.contains("frequency 3"), "{out}");
    assert!(
        reports::by_id(&pool, van_report.id)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(logged(&pool).await, 6);
    let stats = reports::statistics(&pool, None, (None, None))
        .await
        .unwrap();
    assert_eq!(
        (
            stats.total_reports,
            stats.total_messages,
            stats.unique_customers
        ),
        (2, 0, 1)
    );

    let (ok, _, err) = reminder_cli(&env, &["report", "delete", &van_report.id.to_string()]);
    assert!(!ok);
    assert!(err.contains("no report with id"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let (ok, out, err) = reminder_cli(&env, &["report", "reset-frequency"]);
    assert!(ok, "{err}");
    assert!(out.contains("on 0 report(s) of all reports"), "{out}");
    app.stop().await;
}

#[tokio::test]
async fn a_deadlock_is_run_again_and_not_reported_as_the_database_being_down() {
    let env = TestEnv::new();
    let app = env.spawn(&[Role::Tracker]).await;
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let pool = app.pool().clone();

    let result = app
        .ctx
        .db_retry("tracker", &CancellationToken::new(), || {
            let first = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
            let pool = pool.clone();
            async move {
                if first {
                    // What PostgreSQL answers the loser of a deadlock between two batches.
                    sqlx::query(
                        "DO $$ BEGIN RAISE EXCEPTION 'deadlock detected' USING ERRCODE = '40P01'; END $$",
                    )
                    .execute(&pool)
                    .await?;
                }
                Ok(7)
            }
        })
        .await;

    assert_eq!(result.expect("the rerun succeeds"), 7);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    let metrics = app.ctx.metrics.render();
    assert!(
        metrics.contains("reminder_database_conflicts_total{role=\"tracker\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("reminder_database_unavailable_total{role=\"tracker\"} 0"),
        "{metrics}"
    );
    app.stop().await;
}
