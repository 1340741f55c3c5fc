//! A test's private RabbitMQ node restarts under load: every role reconnects by itself,
//! re-declares its topology, resumes consuming and republishes what was not confirmed; nothing
//! is lost, nothing is sent or counted twice, and `/readyz` says 503 while the broker is away.
//! A resource alarm that blocks publishing for longer than any broker wait is bounded pauses
//! the roles and ends no session. A broker that stops answering altogether does not hold a
//! stopping process past its shutdown timeout, and what it left unconfirmed is neither lost
//! nor sent again.

use std::time::{Duration, Instant};

use reminder::producer::{Producer, Trigger};
use reminder::startup::Role;
use tokio_util::sync::CancellationToken;

use crate::support::*;
use reminder_harness::prelude::*;

#[tokio::test]
#[ignore = "starts private PostgreSQL and RabbitMQ: cargo test --test faults -- --ignored --test-threads=1"]
async fn every_role_reconnects_after_a_broker_restart_and_each_reminder_is_sent_and_counted_once() {
    let (private, sends, env) = env_with_provider(Duration::from_millis(20), true).await;
    let app = env.spawn(&[Role::All]).await;
    let events = reminders(300);
    {
        let amqp = env.amqp().await;
        publish_all(&amqp, &events).await;
    }
    wait_until(Duration::from_secs(30), || async { sends.calls() >= 50 }).await;

    private.rabbit.stop(0).await;
    wait_until(Duration::from_secs(15), || async {
        app.get("/readyz").await.status() == 503
    })
    .await;
    let readiness = app
        .get("/readyz")
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(readiness["broker"], false, "{readiness}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    private.rabbit.start_node(0).await;

    wait_until(Duration::from_secs(30), || async {
        app.get("/readyz").await.status() == 200
    })
    .await;
    assert_each_sent_once_despite_failures(app.pool(), &sends, 300).await;
    let amqp = env.amqp().await;
    assert_eq!(amqp.depth(&env.topology().dead_queue).await, 0);
    app.stop().await;
}

#[tokio::test]
#[ignore = "starts private PostgreSQL and RabbitMQ: cargo test --test faults -- --ignored --test-threads=1"]
async fn a_scan_interrupted_by_a_broker_restart_still_publishes_every_due_vehicle_once() {
    let private = Private::start(1).await;
    let env = private.env();
    let pool = env.pool().await;
    let today = chrono::Utc::now().date_naive();
    let due = 30_000i64;
    sqlx::query(
        "INSERT INTO customers (id, name, phone)
         SELECT md5('c' || i)::uuid, 'Customer ' || i, '0812' || lpad(i::text, 8, '0')
         FROM generate_series(1, $1::bigint) i",
    )
    .bind(due)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO vehicles (id, id_customer, plate_number, next_maintenance_date)
         SELECT md5('v' || i)::uuid, md5('c' || i)::uuid, 'B ' || i, $2::date + (i % 3)::int
         FROM generate_series(1, $1::bigint) i",
    )
    .bind(due)
    .bind(today)
    .execute(&pool)
    .await
    .unwrap();
    // Declares the topology, so the sender queue collects everything the producer publishes.
    drop(env.amqp().await);
    let mut settings = env.settings.clone();
    settings.producer.timezone = "UTC".into();
    let ctx = reminder::startup::connect(settings, "fault-producer", CancellationToken::new())
        .await
        .unwrap();
    wait_until(Duration::from_secs(10), || async {
        ctx.broker.is_connected()
    })
    .await;
    let producer = Producer::new(ctx.clone()).unwrap();
    let shutdown = CancellationToken::new();
    let scan = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { producer.scan(today, Trigger::Manual, None, &shutdown).await }
    });
    // Let part of the scan through, then take the broker away under it. Stopped on the test's
    // own thread on purpose: the scan shares it, so it cannot finish while RabbitMQ stops and
    // the stop lands mid-scan.
    tokio::time::sleep(Duration::from_millis(400)).await;
    private.rabbit.stop_blocking(0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    private.rabbit.start_node_blocking(0);
    let summary = tokio::time::timeout(Duration::from_secs(120), scan)
        .await
        .expect("the scan finishes after the broker is back")
        .unwrap()
        .expect("the scan succeeds");
    assert_eq!(summary.events_published as i64, due, "{summary:?}");

    let amqp = env.amqp().await;
    let queue = env.topology().sender_queue;
    let mut ids = std::collections::HashSet::new();
    let mut copies = 0u64;
    while let Some(m) = amqp
        .channel
        .basic_get(
            queue.as_str().into(),
            lapin::options::BasicGetOptions { no_ack: true },
        )
        .await
        .unwrap()
    {
        copies += 1;
        let v: serde_json::Value = serde_json::from_slice(&m.delivery.data).unwrap();
        ids.insert(v["id"].as_str().unwrap().to_string());
    }
    assert_eq!(
        ids.len() as i64,
        due,
        "every due vehicle reached the queue ({copies} copies)"
    );
    // Copies beyond one per id are the republished unconfirmed window; the sender treats them
    // as duplicates of one reminder.
    assert!(copies >= due as u64);
}

