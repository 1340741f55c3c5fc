//! The tracker role: consumes `message.sent` and `message.failed` and keeps `whatsapp_report`
//! (frequency and last message date per customer and vehicle) and the message history.
//!
//! Deliveries are gathered into batches (up to `tracker.batch_size`, or whatever arrived within
//! `tracker.batch_linger_ms`), applied in one statement that dedupes by event id, and acked with
//! one multiple-ack after the commit. Up to `tracker.batches_in_flight` batches are written at
//! once (one statement keeps one PostgreSQL backend, so one core, busy), and acked in delivery
//! order. A crash between commit and ack redelivers the batch, and
//! the dedupe makes it count zero more. A bad event is dead-lettered on its own; if the database
//! refuses a batch for a reason other than an outage, the batch is split until the offending
//! event is found and dead-lettered, and the rest are applied.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::{FutureExt as _, StreamExt};
use lapin::message::Delivery;
use lapin::options::BasicAckOptions;
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::broker::delivery::with_raw_message;
use crate::broker::{
    DeliveryExt, PublishError, Publisher, Session, Topology, answered, dead_letter,
};
use crate::context::AppContext;
use crate::db::retry::DbError;
use crate::db::tracking::{Applied, Expect, apply_batch_expecting};
use crate::domain::{IncomingEvent, MessageOutcome};

const ROLE: &str = "tracker";

/// How long a batch being gathered under load waits for more deliveries between looks.
const GATHER_TICK: Duration = Duration::from_millis(1);

pub struct Tracker {
    ctx: AppContext,
    topology: Topology,
}

