//! A consuming role's sessions: one channel with its topology, prefetch, publisher and consumer,
//! opened again after a back-off whenever the broker goes away, and ended in order on shutdown.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::answer::answered;
use super::connection::Broker;
use super::publisher::{PublishError, Publisher};
use super::topology::Topology;
use crate::backoff::Backoff;
use crate::configuration::AmqpSettings;

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
    // at, longer than the process's own shutdown bound allows.
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