#[tokio::test]
#[ignore = "starts private PostgreSQL and RabbitMQ: cargo test --test faults -- --ignored --test-threads=1"]
async fn a_memory_alarm_longer_than_the_answer_bound_pauses_the_roles_without_ending_their_sessions()
 {
    let (private, sends, env) = env_with_provider(Duration::from_millis(50), false).await;
    let events = reminders(100);
    {
        let amqp = env.amqp().await;
        publish_all(&amqp, &events).await;
    }
    // Raised before the app starts, so every outcome event it publishes meets the alarm.
    private.rabbit.memory_alarm(0, true).await;
    let app = env.spawn(&[Role::All]).await;
    wait_until(Duration::from_secs(30), || async {
        let m = app.get("/metrics").await.text().await.unwrap();
        sends.calls() >= 100 && metric(&m, "reminder_broker_blocked") == 1.0
    })
    .await;
    // Longer than any single broker operation may otherwise wait.
    tokio::time::sleep(reminder::broker::ANSWER_TIMEOUT + Duration::from_secs(10)).await;
    assert_eq!(
        counts(app.pool()).await.frequency,
        0,
        "nothing can be published while RabbitMQ blocks publishing"
    );
    private.rabbit.memory_alarm(0, false).await;

    assert_counted_exactly(app.pool(), 100, Duration::from_secs(60)).await;
    assert_eq!(sends.accepted().0, 100);
    assert_eq!(sends.repeated(), vec![], "no reminder is sent twice");
    let m = app.get("/metrics").await.text().await.unwrap();
    assert_eq!(metric(&m, "reminder_broker_blocked"), 0.0);
    // A session that gave up on the blocked connection would have had its unacked reminders
    // redelivered, and the sender would have found them already sent.
    assert_eq!(
        metric(
            &m,
            "reminder_events_consumed_total{role=\"sender\",type=\"maintenance.due\",outcome=\"duplicate\"}"
        ),
        0.0,
        "no reminder was delivered twice: no session ended during the alarm"
    );
    assert_eq!(
        metric(
            &m,
            "reminder_events_consumed_total{role=\"sender\",type=\"maintenance.due\",outcome=\"sent\"}"
        ),
        100.0
    );
    app.stop().await;
}

#[tokio::test]
#[ignore = "starts private PostgreSQL and RabbitMQ: cargo test --test faults -- --ignored --test-threads=1"]
async fn sigterm_while_the_broker_stops_answering_exits_within_the_shutdown_timeout_and_loses_nothing()
 {
    // Slow enough that the broker freezes while every send waits for its answer: the outcomes
    // are then recorded, but neither their publishes nor the acks can be confirmed.
    let (private, sends, mut env) = env_with_provider(Duration::from_millis(1500), false).await;
    env.settings.whatsapp.request_timeout_ms = 5000;
    let pool = env.pool().await;
    {
        let amqp = env.amqp().await;
        publish_all(&amqp, &reminders(10)).await;
    }
    let shutdown_timeout = Duration::from_secs(2);
    let mut child = reminder(
        &env,
        &["sender", "tracker"],
        &[(
            "REMINDER__RUNTIME__SHUTDOWN_TIMEOUT_SECS",
            &shutdown_timeout.as_secs().to_string(),
        )],
    );
    wait_until(Duration::from_secs(30), || async { sends.calls() == 10 }).await;

    private.rabbit.freeze(0);
    child.sigterm();
    let started = Instant::now();
    // Each role gets the shutdown timeout, and a second after it to close its channels
    // (broker::end_session); every wait on the broker beyond that is abandoned. The process's
    // own last resort, five seconds after the timeout (startup.rs), must not be what ends it:
    // no wait on the frozen broker (cancelling the consumer, say) may run outside the timeout.
    let bound = shutdown_timeout + Duration::from_secs(3);
    let status = child.exit_within(bound).await.unwrap_or_else(|| {
        panic!("the process was still running {bound:?} after SIGTERM, with the broker frozen")
    });
    assert!(status.success(), "exit status {status:?}");
    assert!(
        started.elapsed() >= shutdown_timeout,
        "the process stopped before its shutdown timeout: the broker froze too late to hold \
         the outcomes, and this test showed nothing"
    );
    assert_eq!(
        recorded_sends(&pool).await,
        10,
        "every answer was recorded, although its outcome could not be published"
    );
    private.rabbit.thaw(0);

    // Whatever the broker took in before it froze (publishes, acks) it handles now; what was
    // not acked comes back, and the sender finds each reminder already sent.
    let _child = reminder(&env, &["sender", "tracker"], &[]);
    assert_counted_exactly(&pool, 10, Duration::from_secs(60)).await;
    assert_eq!(sends.calls(), 10, "no reminder was sent again");
    assert_eq!(sends.repeated(), vec![]);
}
