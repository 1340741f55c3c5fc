//! RabbitMQ plumbing shared by every role: one supervised connection per process that fails
//! over between cluster nodes and reconnects with back-off, the topology, confirmed publishing,
//! and the helpers that read deliveries and dead-letter them with a reason.
//!
//! Reconnection is explicit rather than lapin's auto-recovery: when the connection drops, every
//! role's session ends, unacked deliveries go back to their queues, and each role opens fresh
//! channels, re-declares its topology and resumes consuming. Redelivery is safe because every
//! stage is idempotent, and it is the simplest thing to reason about at each crash point.
//! Sessions do not rely on lapin reporting the loss on each consumer and pending operation: the
//! supervisor cancels the lost connection's token (`Broker::session_channel`), and every broker
//! operation a session awaits is bounded (`answered`).

pub mod delivery;
pub mod pipeline;
pub mod publisher;
pub mod topology;

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::{Connection, ConnectionProperties, Event};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::configuration::AmqpSettings;

pub use delivery::{DeliveryExt, dead_letter};
pub use publisher::{PublishError, Publisher};
pub use topology::Topology;

/// A process's connection to the broker, kept alive by a supervisor task.
#[derive(Clone)]
pub struct Broker {
    state: watch::Receiver<Option<Live>>,
    settings: Arc<AmqpSettings>,
}

/// The connection the supervisor holds, and the token it cancels when it sees it fail.
#[derive(Clone)]
struct Live {
    conn: Arc<Connection>,
    lost: CancellationToken,
}

/// How long one broker operation (open a channel, declare, consume, ack, publish and confirm)
/// may wait for RabbitMQ before the session counts as broken. An operation whose frame was
/// queued just as the connection died can stay pending for good, and a quorum queue the broker
/// is still recovering can leave a declare unanswered; bounded, either ends the session and the
/// session loop reconnects instead of waiting on a connection that is gone.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// `operation`, or a time-out error naming `what` once `ANSWER_TIMEOUT` has passed.
pub async fn answered<T>(
    what: &str,
    operation: impl Future<Output = Result<T, lapin::Error>>,
) -> Result<T, lapin::Error> {
    match tokio::time::timeout(ANSWER_TIMEOUT, operation).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "RabbitMQ did not answer {what} within {} s",
                ANSWER_TIMEOUT.as_secs()
            ),
        )
        .into()),
    }
}

impl Broker {
    /// Starts the supervisor; it connects in the background and keeps reconnecting until
    /// `shutdown` is cancelled, then closes the connection.
    pub fn start(settings: &AmqpSettings, name: &str, shutdown: CancellationToken) -> Broker {
        let (tx, rx) = watch::channel(None);
        let settings = Arc::new(settings.clone());
        tokio::spawn(supervise(settings.clone(), name.to_string(), tx, shutdown));
        Broker {
            state: rx,
            settings,
        }
    }

    pub fn settings(&self) -> &AmqpSettings {
        &self.settings
    }

    pub fn topology(&self) -> Topology {
        Topology::new(&self.settings)
    }

    pub fn is_connected(&self) -> bool {
        self.state
            .borrow()
            .as_ref()
            .is_some_and(|l| l.conn.status().connected())
    }

    /// Waits for a live connection; `None` once `shutdown` is cancelled.
    pub async fn connection(&self, shutdown: &CancellationToken) -> Option<Arc<Connection>> {
        Some(self.live(shutdown).await?.conn)
    }

    async fn live(&self, shutdown: &CancellationToken) -> Option<Live> {
        let mut rx = self.state.clone();
        loop {
            if let Some(live) = rx.borrow_and_update().as_ref()
                && live.conn.status().connected()
            {
                return Some(live.clone());
            }
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                changed = rx.changed() => if changed.is_err() { return None },
                // The supervisor may not have noticed a dead connection yet.
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        }
    }

    /// Opens a channel on the live connection, waiting for one if needed.
    pub async fn channel(&self, shutdown: &CancellationToken) -> Option<lapin::Channel> {
        Some(self.session_channel(shutdown).await?.0)
    }

    /// A channel for a consuming session, and a token cancelled once the supervisor sees the
    /// connection under it fail: the session ends then, whether or not lapin ever reports the
    /// loss on the session's own consumer or pending operations.
    pub async fn session_channel(
        &self,
        shutdown: &CancellationToken,
    ) -> Option<(lapin::Channel, CancellationToken)> {
        let mut backoff = Backoff::new(
            Duration::from_millis(self.settings.reconnect_initial_ms),
            Duration::from_millis(self.settings.reconnect_max_ms),
        );
        loop {
            let live = self.live(shutdown).await?;
            match answered("opening a channel", live.conn.create_channel()).await {
                Ok(channel) => return Some((channel, live.lost)),
                Err(e) => {
                    tracing::warn!(error = %e, "could not open a channel; retrying");
                    if !backoff.sleep(shutdown).await {
                        return None;
                    }
                }
            }
        }
    }
}

