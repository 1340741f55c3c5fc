//! Never sending a reminder twice: duplicates of an event, deliveries handled at once, claims
//! and leases between handlers, and what a crash at each step leaves to do.

use super::*;

#[tokio::test]
async fn the_same_maintenance_due_published_three_times_sends_one_message() {
    let (mock, _env, outcomes, app) = sender_with_ok_provider().await;
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
    let events = outcomes.after(&event, 2).await;
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
async fn a_stalled_attempt_the_provider_accepted_after_a_newer_one_failed_records_the_reminder_sent()
 {
    let env = TestEnv::new();
    let pool = env.pool().await;
    let due = sample_due();
    let lease = Duration::from_secs(30);

    // Attempt 1 stalls past its lease; attempt 2, the last, fails for good.
    dispatch::claim(&pool, "r1", &due, "cloud_api", Duration::ZERO, 2)
        .await
        .unwrap();
    dispatch::claim(&pool, "r1", &due, "cloud_api", lease, 2)
        .await
        .unwrap();
    let failed =
        dispatch::record_failed(&pool, "r1", Some(2), "131049", "spam", chrono::Utc::now())
            .await
            .unwrap();
    assert_eq!(failed.status, DispatchStatus::Failed);

    // Then attempt 1's answer arrives: the provider accepted it, the customer has the message.
    let late = dispatch::record_sent(&pool, "r1", "wamid.late", chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(late.status, DispatchStatus::Sent, "the acceptance stands");
    assert_eq!(late.provider_message_id.as_deref(), Some("wamid.late"));
    assert_eq!(late.error_code, None);
    let event = reminder::sender::outcome::OutcomeEvent::of(&late).expect("an outcome");
    assert_eq!(event.id, outcome_id("message.sent", "r1"));

    // A refusal for an opted-out phone made no call, so nothing can overturn it.
    dispatch::claim(&pool, "r2", &due, "cloud_api", lease, 2)
        .await
        .unwrap();
    dispatch::record_failed(
        &pool,
        "r2",
        None,
        "opted_out",
        "opted out",
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    let refused = dispatch::record_sent(&pool, "r2", "wamid.x", chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(refused.status, DispatchStatus::Failed);
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

    let events = outcomes
        .after(&maintenance_due(&id, due.customer_id, due.vehicle_id), 1)
        .await;
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

    let events = outcomes
        .after(&maintenance_due(&id, due.customer_id, due.vehicle_id), 1)
        .await;
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

    let events = outcomes
        .after(&maintenance_due(&id, due.customer_id, due.vehicle_id), 1)
        .await;
    assert_eq!(events[0]["type"], "message.failed");
    assert_eq!(events[0]["data"]["error_code"], "attempts_exhausted");
    assert_eq!(events[0]["data"]["attempts"], 2);
    assert_eq!(calls(&mock).await, 0);
    app.stop().await;
}
