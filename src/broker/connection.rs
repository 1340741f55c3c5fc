//! One supervised connection per process: it fails over between cluster nodes, reconnects with
//! back-off, watches for RabbitMQ blocking it, and tells the sessions on it when it is lost.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::{Connection, ConnectionProperties, Event};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::Topology;
use super::answer::{answered, blocking};
use crate::backoff::Backoff;
use crate::configuration::AmqpSettings;

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

/// `host:port` of a node URL, without credentials, for logs.
pub fn node_host(url: &str) -> String {
    lapin::uri::AMQPUri::from_str(url)
        .map(|u| format!("{}:{}", u.authority.host, u.authority.port))
        .unwrap_or_else(|_| "<invalid url>".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_hosts_never_show_credentials() {
        let h = node_host("amqp://guest:secret@rabbit-1:5672/%2f");
        assert_eq!(h, "rabbit-1:5672");
    }
}
