//! A `reminder` process killed with SIGKILL in the middle of its work loses nothing and counts
//! nothing twice once started again; one stopped with SIGTERM finishes what it has in flight
//! and exits 0. Memory stays bounded under a flood of due events.

use std::time::Duration;

use crate::support::*;
use reminder_harness::prelude::*;

#[tokio::test]
#[ignore = "starts private PostgreSQL and RabbitMQ: cargo test --test faults -- --ignored --test-threads=1"]
async fn a_sender_and_a_tracker_killed_mid_flow_lose_nothing_and_count_nothing_twice() {
    let (_private, sends, mut env) = env_with_provider(Duration::from_millis(100), true).await;
    env.settings.whatsapp.request_timeout_ms = 1000;
    let pool = env.pool().await;
    let amqp = env.amqp().await;
    let n = 400;
    publish_all(&amqp, &reminders(n)).await;
    let sender_env = [("REMINDER__SENDER__CONCURRENCY", "16")];
    let tracker_env = [("REMINDER__TRACKER__BATCH_SIZE", "50")];
    let counted = || async { counts(&pool).await.frequency };

    // The sender is killed twice while sends are in flight, the tracker once while it is
    // counting batches; each is started again at once.
    let mut sender = reminder(&env, &["sender"], &sender_env);
    let mut tracker = reminder(&env, &["tracker"], &tracker_env);
    wait_until(Duration::from_secs(30), || async { sends.calls() >= 60 }).await;
    sender.kill9();
    let mut sender = reminder(&env, &["sender"], &sender_env);
    wait_until(Duration::from_secs(30), || async { counted().await >= 40 }).await;
    tracker.kill9();
    let before = sends.calls();
    wait_until(Duration::from_secs(60), || async {
        sends.calls() >= before + 60
    })
    .await;
    sender.kill9();
    let _sender = reminder(&env, &["sender"], &sender_env);
    let _tracker = reminder(&env, &["tracker"], &tracker_env);

    // A send cut off mid-call is retried once its lease (time-out + 30 s) is over.
    assert_counted_exactly(&pool, n as i64, Duration::from_secs(150)).await;
    assert_eq!(sends.accepted().0, n as u64, "every reminder was sent");
    assert!(
        sends.transient_failures() > 0,
        "the provider failed some calls"
    );
    let repeated = sends.repeated();
    println!(
        "two sender kills, one tracker kill: {n} reminders, {} provider calls ({} transient \
         failures), {} reminders accepted twice",
        sends.calls(),
        sends.transient_failures(),
        repeated.len()
    );
    // The documented window: only a provider call under way at a kill can be repeated, so at
    // most `concurrency` reminders per sender kill, each twice at most.
    assert!(
        repeated.len() <= 2 * 16 && repeated.iter().all(|(_, n)| *n == 2),
        "repeated sends beyond the in-flight window: {repeated:?}"
    );
    let unsettled: i64 =
        sqlx::query_scalar("SELECT count(*) FROM reminder_dispatch WHERE status <> 'sent'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(unsettled, 0);
    let dead: Vec<_> = amqp
        .drain_dead()
        .await
        .iter()
        .map(|d| {
            (
                header_text(d, "x-first-death-reason"),
                header_text(d, "x-reminder-error"),
            )
        })
        .collect();
    assert_eq!(dead, vec![], "nothing is dead-lettered");
}

#[tokio::test]
#[ignore = "starts private PostgreSQL and RabbitMQ: cargo test --test faults -- --ignored --test-threads=1"]
async fn sigterm_finishes_the_sends_in_flight_acks_them_and_exits_zero() {
    // Slow enough that the signal arrives while every send is waiting for its answer.
    let (_private, sends, mut env) = env_with_provider(Duration::from_millis(1500), false).await;
    env.settings.whatsapp.request_timeout_ms = 5000;
    let pool = env.pool().await;
    let amqp = env.amqp().await;
    publish_all(&amqp, &reminders(10)).await;

    let mut child = reminder(
        &env,
        &["sender", "tracker"],
        &[("REMINDER__RUNTIME__SHUTDOWN_TIMEOUT_SECS", "10")],
    );
    wait_until(Duration::from_secs(30), || async { sends.calls() == 10 }).await;
    child.sigterm();
    let status = child
        .exit_within(Duration::from_secs(20))
        .await
        .expect("the process exits within the shutdown timeout");
    assert!(status.success(), "exit status {status:?}");

    assert_eq!(
        recorded_sends(&pool).await,
        10,
        "every send in flight was recorded before exiting"
    );
    assert_eq!(
        amqp.depth(&env.topology().sender_queue).await,
        0,
        "and acked"
    );
    // A fresh process counts whatever the stopped tracker left, and sends nothing again.
    let _child = reminder(&env, &["sender", "tracker"], &[]);
    assert_counted_exactly(&pool, 10, Duration::from_secs(30)).await;
    assert_eq!(sends.calls(), 10);
}

#[tokio::test]
#[ignore = "starts private PostgreSQL and RabbitMQ: cargo test --test faults -- --ignored --test-threads=1"]
async fn a_flood_of_100000_due_events_keeps_the_sender_within_its_prefetch_and_memory_flat() {
    let (_private, sends, env) = env_with_provider(Duration::from_millis(50), false).await;
    let amqp = env.amqp().await;
    let child = reminder(
        &env,
        &["sender"],
        &[("REMINDER__SENDER__CONCURRENCY", "64")],
    );
    wait_until(Duration::from_secs(30), || async {
        amqp.depth(&env.topology().sender_queue).await == 0 && child.peak_rss_kib().is_some()
    })
    .await;
    let n = 100_000;
    for chunk in reminders(n).chunks(5_000) {
        publish_all(&amqp, chunk).await;
    }
    wait_until(Duration::from_secs(60), || async { sends.calls() >= 5_000 }).await;
    let peak = child.peak_rss_kib().expect("the sender runs") / 1024;
    let queued = amqp.depth(&env.topology().sender_queue).await;
    println!("100,000 due events: sender peak RSS {peak} MiB, {queued} still queued");
    assert!(
        queued as usize > n / 2,
        "the flood is still mostly waiting in RabbitMQ, not in the process"
    );
    assert!(peak < 150, "peak RSS {peak} MiB");
}
