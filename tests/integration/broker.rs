//! Publishing with confirms against the real broker: what cannot be routed comes back as an
//! error instead of disappearing.

use reminder::broker::publisher::Outgoing;
use reminder::broker::{Broker, PublishError, Publisher};
use tokio_util::sync::CancellationToken;

use crate::helpers::*;

#[tokio::test]
async fn a_message_no_queue_is_bound_for_is_returned_as_an_error_not_lost() {
    let env = TestEnv::new();
    // Declares the topology, so the exchange exists but nothing is bound to this key.
    drop(env.amqp().await);
    let shutdown = CancellationToken::new();
    let broker = Broker::start(&env.settings.amqp, "test-publisher", shutdown.clone());
    let publisher = Publisher::open(&broker, &shutdown)
        .await
        .expect("a channel");

    let unroutable = publisher
        .publish(Outgoing::event(
            publisher.exchange(),
            "nobody.listens",
            "event-1",
            b"{}".to_vec(),
        ))
        .await;
    match unroutable {
        Err(PublishError::Unroutable(reason)) => assert!(reason.contains("312"), "{reason}"),
        other => panic!("expected an unroutable error, got {other:?}"),
    }

    // The same publisher still works for a routable message.
    publisher
        .publish_event("maintenance.due", "event-2", b"{}".to_vec())
        .await
        .expect("a routable message is confirmed");
    let amqp = env.amqp().await;
    assert_eq!(amqp.depth(&env.topology().sender_queue).await, 1);
    publisher.close().await;
    shutdown.cancel();
}

/// Closes, from the broker's side, the one connection whose client named itself `name`.
fn close_connection_named(name: &str) {
    let listed = std::process::Command::new("rabbitmqctl")
        .args([
            "-q",
            "list_connections",
            "--no-table-headers",
            "pid",
            "client_properties",
        ])
        .output()
        .expect("rabbitmqctl runs");
    let listed = String::from_utf8_lossy(&listed.stdout);
    let needle = format!("{{\"connection_name\",\"{name}\"}}");
    let pid = listed
        .lines()
        .find(|line| line.contains(&needle))
        .and_then(|line| line.split('\t').next())
        .unwrap_or_else(|| panic!("no connection named {name} in:\n{listed}"))
        .to_string();
    let closed = std::process::Command::new("rabbitmqctl")
        .args(["-q", "close_connection", &pid, "closed by a test"])
        .status()
        .expect("rabbitmqctl runs");
    assert!(closed.success());
}

#[tokio::test]
async fn a_session_learns_its_connection_is_gone_and_the_next_one_gets_a_new_connection() {
    let env = TestEnv::new();
    let shutdown = CancellationToken::new();
    let name = format!("test-lost-{}", uuid::Uuid::new_v4());
    let broker = Broker::start(&env.settings.amqp, &name, shutdown.clone());
    let (channel, lost) = broker.session_channel(&shutdown).await.expect("a channel");
    assert!(!lost.is_cancelled());

    close_connection_named(&name);

    // What a consuming session selects on: it ends even if nothing it awaits ever fails.
    tokio::time::timeout(std::time::Duration::from_secs(20), lost.cancelled())
        .await
        .expect("the session hears that its connection is gone");
    assert!(!channel.status().connected());
    let (again, lost_again) = broker
        .session_channel(&shutdown)
        .await
        .expect("a channel on a new connection");
    assert!(again.status().connected());
    assert!(!lost_again.is_cancelled());
    shutdown.cancel();
}
