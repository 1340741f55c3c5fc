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
