//! The dead-letter queue for operators: `dead list` shows each dead letter with its reason and
//! routing key and leaves it there; `dead replay` sends each back once per run, even when the
//! consumer dead-letters it again at once.

use std::time::Duration;

use reminder::broker::Broker;
use reminder::commands::dead;
use reminder::startup::Role;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use reminder_harness::prelude::*;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn invalid_reminders_are_listed_with_their_reason_and_each_replayed_once() {
    let env = TestEnv::new();
    let app = env.spawn(&[Role::Sender]).await;
    let amqp = env.amqp().await;
    let dead_queue = env.topology().dead_queue.clone();
    for i in 0..3 {
        let mut e = maintenance_due(&format!("bad-{i}"), Uuid::new_v4(), Uuid::new_v4());
        e["data"].as_object_mut().unwrap().remove("customer_id");
        amqp.publish_event(&e).await;
    }
    wait_until(WAIT, || async { amqp.depth(&dead_queue).await == 3 }).await;

    let shutdown = CancellationToken::new();
    let broker = Broker::start(&env.settings.amqp, "test dead", shutdown.clone());
    let letters = dead::list(&broker, &shutdown, 100).await.unwrap();
    assert_eq!(letters.len(), 3);
    let mut ids: Vec<_> = letters.iter().map(|l| l.event_id.clone()).collect();
    ids.sort();
    assert_eq!(ids, ["bad-0", "bad-1", "bad-2"]);
    for l in &letters {
        assert_eq!(l.routing_key, "maintenance.due");
        assert!(l.reason.contains("data.customer_id"), "{}", l.reason);
    }
    wait_until(WAIT, || async { amqp.depth(&dead_queue).await == 3 }).await;

    // Still invalid: the sender dead-letters each again as soon as it is replayed. The replay
    // ends anyway, having sent each back once.
    let done = tokio::time::timeout(
        Duration::from_secs(60),
        dead::replay(&broker, &shutdown, None),
    )
    .await
    .expect("the replay ends")
    .unwrap();
    assert_eq!(done.replayed, 3);
    assert_eq!(done.unroutable, 0);
    wait_until(WAIT, || async { amqp.depth(&dead_queue).await == 3 }).await;
    let again = dead::list(&broker, &shutdown, 100).await.unwrap();
    assert_eq!(again.len(), 3, "each came back once, not more");

    shutdown.cancel();
    app.stop().await;
}
