//! The producer against the real database and broker: the due window, the workshop's time
//! zone, the ids that make repeated scans harmless, concurrent replicas and the catch-up run.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{Days, NaiveDate, TimeZone, Utc};
use reminder::db::master_data::{self, NewCustomer, NewVehicle};
use reminder::producer::{Producer, Trigger};
use reminder::startup::Role;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use reminder_harness::prelude::*;

const RUN_DATE: NaiveDate = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();

/// A published `maintenance.due`, as read back from the sender queue.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Published {
    id: String,
    vehicle_id: Uuid,
    due_date: String,
    phone: String,
}

/// Takes every message waiting in the sender queue.
async fn take_published(amqp: &TestAmqp) -> Vec<Published> {
    let mut out = Vec::new();
    for delivery in amqp.take_all(&amqp.topology.sender_queue).await {
        let event: Value = serde_json::from_slice(&delivery.data).unwrap();
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["type"], "maintenance.due");
        out.push(Published {
            id: event["id"].as_str().unwrap().to_string(),
            vehicle_id: event["data"]["vehicle_id"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap(),
            due_date: event["data"]["due_date"].as_str().unwrap().to_string(),
            phone: event["data"]["phone"].as_str().unwrap().to_string(),
        });
    }
    out
}

/// Inserts one customer per vehicle, with the given due dates; returns the vehicle ids.
async fn insert_vehicles(
    pool: &sqlx::PgPool,
    dates: &[Option<NaiveDate>],
    phone: &str,
) -> Vec<Uuid> {
    let mut customers = Vec::new();
    let mut vehicles = Vec::new();
    for (i, date) in dates.iter().enumerate() {
        let customer = Uuid::new_v4();
        customers.push(NewCustomer {
            id: customer,
            name: format!("Customer {i}"),
            phone: phone.to_string(),
        });
        vehicles.push(NewVehicle {
            id: Uuid::new_v4(),
            id_customer: customer,
            plate_number: format!("B {i} XYZ"),
            brand: Some("Honda".into()),
            model: Some("Vario".into()),
            next_maintenance_date: *date,
        });
    }
    master_data::upsert_customers(pool, &customers)
        .await
        .unwrap();
    master_data::upsert_vehicles(pool, &vehicles).await.unwrap();
    vehicles.iter().map(|v| v.id).collect()
}

fn day(offset: i64) -> NaiveDate {
    if offset >= 0 {
        RUN_DATE.checked_add_days(Days::new(offset as u64)).unwrap()
    } else {
        RUN_DATE
            .checked_sub_days(Days::new(offset.unsigned_abs()))
            .unwrap()
    }
}

/// A producer on its own context (no roles running), with the broker connected.
async fn producer(env: &TestEnv) -> (Producer, CancellationToken) {
    let shutdown = CancellationToken::new();
    let ctx = reminder::startup::connect(env.settings.clone(), "test producer", shutdown.clone())
        .await
        .unwrap();
    wait_until(Duration::from_secs(10), || async {
        ctx.broker.is_connected()
    })
    .await;
    (Producer::new(ctx).unwrap(), shutdown)
}

#[tokio::test]
async fn the_scan_publishes_vehicles_due_from_today_to_three_days_ahead_and_no_others() {
    let env = TestEnv::new();
    let (producer, _broker) = producer(&env).await;
    let amqp = env.amqp().await;
    let pool = &producer.context().pool;
    let dates = [-1, 0, 1, 2, 3, 4, 30].map(|d| Some(day(d)));
    let ids = insert_vehicles(pool, &dates, "0812-3456-7890").await;
    insert_vehicles(pool, &[None], "0812-3456-7890").await;

    let summary = producer
        .scan(RUN_DATE, Trigger::Manual, None, &CancellationToken::new())
        .await
        .unwrap();

    let published = take_published(&amqp).await;
    let vehicles: BTreeSet<Uuid> = published.iter().map(|p| p.vehicle_id).collect();
    // Yesterday, today+4, today+30 and the vehicle without a date are out.
    let expected: BTreeSet<Uuid> = ids[1..=4].iter().copied().collect();
    assert_eq!(vehicles, expected);
    assert_eq!(summary.events_published, 4);
    assert_eq!(summary.vehicles_scanned, 4);
    assert!(published.iter().all(|p| p.phone == "6281234567890"));
    let due_dates: BTreeSet<&str> = published.iter().map(|p| p.due_date.as_str()).collect();
    assert_eq!(
        due_dates,
        BTreeSet::from(["2026-11-25", "2026-11-26", "2026-11-27", "2026-11-28"])
    );
}

