//! Publishing a stream of messages with a window of unconfirmed publishes in flight (the
//! producer's scan). A message leaves the window only when the broker confirmed it; a nack, a
//! return or a lost connection puts it back to be published again on a fresh channel, so a
//! broker restart mid-scan forgets nothing. Downstream dedupes by event id, so a message that
//! was in fact stored before the connection dropped does no harm when published twice.

use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use tokio_util::sync::CancellationToken;

use super::Broker;
use super::publisher::{Outgoing, PublishError, Publisher};
use crate::backoff::Backoff;

/// A publish waiting for its confirm: the channel generation it went out on, the message (to
/// publish again if it is not confirmed) and the broker's answer.
type PendingConfirm = BoxFuture<'static, (u64, Outgoing, Result<(), PublishError>)>;

pub struct PipelinedPublisher<'a> {
    broker: &'a Broker,
    shutdown: &'a CancellationToken,
    publisher: Option<Publisher>,
    window: usize,
    in_flight: FuturesUnordered<PendingConfirm>,
    /// Bumped whenever the channel is replaced; failures from older channels are expected.
    generation: u64,
    backoff: Backoff,
    confirmed: u64,
    republished: u64,
}

impl<'a> PipelinedPublisher<'a> {
    pub fn new(broker: &'a Broker, shutdown: &'a CancellationToken, window: usize) -> Self {
        let s = broker.settings();
        PipelinedPublisher {
            broker,
            shutdown,
            publisher: None,
            window: window.max(1),
            in_flight: FuturesUnordered::new(),
            generation: 0,
            backoff: Backoff::new(
                Duration::from_millis(s.reconnect_initial_ms),
                Duration::from_millis(s.reconnect_max_ms),
            ),
            confirmed: 0,
            republished: 0,
        }
    }

    /// Messages confirmed so far.
    pub fn confirmed(&self) -> u64 {
        self.confirmed
    }

    /// Messages published again after a nack, a return or a lost channel.
    pub fn republished(&self) -> u64 {
        self.republished
    }

    /// Queues one message, first waiting for room in the window. Errors only on shutdown.
    pub async fn send(&mut self, message: Outgoing) -> Result<(), PublishError> {
        while self.in_flight.len() >= self.window {
            self.reap_one().await?;
        }
        self.start(message).await
    }

    /// Waits until every message sent so far is confirmed. Errors only on shutdown.
    pub async fn flush(&mut self) -> Result<u64, PublishError> {
        while !self.in_flight.is_empty() {
            self.reap_one().await?;
        }
        Ok(self.confirmed)
    }

    async fn publisher(&mut self) -> Result<Publisher, PublishError> {
        loop {
            if let Some(p) = &self.publisher {
                return Ok(p.clone());
            }
            match open(self.broker, self.shutdown).await {
                Ok(p) => {
                    self.generation += 1;
                    self.publisher = Some(p.clone());
                    return Ok(p);
                }
                Err(PublishError::Shutdown) => return Err(PublishError::Shutdown),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot open a publishing channel; retrying");
                    self.pause().await?;
                }
            }
        }
    }

    async fn pause(&mut self) -> Result<(), PublishError> {
        if self.backoff.sleep(self.shutdown).await {
            Ok(())
        } else {
            Err(PublishError::Shutdown)
        }
    }

    async fn start(&mut self, message: Outgoing) -> Result<(), PublishError> {
        loop {
            let publisher = self.publisher().await?;
            match publisher.start(message.clone()).await {
                Ok(confirm) => {
                    let generation = self.generation;
                    self.in_flight.push(Box::pin(
                        async move { (generation, message, confirm.await) },
                    ));
                    return Ok(());
                }
                Err(e) => {
                    tracing::warn!(error = %e, "publish failed; reopening the channel");
                    self.publisher = None;
                    self.pause().await?;
                }
            }
        }
    }

    async fn reap_one(&mut self) -> Result<(), PublishError> {
        let Some((generation, message, result)) = self.in_flight.next().await else {
            return Ok(());
        };
        match result {
            Ok(()) => {
                self.confirmed += 1;
                self.backoff.reset();
                Ok(())
            }
            Err(e) => {
                self.republished += 1;
                if generation == self.generation {
                    tracing::warn!(error = %e, "a publish was not confirmed; publishing it again");
                    if !matches!(e, PublishError::Nacked) {
                        self.publisher = None;
                    }
                    self.pause().await?;
                }
                self.start(message).await
            }
        }
    }
}

async fn open(broker: &Broker, shutdown: &CancellationToken) -> Result<Publisher, PublishError> {
    let publisher = Publisher::open(broker, shutdown).await?;
    // Declaring makes sure a message is never unroutable because a queue is missing.
    broker.topology().declare(publisher.channel()).await?;
    Ok(publisher)
}
