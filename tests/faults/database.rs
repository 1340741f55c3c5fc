//! PostgreSQL goes away under load: the sender and the tracker stop taking new messages, hold
//! (never dead-letter) what they have, retry with back-off and resume by themselves; every
//! reminder is still sent once and counted once.

use std::time::Duration;

use reminder::startup::Role;

use crate::support::*;
use reminder_harness::prelude::*;

#[tokio::test]
#[ignore = "disrupts shared services: cargo test --test faults -- --ignored --test-threads=1"]
async fn consumers_pause_while_postgresql_is_down_and_resume_without_losing_or_repeating_anything()
{
    let (sends, env) = env_with_provider(Duration::from_millis(20), true).await;
    let app = env.spawn(&[Role::Sender, Role::Tracker]).await;
    let amqp = env.amqp().await;
    let events = reminders(300);
    publish_all(&amqp, &events).await;
    wait_until(Duration::from_secs(30), || async { sends.calls() >= 50 }).await;

    let down = PostgresDown::stop();
    // Sends already past their claim finish; then nothing more goes out.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let calls_while_down = sends.calls();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        sends.calls(),
        calls_while_down,
        "no provider call while the database is unreachable"
    );
    assert_eq!(
        amqp.depth(&env.topology().dead_queue).await,
        0,
        "an outage dead-letters nothing"
    );
    assert!(
        calls_while_down < 300,
        "the outage began before the work was done"
    );
    drop(down);

    assert_each_sent_once_despite_failures(app.pool(), &sends, 300).await;
    assert_eq!(amqp.depth(&env.topology().dead_queue).await, 0);
    app.stop().await;
}