#[derive(Debug, thiserror::Error)]
enum BatchError {
    #[error("shutting down")]
    Shutdown,
    #[error(transparent)]
    Broker(#[from] PublishError),
    #[error("broker: {0}")]
    Ack(#[from] lapin::Error),
}

impl Tracker {
    pub fn new(ctx: AppContext) -> Tracker {
        Tracker {
            topology: ctx.broker.topology(),
            ctx,
        }
    }

    /// Consumes until `shutdown`, reconnecting whenever the broker goes away.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(queue = %self.topology.tracker_queue, "tracker started");
        crate::broker::run_sessions(&self.ctx.settings.amqp, ROLE, &shutdown, || {
            self.clone().session(&shutdown)
        })
        .await
    }

    async fn session(self: Arc<Self>, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let batch_size = self.ctx.settings.tracker.batch_size;
        let in_flight = self.ctx.settings.tracker.batches_in_flight;
        // Every batch in flight, the one being gathered, and the next: its deliveries are on
        // their way while the batch before it is gathered instead of after that one's ack.
        let prefetch = (batch_size * (in_flight + 2)).min(u16::MAX as usize) as u16;
        let Some(Session {
            channel,
            lost,
            publisher,
            mut consumer,
        }) = Session::open(
            &self.ctx.broker,
            &self.topology,
            &self.topology.tracker_queue,
            prefetch,
            shutdown,
        )
        .await?
        else {
            return Ok(());
        };
        let linger = Duration::from_millis(self.ctx.settings.tracker.batch_linger_ms);
        let slots = Arc::new(Semaphore::new(in_flight));
        // Cancelled by a batch that lost the broker: the session is over.
        let broken = CancellationToken::new();
        let mut tasks = JoinSet::new();
        // Resolves once the previous batch is acked (true) or will never be (false).
        let mut previous: Option<oneshot::Receiver<bool>> = None;
        let result: anyhow::Result<()> = 'session: loop {
            let permit = tokio::select! {
                _ = shutdown.cancelled() => break Ok(()),
                _ = lost.cancelled() => break Err(anyhow::anyhow!("the broker connection was lost")),
                _ = broken.cancelled() => break Err(anyhow::anyhow!("a batch lost the broker connection")),
                p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            };
            let mut batch = Vec::with_capacity(batch_size);
            tokio::select! {
                _ = shutdown.cancelled() => break Ok(()),
                _ = lost.cancelled() => break Err(anyhow::anyhow!("the broker connection was lost")),
                _ = broken.cancelled() => break Err(anyhow::anyhow!("a batch lost the broker connection")),
                next = consumer.next() => match next {
                    Some(Ok(d)) => batch.push(d),
                    Some(Err(e)) => break Err(e).context("the tracker consumer failed"),
                    None => break Err(anyhow::anyhow!("the broker cancelled the tracker consumer")),
                },
            }
            let deadline = tokio::time::Instant::now() + linger;
            'gather: while batch.len() < batch_size {
                // Under load, take what has arrived without asking to be woken for each
                // delivery, then wait a tick for more: a wake-up per delivery was 0.85 context
                // switches per event at 28,000 events/s. When nothing has arrived, wait for the
                // next delivery as usual, so a quiet queue costs no polling.
                let before = batch.len();
                while batch.len() < batch_size {
                    match consumer.next().now_or_never() {
                        Some(Some(Ok(d))) => batch.push(d),
                        Some(Some(Err(e))) => {
                            // The channel is gone, so these cannot be acked: they come back.
                            drop(batch);
                            break 'session Err(e).context("the tracker consumer failed");
                        }
                        Some(None) => break 'gather,
                        None => break,
                    }
                }
                if batch.len() >= batch_size {
                    break;
                }
                let now = tokio::time::Instant::now();
                if now >= deadline {
                    break;
                }
                if batch.len() > before {
                    tokio::time::sleep_until((now + GATHER_TICK).min(deadline)).await;
                    continue;
                }
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => break,
                    next = consumer.next() => match next {
                        Some(Ok(d)) => batch.push(d),
                        Some(Err(e)) => {
                            drop(batch);
                            break 'session Err(e).context("the tracker consumer failed");
                        }
                        None => break,
                    },
                }
            }
            while tasks.try_join_next().is_some() {}
            let (done, next) = oneshot::channel();
            let after = previous.replace(next);
            let tracker = self.clone();
            let publisher = publisher.clone();
            let shutdown = shutdown.clone();
            let broken = broken.clone();
            tasks.spawn(async move {
                let _permit = permit;
                let acked = tracker
                    .process(&publisher, batch, after, &shutdown)
                    .await;
                match acked {
                    Ok(()) => {
                        let _ = done.send(true);
                    }
                    Err(BatchError::Shutdown) => {
                        let _ = done.send(false);
                    }
                    Err(e) => {
                        let _ = done.send(false);
                        tracing::warn!(error = %e, "broker failure while recording a batch; it will be redelivered");
                        broken.cancel();
                    }
                }
            });
        };
        let grace = self.ctx.settings.runtime.shutdown_timeout();
        crate::broker::end_session(
            &channel,
            &consumer,
            &mut tasks,
            &publisher,
            grace,
            ROLE,
            async {},
        )
        .await;
        result
    }

    /// Applies one batch and, once the batch before it is acked, acks it. Batches are written
    /// concurrently but acked in delivery order: a multiple-ack covers every earlier delivery,
    /// so it must never go out while an earlier batch is uncommitted.
    async fn process(
        &self,
        publisher: &Publisher,
        batch: Vec<Delivery>,
        after: Option<oneshot::Receiver<bool>>,
        session_shutdown: &CancellationToken,
    ) -> Result<(), BatchError> {
        let Some(last) = batch.last() else {
            return Ok(());
        };
        // A batch in progress finishes even during shutdown, so its acks go out; only an
        // outage the shutdown interrupts stops it.
        let never = CancellationToken::new();
        let shutdown = if session_shutdown.is_cancelled() {
            &never
        } else {
            session_shutdown
        };
        let started = Instant::now();
        let mut valid: Vec<(&Delivery, MessageOutcome)> = Vec::with_capacity(batch.len());
        for delivery in &batch {
            let parsed = with_raw_message(delivery, |raw| {
                IncomingEvent::parse(raw, self.ctx.settings.amqp.max_message_bytes)
                    .and_then(|e| MessageOutcome::from_event(&e))
            });
            match parsed {
                Ok(outcome) => valid.push((delivery, outcome)),
                Err(e) => {
                    let span =
                        tracing::info_span!("event", role = ROLE, event_id = %delivery.id_hint());
                    async {
                        tracing::warn!(reason = %e, "dead-lettering an invalid outcome event");
                    }
                    .instrument(span)
                    .await;
                    // Not acked on its own: the batch's multiple-ack below covers it, after the
                    // dead-letter copy is confirmed.
                    dead_letter(
                        publisher,
                        &self.topology,
                        delivery,
                        ROLE,
                        e.code(),
                        &e.to_string(),
                    )
                    .await?;
                    self.ctx.metrics.dead_lettered(ROLE, e.code());
                    self.ctx.metrics.consumed(
                        ROLE,
                        &delivery.routing_key.to_string(),
                        "dead_lettered",
                    );
                }
            }
        }
        self.apply(publisher, &valid, shutdown).await?;
        if let Some(after) = after
            && after.await != Ok(true)
        {
            // The batch before is not acked and will be redelivered; acking this one would ack
            // it too. This one comes back with it and counts zero more.
            return Err(BatchError::Shutdown);
        }
        answered(
            "acking a batch",
            last.acker.ack(BasicAckOptions { multiple: true }),
        )
        .await?;
        let m = &self.ctx.metrics;
        m.tracker_batch_size.observe(batch.len() as f64);
        m.tracker_batch_duration
            .observe(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Applies the outcomes; on a database refusal that is not an outage, bisects to isolate
    /// and dead-letter the events the database will not take.
    async fn apply(
        &self,
        publisher: &Publisher,
        items: &[(&Delivery, MessageOutcome)],
        shutdown: &CancellationToken,
    ) -> Result<(), BatchError> {
        if items.is_empty() {
            return Ok(());
        }
        let outcomes: Vec<MessageOutcome> = items.iter().map(|(_, o)| o.clone()).collect();
        // What the broker hands out again may have been counted before the failure.
        let expect = if items.iter().any(|(d, _)| d.redelivered) {
            Expect::Duplicates
        } else {
            Expect::New
        };
        let pool = &self.ctx.pool;
        match self
            .ctx
            .db_retry(ROLE, shutdown, || {
                apply_batch_expecting(pool, &outcomes, expect)
            })
            .await
        {
            Ok(applied) => {
                self.count(&outcomes, applied);
                for (delivery, outcome) in items {
                    tracing::debug!(event_id = %outcome.event_id, tag = delivery.delivery_tag, "recorded");
                }
                Ok(())
            }
            Err(DbError::Shutdown) => Err(BatchError::Shutdown),
            Err(DbError::Fatal(e)) if items.len() == 1 => {
                let (delivery, outcome) = &items[0];
                tracing::warn!(event_id = %outcome.event_id, error = %e, "the database refused an event; dead-lettering it");
                let reason = format!("the database refused the event: {e}");
                dead_letter(
                    publisher,
                    &self.topology,
                    delivery,
                    ROLE,
                    "database_rejected",
                    &reason,
                )
                .await?;
                self.ctx.metrics.dead_lettered(ROLE, "database_rejected");
                Ok(())
            }
            Err(DbError::Fatal(e)) => {
                tracing::warn!(error = %e, size = items.len(), "the database refused a batch; splitting it");
                let (left, right) = items.split_at(items.len() / 2);
                Box::pin(self.apply(publisher, left, shutdown)).await?;
                Box::pin(self.apply(publisher, right, shutdown)).await
            }
        }
    }

    fn count(&self, outcomes: &[MessageOutcome], applied: Applied) {
        let m = &self.ctx.metrics;
        m.tracker_events_counted.inc_by(applied.counted);
        let duplicates = outcomes.len() as u64 - applied.counted;
        for (ty, n) in [
            ("message.sent", applied.sent),
            ("message.failed", applied.failed),
        ] {
            if n > 0 {
                m.events_consumed
                    .get_or_create(&crate::metrics::ConsumedLabels {
                        role: ROLE,
                        r#type: ty.to_string(),
                        outcome: "counted",
                    })
                    .inc_by(n);
            }
        }
        if duplicates > 0 {
            m.events_consumed
                .get_or_create(&crate::metrics::ConsumedLabels {
                    role: ROLE,
                    r#type: "any".to_string(),
                    outcome: "duplicate",
                })
                .inc_by(duplicates);
        }
    }
}