#[tokio::test]
async fn overdue_vehicles_are_included_only_within_overdue_days() {
    let mut env = TestEnv::new();
    env.settings.producer.overdue_days = 2;
    env.settings.producer.remind_days_before = vec![3, 2, 1, 0, -1, -2];
    let (producer, _broker) = producer(&env).await;
    let amqp = env.amqp().await;
    let ids = insert_vehicles(
        &producer.context().pool,
        &[Some(day(-3)), Some(day(-2)), Some(day(-1))],
        "081234567890",
    )
    .await;

    producer
        .scan(RUN_DATE, Trigger::Manual, None, &CancellationToken::new())
        .await
        .unwrap();

    let vehicles: BTreeSet<Uuid> = take_published(&amqp)
        .await
        .iter()
        .map(|p| p.vehicle_id)
        .collect();
    assert_eq!(vehicles, ids[1..].iter().copied().collect());
}

#[tokio::test]
async fn a_scan_at_half_past_midnight_in_jakarta_uses_the_jakarta_date() {
    let env = TestEnv::new();
    let (producer, _broker) = producer(&env).await;
    let amqp = env.amqp().await;
    // 00:30 on 25 November in Jakarta is still 24 November in UTC.
    let now = Utc.with_ymd_and_hms(2026, 11, 24, 17, 30, 0).unwrap();
    let run_date = producer.date_at(now);
    assert_eq!(run_date, RUN_DATE);
    // Due 28 November: three days ahead in Jakarta, four from UTC's date.
    let ids = insert_vehicles(&producer.context().pool, &[Some(day(3))], "081234567890").await;

    producer
        .scan(run_date, Trigger::Manual, None, &CancellationToken::new())
        .await
        .unwrap();

    let published = take_published(&amqp).await;
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].vehicle_id, ids[0]);
}

#[tokio::test]
async fn a_customer_with_an_unusable_phone_is_skipped_counted_and_recorded() {
    let env = TestEnv::new();
    let (producer, _broker) = producer(&env).await;
    let amqp = env.amqp().await;
    let pool = producer.context().pool.clone();
    insert_vehicles(&pool, &[Some(day(1))], "not a phone").await;
    let good = insert_vehicles(&pool, &[Some(day(1))], "+62 813 1111 2222").await;

    let summary = producer
        .scan(RUN_DATE, Trigger::Manual, None, &CancellationToken::new())
        .await
        .unwrap();

    assert_eq!(summary.skipped_invalid_phone, 1);
    let published = take_published(&amqp).await;
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].vehicle_id, good[0]);
    let metrics = producer.context().metrics.render();
    assert!(
        metrics.contains("reminder_producer_skipped_vehicles_total{reason=\"invalid_phone\"} 1"),
        "{metrics}"
    );
    let runs = reminder::db::producer_runs::recent(&pool, 10)
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, "succeeded");
    assert_eq!(runs[0].trigger, "manual");
    assert_eq!(runs[0].events_published, 1);
    assert_eq!(runs[0].skipped_invalid_phone, 1);
    assert!(runs[0].finished_at.is_some());
}