async fn supervise(
    settings: Arc<AmqpSettings>,
    name: String,
    tx: watch::Sender<Option<Live>>,
    shutdown: CancellationToken,
) {
    let nodes = settings.node_urls();
    let mut node = 0usize;
    let mut backoff = Backoff::new(
        Duration::from_millis(settings.reconnect_initial_ms),
        Duration::from_millis(settings.reconnect_max_ms),
    );
    while !shutdown.is_cancelled() {
        let url = &nodes[node % nodes.len()];
        let host = node_host(url);
        let props = ConnectionProperties::default().with_connection_name(name.clone().into());
        let connected = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = tokio::time::timeout(Duration::from_secs(10), Connection::connect(url, props)) => r,
        };
        let conn = match connected {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                tracing::warn!(broker = %host, error = %e, "cannot connect to RabbitMQ; retrying");
                node += 1;
                if !backoff.sleep(&shutdown).await {
                    break;
                }
                continue;
            }
            Err(_) => {
                tracing::warn!(broker = %host, "connecting to RabbitMQ timed out; retrying");
                node += 1;
                if !backoff.sleep(&shutdown).await {
                    break;
                }
                continue;
            }
        };
        backoff.reset();
        tracing::info!(broker = %host, "connected to RabbitMQ");
        let mut events = conn.events_listener();
        let conn = Arc::new(conn);
        let lost = CancellationToken::new();
        tx.send_replace(Some(Live {
            conn: conn.clone(),
            lost: lost.clone(),
        }));
        let mut poll = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                event = events.next() => match event {
                    Some(Event::Error(e)) => {
                        tracing::warn!(broker = %host, error = %e, "lost the RabbitMQ connection");
                        break;
                    }
                    Some(Event::ConnectionBlocked(reason)) => {
                        tracing::warn!(broker = %host, %reason, "RabbitMQ blocked publishing");
                    }
                    Some(_) => {}
                    None => break,
                },
                _ = poll.tick() => if !conn.status().connected() {
                    tracing::warn!(broker = %host, "RabbitMQ connection is no longer open");
                    break;
                },
            }
        }
        tx.send_replace(None);
        if shutdown.is_cancelled() {
            // Roles close their own channels first; give them a moment before the connection goes.
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                conn.close(200, "reminder shutting down".into()),
            )
            .await;
            break;
        }
        // Not on shutdown (above): sessions end through `shutdown` then and finish their work.
        lost.cancel();
        let _ = answered(
            "closing the connection",
            conn.close(320, "reconnecting".into()),
        )
        .await;
        node += 1;
        if !backoff.sleep(&shutdown).await {
            break;
        }
    }
    tx.send_replace(None);
}

/// The loop every consuming role runs: `session` opens channels, consumes and returns `Ok` on
/// shutdown; when it fails (the broker went away, a channel broke) a new one is opened after a
/// back-off. Unacked deliveries of the failed session go back to their queues meanwhile.
pub async fn run_sessions<F, Fut>(
    settings: &AmqpSettings,
    role: &'static str,
    shutdown: &CancellationToken,
    mut session: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut backoff = Backoff::new(
        Duration::from_millis(settings.reconnect_initial_ms),
        Duration::from_millis(settings.reconnect_max_ms),
    );
    loop {
        match session().await {
            Ok(()) => return Ok(()),
            Err(e) => {
                tracing::warn!(role, error = %format!("{e:#}"), "lost the broker session; reconnecting");
                if !backoff.sleep(shutdown).await {
                    return Ok(());
                }
            }
        }
    }
}

/// How a consuming session ends: stop taking deliveries, give the work in flight until `grace`
/// to finish (and ack), then close the channel and the publisher. On a connection that is gone
/// the work may never finish; what is abandoned was not acked and comes back as redeliveries.
pub async fn end_session(
    channel: &lapin::Channel,
    consumer: &lapin::Consumer,
    tasks: &mut tokio::task::JoinSet<()>,
    publisher: &Publisher,
    grace: Duration,
    role: &'static str,
) {
    let _ = answered(
        "cancelling the consumer",
        channel.basic_cancel(
            consumer.tag(),
            lapin::options::BasicCancelOptions::default(),
        ),
    )
    .await;
    if tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        tracing::warn!(
            role,
            in_flight = tasks.len(),
            "work still in flight after the shutdown timeout; it will be redelivered"
        );
        tasks.abort_all();
    }
    let _ = answered(
        "closing the channel",
        channel.close(200, format!("{role} stopping").as_str().into()),
    )
    .await;
    publisher.close().await;
}

/// `host:port` of a node URL, without credentials, for logs.
pub fn node_host(url: &str) -> String {
    lapin::uri::AMQPUri::from_str(url)
        .map(|u| format!("{}:{}", u.authority.host, u.authority.port))
        .unwrap_or_else(|_| "<invalid url>".into())
}

/// Exponential back-off with full jitter, for reconnecting to the broker and the database.
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            attempt: 0,
        }
    }
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
    pub fn next_delay(&mut self) -> Duration {
        let exp = self
            .initial
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let jitter = rand::random_range(0.5..=1.0);
        exp.mul_f64(jitter)
    }
    /// Sleeps for the next delay; false when shutdown came first.
    pub async fn sleep(&mut self, shutdown: &CancellationToken) -> bool {
        let delay = self.next_delay();
        tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_under_the_cap() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let first = b.next_delay();
        assert!(first <= Duration::from_millis(100) && first >= Duration::from_millis(50));
        for _ in 0..20 {
            assert!(b.next_delay() <= Duration::from_secs(2));
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn node_hosts_never_show_credentials() {
        let h = node_host("amqp://guest:secret@rabbit-1:5672/%2f");
        assert_eq!(h, "rabbit-1:5672");
    }
}
