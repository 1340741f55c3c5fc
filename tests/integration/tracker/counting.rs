//! Counting each outcome once: redelivered events and batches, batches written at once over
//! the same pairs, late events, and pairs unknown to the master data.

use super::*;

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
