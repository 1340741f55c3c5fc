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

pub mod acks;
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

use crate::backoff::Backoff;
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

/// `operation`, or a time-out error naming `what` once `ANSWER_TIMEOUT` has passed without an
/// answer. Time during which RabbitMQ blocked the connection (a memory or disk alarm) does not
/// count: a blocked connection sends nothing, so every operation waits for the alarm to clear,
/// and reconnecting would only hand the work in flight out again into the same alarm.
pub async fn answered<T>(
    what: &str,
    operation: impl Future<Output = Result<T, lapin::Error>>,
) -> Result<T, lapin::Error> {
    tokio::pin!(operation);
    loop {
        match tokio::time::timeout(ANSWER_TIMEOUT, &mut operation).await {
            Ok(result) => return result,
            Err(_) if blocking::within(ANSWER_TIMEOUT) => continue,
            Err(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "RabbitMQ did not answer {what} within {} s",
                        ANSWER_TIMEOUT.as_secs()
                    ),
                )
                .into());
            }
        }
    }
}

/// Whether RabbitMQ is blocking this process's connections, as its `connection.blocked` and
/// `connection.unblocked` notices say. Process-wide rather than per connection because the
/// alarms behind the notices are: a memory or disk alarm on any node blocks publishing
/// connections on every node of the cluster.
pub mod blocking {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    /// Connections RabbitMQ is blocking right now.
    static BLOCKED: AtomicUsize = AtomicUsize::new(0);
    /// When the last block ended, in milliseconds since `epoch()` plus one; 0 for never.
    static ENDED_MS: AtomicU64 = AtomicU64::new(0);

    fn epoch() -> Instant {
        static EPOCH: OnceLock<Instant> = OnceLock::new();
        *EPOCH.get_or_init(Instant::now)
    }

    fn now_ms() -> u64 {
        epoch().elapsed().as_millis() as u64 + 1
    }

    /// One connection's block, from `connection.blocked` until `connection.unblocked` or the
    /// connection's end (a new connection is not blocked until RabbitMQ says so).
    #[derive(Default)]
    pub struct Block {
        on: bool,
    }

    impl Block {
        pub fn start(&mut self) {
            epoch();
            if !std::mem::replace(&mut self.on, true) {
                BLOCKED.fetch_add(1, Ordering::SeqCst);
            }
        }

