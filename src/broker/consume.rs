//! The consume loop the sender and the tracker share. A role says what one unit of work is (the
//! sender: one delivery; the tracker: a batch) and how to handle it; the loop opens sessions,
//! takes deliveries while a slot is free, runs each unit as its own task, and ends the session
//! on shutdown, on a lost connection, or when a unit reports a broker failure.
//!
//! What becomes of a delivery is decided by what went wrong, and only transient failures bring
//! it back:
//! - the broker failed under the work ([`HandleError::Broker`]): the session ends and
//!   reconnects, and what it did not ack is redelivered;
//! - shutdown came first ([`HandleError::Shutdown`]): left unacked, redelivered later;
//! - the database is unreachable: the role waits it out in place (`db::retry`);
//! - the event can never be handled (invalid, or refused by the database for what it is): it is
//!   dead-lettered with its reason ([`Worker::accept`], [`Worker::dead_letter`]) and counted;
//! - the database refused the event for a reason that may pass: it is requeued
//!   ([`Worker::requeue`]), and the queue's delivery limit dead-letters it if it keeps failing.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::BasicNackOptions;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::answer::answered;
use super::connection::Broker;
use super::delivery::{DeliveryExt, dead_letter, with_raw_message};
use super::publisher::{PublishError, Publisher};
use super::session::{Session, end_session, run_sessions};
use super::topology::Topology;
use crate::domain::{EventError, RawMessage};
use crate::metrics::Metrics;

/// Why a unit of work stopped before it was settled.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// Shutdown came first: the deliveries stay unacked and the broker hands them out again
    /// when the channel closes.
    #[error("shutting down")]
    Shutdown,
    /// Transient: the broker failed under the work (a publish, its confirm, an ack). The
    /// session is over; what it did not ack comes back on the next one.
    #[error(transparent)]
    Broker(#[from] PublishError),
}

impl From<lapin::Error> for HandleError {
    fn from(e: lapin::Error) -> Self {
        HandleError::Broker(PublishError::Broker(e))
    }
}

/// A consuming role, as the loop drives it.
pub trait Consume: Send + Sync + 'static {
    /// The role's name in logs and metrics.
    const ROLE: &'static str;
    /// What one slot works on.
    type Work: Send + 'static;
    /// What the work of one session shares, from the session's start to its end.
    type Session: Send + 'static;

    /// Sets up a new session's shared state, once its channel is open.
    fn start(&self, worker: &Worker) -> Self::Session;

    /// Makes one unit of work from its first delivery, taking more from `consumer` when the
    /// role batches. An error is the consumer's: the session ends.
    fn gather(
        &self,
        first: Delivery,
        consumer: &mut lapin::Consumer,
        session: &mut Self::Session,
    ) -> impl Future<Output = anyhow::Result<Self::Work>> + Send;

    /// Handles one unit to its end: acked (or its ack handed on), dead-lettered, requeued, or,
    /// on an error, left for redelivery.
    fn handle(
        self: Arc<Self>,
        work: Self::Work,
        worker: Worker,
    ) -> impl Future<Output = Result<(), HandleError>> + Send;

    /// Settles what the session still owes once it takes no more deliveries and its work is
    /// done or abandoned (the sender's pending acks). Bounded by the shutdown timeout.
    fn finish(&self, session: Self::Session) -> impl Future<Output = ()> + Send;
}

/// Where and how a role consumes.
pub struct ConsumeOptions {
    pub queue: String,
    pub prefetch: u16,
    /// Units of work handled at once.
    pub slots: usize,
    /// How long a stopping session gives its work (`runtime.shutdown_timeout_secs`).
    pub grace: Duration,
}

/// What a unit of work gets from its session: the publisher, the shutdown token, and the
/// shared ways to settle a delivery. Cheap to clone.
#[derive(Clone)]
pub struct Worker {
    role: &'static str,
    publisher: Publisher,
    topology: Arc<Topology>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    broken: CancellationToken,
}

impl Worker {
    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    /// The process's shutdown.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Ends the session: something under it is broken (its work will be redelivered).
    pub fn break_session(&self) {
        self.broken.cancel();
    }

