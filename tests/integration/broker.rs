//! Publishing with confirms against the real broker: what cannot be routed comes back as an
//! error instead of disappearing. A lost connection ends the session. Coalesced acks never
//! settle a delivery still being handled.

use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicGetOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use reminder::broker::acks::{AckWindow, Flushed};
use reminder::broker::publisher::Outgoing;
use reminder::broker::{Broker, PublishError, Publisher};
use tokio_util::sync::CancellationToken;

use reminder_harness::prelude::*;

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

/// A consumer on its own connection; closing the connection hands back what it did not ack.
struct Consuming {
    conn: Connection,
    _channel: lapin::Channel,
    _consumer: lapin::Consumer,
}

/// Five deliveries of `m1`..`m5` taken by a consumer, each registered with `window` as the
/// sender does.
async fn five_taken(
    env: &TestEnv,
    window: &AckWindow,
) -> (Consuming, Vec<lapin::message::Delivery>) {
    let amqp = env.amqp().await;
    for i in 1..=5 {
        amqp.publish(
            "maintenance.due",
            format!("m{i}").as_bytes(),
            BasicProperties::default(),
        )
        .await;
    }
    let conn = Connection::connect(AMQP_URL, ConnectionProperties::default())
        .await
        .expect("RabbitMQ is up");
    let channel = conn.create_channel().await.expect("channel");
    channel
        .basic_qos(10, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut consumer = channel
        .basic_consume(
            env.topology().sender_queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let mut taken = Vec::new();
    for _ in 0..5 {
        let d = consumer
            .next()
            .await
            .expect("a delivery")
            .expect("a delivery");
        window.taken(&d);
        taken.push(d);
    }
    let consuming = Consuming {
        conn,
        _channel: channel,
        _consumer: consumer,
    };
    (consuming, taken)
}

/// The bodies the sender queue holds again once `conn` is closed.
async fn handed_back(env: &TestEnv, consuming: Consuming) -> Vec<String> {
    consuming
        .conn
        .close(200, "test done".into())
        .await
        .expect("close");
    let amqp = env.amqp().await;
    let mut back = Vec::new();
    while let Some(m) = amqp
        .channel
        .basic_get(
            env.topology().sender_queue.as_str().into(),
            BasicGetOptions { no_ack: true },
        )
        .await
        .expect("basic.get")
    {
        back.push(String::from_utf8_lossy(&m.delivery.data).into_owned());
    }
    back.sort();
    back
}

#[tokio::test]
async fn a_coalesced_ack_stops_short_of_a_delivery_whose_handler_is_still_running() {
    let env = TestEnv::new();
    let window = AckWindow::default();
    let (conn, taken) = five_taken(&env, &window).await;

    // m3's handler is still running; the others are done, out of order.
    for i in [4, 0, 3, 1] {
        window.finished(&taken[i]);
    }
    let flushed = window
        .flush(Instant::now(), Duration::from_secs(60))
        .await
        .expect("acked");
    assert_eq!(
        flushed,
        Flushed {
            in_run: 2,
            alone: 0,
            waiting: 2
        }
    );

    assert_eq!(handed_back(&env, conn).await, ["m3", "m4", "m5"]);
}

#[tokio::test]
async fn a_finished_delivery_stuck_behind_a_running_one_is_acked_alone_once_it_has_waited() {
    let env = TestEnv::new();
    let window = AckWindow::default();
    let (conn, taken) = five_taken(&env, &window).await;

    // m1 is still running; m4 and m5 finish and wait behind it.
    window.finished(&taken[3]);
    window.finished(&taken[4]);
    let now = Instant::now();
    let early = window
        .flush(now, Duration::from_millis(100))
        .await
        .expect("acked");
    assert_eq!(
        early,
        Flushed {
            in_run: 0,
            alone: 0,
            waiting: 2
        }
    );
    let later = window
        .flush(now + Duration::from_millis(100), Duration::from_millis(100))
        .await
        .expect("acked");
    assert_eq!(
        later,
        Flushed {
            in_run: 0,
            alone: 2,
            waiting: 0
        }
    );

    // m2 was nacked by its handler; the window no longer waits for it, and m3 finishes.
    taken[1]
        .acker
        .nack(lapin::options::BasicNackOptions {
            requeue: true,
            ..Default::default()
        })
        .await
        .expect("nack");
    window.settled_elsewhere(&taken[1]);
    window.finished(&taken[2]);
    window.finished(&taken[0]);
    let rest = window
        .flush(Instant::now(), Duration::from_secs(60))
        .await
        .expect("acked");
    assert_eq!(
        rest,
        Flushed {
            in_run: 2,
            alone: 0,
            waiting: 0
        }
    );

    // Only the nacked one comes back (as a redelivery).
    assert_eq!(handed_back(&env, conn).await, ["m2"]);
}