#[tokio::test]
async fn a_second_scan_on_the_same_day_publishes_the_same_ids_and_nothing_is_sent_twice() {
    let env = TestEnv::new();
    let app = env.spawn(&[Role::Sender, Role::Tracker]).await;
    let (producer, _broker) = producer(&env).await;
    let ids = insert_vehicles(
        app.pool(),
        &[Some(day(0)), Some(day(1)), Some(day(3))],
        "0812-3456-7890",
    )
    .await;

    for _ in 0..2 {
        producer
            .scan(RUN_DATE, Trigger::Manual, None, &CancellationToken::new())
            .await
            .unwrap();
    }

    // Both scans published 3 events with the same ids: 3 reminders, each sent and counted once.
    let pool = app.pool().clone();
    wait_until(Duration::from_secs(20), || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM message_log")
            .fetch_one(&pool)
            .await
            .unwrap();
        n == 3
    })
    .await;
    // Let the duplicates be processed too, then check nothing changed.
    let amqp = env.amqp().await;
    wait_until(Duration::from_secs(20), || async {
        amqp.depth(&amqp.topology.sender_queue).await == 0
            && amqp.depth(&amqp.topology.tracker_queue).await == 0
    })
    .await;
    let dispatched: Vec<(Uuid, i32)> =
        sqlx::query_as("SELECT id_vehicle, attempts FROM reminder_dispatch ORDER BY id_vehicle")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(dispatched.len(), 3);
    assert!(dispatched.iter().all(|(_, attempts)| *attempts == 1));
    let frequencies: Vec<(Uuid, i32)> =
        sqlx::query_as("SELECT id_vehicle, frequency FROM whatsapp_report ORDER BY id_vehicle")
            .fetch_all(&pool)
            .await
            .unwrap();
    let mut expected: Vec<(Uuid, i32)> = ids.iter().map(|v| (*v, 1)).collect();
    expected.sort();
    assert_eq!(frequencies, expected);
    let duplicates = app.ctx.metrics.render();
    assert!(
        duplicates.contains("reminder_duplicate_reminders_total 3"),
        "{duplicates}"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_next_days_scan_publishes_new_ids_for_vehicles_still_due() {
    let env = TestEnv::new();
    let (producer, _broker) = producer(&env).await;
    let amqp = env.amqp().await;
    insert_vehicles(&producer.context().pool, &[Some(day(3))], "081234567890").await;
    producer
        .scan(RUN_DATE, Trigger::Manual, None, &CancellationToken::new())
        .await
        .unwrap();
    producer
        .scan(day(1), Trigger::Manual, None, &CancellationToken::new())
        .await
        .unwrap();
    let published = take_published(&amqp).await;
    assert_eq!(published.len(), 2);
    assert_ne!(published[0].id, published[1].id);
}

#[tokio::test]
async fn two_scheduled_producers_started_together_publish_each_vehicle_once() {
    let env = TestEnv::new();
    let (first, _b1) = producer(&env).await;
    let (second, _b2) = producer(&env).await;
    let amqp = env.amqp().await;
    let ids = insert_vehicles(
        &first.context().pool,
        &(0..200).map(|i| Some(day(i % 4))).collect::<Vec<_>>(),
        "081234567890",
    )
    .await;
    let scheduled_at = Utc::now() - chrono::Duration::minutes(1);
    let shutdown = CancellationToken::new();

    let (a, b) = tokio::join!(
        first.scan(RUN_DATE, Trigger::Schedule, Some(scheduled_at), &shutdown),
        second.scan(RUN_DATE, Trigger::Schedule, Some(scheduled_at), &shutdown)
    );
    let (a, b) = (a.unwrap(), b.unwrap());

    // One scanned, the other waited for the lock and found the day done.
    assert!(a.skipped_as_done != b.skipped_as_done, "{a:?} {b:?}");
    assert_eq!(a.events_published + b.events_published, 200);
    let published = take_published(&amqp).await;
    assert_eq!(published.len(), 200);
    let per_vehicle: HashMap<Uuid, usize> = published.iter().fold(HashMap::new(), |mut m, p| {
        *m.entry(p.vehicle_id).or_default() += 1;
        m
    });
    assert_eq!(per_vehicle.len(), ids.len());
    assert!(per_vehicle.values().all(|n| *n == 1));
}

#[tokio::test]
async fn a_producer_started_after_todays_scheduled_time_catches_up_once() {
    let mut env = TestEnv::new();
    // Midnight in the workshop's zone has always passed today.
    env.settings.producer.schedule = "0 0 * * *".into();
    env.settings.producer.catch_up_on_start = true;
    let (producer, _broker) = producer(&env).await;
    let amqp = env.amqp().await;
    let pool = producer.context().pool.clone();
    let today = producer.today();
    let offset = (today - RUN_DATE).num_days();
    insert_vehicles(&pool, &[Some(day(offset + 1))], "081234567890").await;

    let producer = Arc::new(producer);
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(producer.clone().run_scheduled(shutdown.clone()));
    wait_until(Duration::from_secs(20), || async {
        reminder::db::producer_runs::recent(&pool, 10)
            .await
            .unwrap()
            .iter()
            .any(|r| r.trigger == "catch_up" && r.status == "succeeded")
    })
    .await;
    shutdown.cancel();
    running.await.unwrap().unwrap();
    assert_eq!(take_published(&amqp).await.len(), 1);

    // A restart after the catch-up finds today done and scans nothing.
    let again = producer
        .catch_up(Utc::now(), &CancellationToken::new())
        .await;
    assert!(again.is_none(), "{again:?}");
    let runs = reminder::db::producer_runs::recent(&pool, 10)
        .await
        .unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(take_published(&amqp).await.len(), 0);
}