    /// Parses `delivery` with `parse`. An event that can never be handled is dead-lettered
    /// with its reason and counted as `dead_lettered` for `event_type`, and `None` returned;
    /// the caller still acks the delivery.
    pub async fn accept<T>(
        &self,
        delivery: &Delivery,
        event_type: &str,
        parse: impl FnOnce(&RawMessage<'_>) -> Result<T, EventError>,
    ) -> Result<Option<T>, HandleError> {
        match with_raw_message(delivery, parse) {
            Ok(v) => Ok(Some(v)),
            Err(e) => {
                tracing::warn!(
                    role = self.role,
                    event_id = %delivery.id_hint(),
                    reason = %e,
                    "dead-lettering an invalid {event_type}"
                );
                self.dead_letter(delivery, e.code(), &e.to_string()).await?;
                self.metrics
                    .consumed(self.role, event_type, "dead_lettered");
                Ok(None)
            }
        }
    }

    /// Publishes `delivery` to the dead-letter exchange with its reason, waits for the confirm,
    /// and counts it under `code`. The caller acks the original afterwards.
    pub async fn dead_letter(
        &self,
        delivery: &Delivery,
        code: &str,
        reason: &str,
    ) -> Result<(), HandleError> {
        dead_letter(
            &self.publisher,
            &self.topology,
            delivery,
            self.role,
            code,
            reason,
        )
        .await?;
        self.metrics.dead_lettered(self.role, code);
        Ok(())
    }

    /// Hands `delivery` back to its queue to be tried again, counted as an `error` of
    /// `event_type`.
    pub async fn requeue(&self, delivery: &Delivery, event_type: &str) -> Result<(), HandleError> {
        self.metrics.consumed(self.role, event_type, "error");
        answered(
            "requeueing a delivery",
            delivery.acker.nack(BasicNackOptions {
                requeue: true,
                ..Default::default()
            }),
        )
        .await?;
        Ok(())
    }
}

/// Consumes for `role` until `shutdown`, reconnecting whenever the broker goes away.
pub async fn run<R: Consume>(
    role: Arc<R>,
    broker: &Broker,
    metrics: &Arc<Metrics>,
    options: &ConsumeOptions,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let topology = Arc::new(broker.topology());
    run_sessions(broker.settings(), R::ROLE, shutdown, || {
        session(
            role.clone(),
            broker,
            topology.clone(),
            metrics.clone(),
            options,
            shutdown,
        )
    })
    .await
}

/// One session: takes deliveries while a slot is free until shutdown or until the session
/// breaks, then ends it (`end_session`).
async fn session<R: Consume>(
    role: Arc<R>,
    broker: &Broker,
    topology: Arc<Topology>,
    metrics: Arc<Metrics>,
    options: &ConsumeOptions,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let Some(Session {
        channel,
        lost,
        publisher,
        mut consumer,
    }) = Session::open(
        broker,
        &topology,
        &options.queue,
        options.prefetch,
        shutdown,
    )
    .await?
    else {
        return Ok(());
    };
    // Cancelled by a unit of work that lost the broker: the session is over.
    let broken = CancellationToken::new();
    let worker = Worker {
        role: R::ROLE,
        publisher: publisher.clone(),
        topology,
        metrics,
        shutdown: shutdown.clone(),
        broken: broken.clone(),
    };
    let mut state = role.start(&worker);
    let slots = Arc::new(Semaphore::new(options.slots));
    let mut tasks = JoinSet::new();
    let lost_connection = || anyhow::anyhow!("the broker connection was lost");
    let broken_session = || anyhow::anyhow!("a {} task lost the broker connection", R::ROLE);
    let result: anyhow::Result<()> = loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            _ = lost.cancelled() => break Err(lost_connection()),
            _ = broken.cancelled() => break Err(broken_session()),
            p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let first = tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            _ = lost.cancelled() => break Err(lost_connection()),
            _ = broken.cancelled() => break Err(broken_session()),
            next = consumer.next() => match next {
                Some(Ok(d)) => d,
                Some(Err(e)) => break Err(e).with_context(|| format!("the {} consumer failed", R::ROLE)),
                None => break Err(anyhow::anyhow!("the broker cancelled the {} consumer", R::ROLE)),
            },
        };
        let work = match role.gather(first, &mut consumer, &mut state).await {
            Ok(work) => work,
            Err(e) => break Err(e),
        };
        while tasks.try_join_next().is_some() {}
        let (role, worker) = (role.clone(), worker.clone());
        tasks.spawn(async move {
            let _permit = permit;
            match role.handle(work, worker.clone()).await {
                Ok(()) | Err(HandleError::Shutdown) => {}
                Err(e @ HandleError::Broker(_)) => {
                    tracing::warn!(role = R::ROLE, error = %e, "broker failure while handling deliveries; they will be redelivered");
                    worker.break_session();
                }
            }
        });
    };
    end_session(
        &channel,
        &consumer,
        &mut tasks,
        &publisher,
        options.grace,
        R::ROLE,
        role.finish(state),
    )
    .await;
    result
}