        pub fn end(&mut self) {
            if std::mem::replace(&mut self.on, false) {
                ENDED_MS.store(now_ms(), Ordering::SeqCst);
                BLOCKED.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    impl Drop for Block {
        fn drop(&mut self) {
            self.end();
        }
    }

    /// Whether some connection of this process is blocked now.
    pub fn is_blocked() -> bool {
        BLOCKED.load(Ordering::SeqCst) > 0
    }

    /// Whether some connection is blocked now or was at some moment of the last `window`.
    pub fn within(window: Duration) -> bool {
        if is_blocked() {
            return true;
        }
        let ended = ENDED_MS.load(Ordering::SeqCst);
        ended != 0 && now_ms().saturating_sub(ended) <= window.as_millis() as u64
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
        let mut block = blocking::Block::default();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                event = events.next() => match event {
                    Some(Event::Error(e)) => {
                        tracing::warn!(broker = %host, error = %e, "lost the RabbitMQ connection");
                        break;
                    }
                    Some(Event::ConnectionBlocked(reason)) => {
                        tracing::warn!(
                            broker = %host,
                            %reason,
                            "RabbitMQ is blocking this connection (a resource alarm); publishing \
                             and acking wait until it clears"
                        );
                        block.start();
                    }
                    Some(Event::ConnectionUnblocked) => {
                        tracing::info!(broker = %host, "RabbitMQ unblocked this connection");
                        block.end();
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
        block.end();
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

/// A consuming session: its channel (topology declared, prefetch set), the token cancelled when
/// its connection is lost, a confirm-mode publisher, and the consumer of `queue`.
pub struct Session {
    pub channel: lapin::Channel,
    pub lost: CancellationToken,
    pub publisher: Publisher,
    pub consumer: lapin::Consumer,
}

impl Session {
    /// Opens a session with every step bounded by `answered`; `None` once `shutdown` is
    /// cancelled.
    pub async fn open(
        broker: &Broker,
        topology: &Topology,
        queue: &str,
        prefetch: u16,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Option<Session>> {
        use anyhow::Context as _;
        let Some((channel, lost)) = broker.session_channel(shutdown).await else {
            return Ok(None);
        };
        answered("declaring the topology", topology.declare(&channel))
            .await
            .context("declaring the topology")?;
        answered(
            "setting the prefetch",
            channel.basic_qos(prefetch, lapin::options::BasicQosOptions::default()),
        )
        .await?;
        let publisher = match Publisher::open(broker, shutdown).await {
            Ok(p) => p,
            Err(PublishError::Shutdown) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let consumer = answered(
            "consuming a queue",
            channel.basic_consume(
                queue.into(),
                "".into(),
                lapin::options::BasicConsumeOptions::default(),
                lapin::types::FieldTable::default(),
            ),
        )
        .await
        .with_context(|| format!("consuming {queue}"))?;
        Ok(Some(Session {
            channel,
            lost,
            publisher,
            consumer,
        }))
    }
}

/// How a consuming session ends: stop taking deliveries, let the work in flight finish (and
/// ack), run `settle` (acks still owed for finished work), then close the channel and the
/// publisher. Cancelling, the work and `settle` share one `grace`, the shutdown timeout the
/// README promises: on a connection that is gone or a broker that stopped answering they may
/// never finish, and what is abandoned (dropped, so its guards abort what it started) was not
/// acked and comes back as redeliveries. Closing gets what is left of `grace`, and at least
/// `CLOSE_BOUND` after it.
pub async fn end_session(
    channel: &lapin::Channel,
    consumer: &lapin::Consumer,
    tasks: &mut tokio::task::JoinSet<()>,
    publisher: &Publisher,
    grace: Duration,
    role: &'static str,
    settle: impl Future<Output = ()>,
) {
    let deadline = tokio::time::Instant::now() + grace;
    // Bounded by the deadline, not only by `answered`: a broker that stopped answering would
    // otherwise hold every stopping session for `ANSWER_TIMEOUT` before its work is even looked
    // at (measured: the process's own last resort ended it instead, 5 s after the timeout).
    let _ = tokio::time::timeout_at(
        deadline,
        answered(
            "cancelling the consumer",
            channel.basic_cancel(
                consumer.tag(),
                lapin::options::BasicCancelOptions::default(),
            ),
        ),
    )
    .await;
    if tokio::time::timeout_at(deadline, async {
        while tasks.join_next().await.is_some() {}
    })
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
    // What is left of the time. When the handlers used it all up, the acks owed are abandoned
    // too: those deliveries come back and re-publish their recorded outcome without a send.
    if tokio::time::timeout_at(deadline, settle).await.is_err() {
        tracing::warn!(
            role,
            "acks still owed after the shutdown timeout; those deliveries will be redelivered"
        );
    }
    // A close hands what this session did not ack back to the queue at once; a broker that
    // does not answer it learns the same when the process's connection closes.
    let close_by = deadline.max(tokio::time::Instant::now() + CLOSE_BOUND);
    let closed = tokio::time::timeout_at(close_by, async {
        let _ = answered(
            "closing the channel",
            channel.close(200, format!("{role} stopping").as_str().into()),
        )
        .await;
        publisher.close().await;
    })
    .await;
    if closed.is_err() {
        tracing::warn!(
            role,
            "RabbitMQ did not answer the channel close; leaving it to the connection's end"
        );
    }
}

/// How long a stopping session waits for its channels to close after the shutdown timeout.
const CLOSE_BOUND: Duration = Duration::from_secs(1);

/// `host:port` of a node URL, without credentials, for logs.
pub fn node_host(url: &str) -> String {
    lapin::uri::AMQPUri::from_str(url)
        .map(|u| format!("{}:{}", u.authority.host, u.authority.port))
        .unwrap_or_else(|_| "<invalid url>".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    // The only test that touches the process-wide block state.
    #[tokio::test(start_paused = true)]
    async fn an_operation_waits_past_the_bound_only_while_rabbitmq_blocks_the_connection() {
        let unanswered = answered("a confirm", std::future::pending::<Result<(), _>>()).await;
        assert!(unanswered.is_err(), "unblocked, the bound applies");

        let mut block = blocking::Block::default();
        block.start();
        block.start();
        assert!(blocking::is_blocked());
        let slow = async {
            tokio::time::sleep(ANSWER_TIMEOUT * 3).await;
            Ok::<_, lapin::Error>("confirmed")
        };
        assert_eq!(answered("a confirm", slow).await.unwrap(), "confirmed");

        block.end();
        assert!(
            !blocking::is_blocked(),
            "one connection, however often blocked"
        );
        assert!(
            blocking::within(ANSWER_TIMEOUT),
            "what was waiting when the block ended gets one more bound"
        );
        std::thread::sleep(Duration::from_millis(5));
        assert!(!blocking::within(Duration::from_millis(1)));
        block.end();
        assert!(!blocking::is_blocked());
    }

    #[test]
    fn node_hosts_never_show_credentials() {
        let h = node_host("amqp://guest:secret@rabbit-1:5672/%2f");
        assert_eq!(h, "rabbit-1:5672");
    }
}
