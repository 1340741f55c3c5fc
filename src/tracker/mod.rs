//! The tracker role: consumes `message.sent` and `message.failed` and keeps `whatsapp_report`
//! (frequency and last message date per customer and vehicle) and the message history, and
//! records what the provider reported back (`message.status`, `reply.received`: `hearing`).
//!
//! Deliveries are gathered into batches (up to `tracker.batch_size`, or whatever arrived within
//! `tracker.batch_linger_ms`), applied in one statement that dedupes by event id, and acked with
//! one multiple-ack after the commit. Up to `tracker.batches_in_flight` batches are written at
//! once (one statement keeps one PostgreSQL backend, so one core, busy), and acked in delivery
//! order. A crash between commit and ack redelivers the batch, and the dedupe makes it count
//! zero more. A bad event is dead-lettered on its own; if the database
//! refuses a batch for a reason other than an outage, the batch is split until the offending
//! event is found and dead-lettered, and the rest are applied.
//!
//! The batches run on the consume loop shared with the sender (`broker::consume`). Consent
//! changes (`consent.changed`, keyword replies, `131050` failures) ride in the same batches and
//! are recorded by `consent` before the batch is acked.

mod consent;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::{FutureExt as _, StreamExt};
use lapin::message::Delivery;
use lapin::options::BasicAckOptions;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::broker::consume::{self, Consume, ConsumeOptions, HandleError, Worker};
use crate::broker::delivery::printable;
use crate::broker::{Topology, answered};
use crate::context::AppContext;
use crate::db::retry::DbError;
use crate::db::tracking::{Applied, Expect, apply_batch_expecting};
use crate::domain::consent::{CONSENT_CHANGED, ConsentChanged, Keywords, REPLY_RECEIVED};
use crate::domain::{CountryCode, IncomingEvent, MessageOutcome};

mod hearing;

use hearing::{Split, Tracked};

const ROLE: &str = "tracker";

/// How long a batch being gathered under load waits for more deliveries between looks.
const GATHER_TICK: Duration = Duration::from_millis(1);

pub struct Tracker {
    ctx: AppContext,
    topology: Topology,
    keywords: Keywords,
    country: CountryCode,
    /// Statuses applied again a little later (`hearing`); waited for at shutdown, so a status
    /// recorded just before a stop still reaches its message.
    reapplies: TaskTracker,
}

/// Deliveries recorded and acked together, after the batch before them.
pub struct Batch {
    deliveries: Vec<Delivery>,
    /// Resolves once the previous batch is acked (true) or will never be (false).
    after: Option<oneshot::Receiver<bool>>,
    /// Tells the next batch whether this one was acked.
    done: oneshot::Sender<bool>,
}

/// The order in which one session's batches ack: each waits for the one gathered before it.
pub struct AckOrder {
    previous: Option<oneshot::Receiver<bool>>,
}

impl Tracker {
    pub fn new(ctx: AppContext) -> Tracker {
        let country = CountryCode::parse(&ctx.settings.whatsapp.default_country_code)
            .expect("validated at start-up");
        Tracker {
            topology: ctx.broker.topology(),
            keywords: ctx.settings.consent.keywords(),
            country,
            ctx,
            reapplies: TaskTracker::new(),
        }
    }

    /// Consumes until `shutdown`, reconnecting whenever the broker goes away.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(queue = %self.topology.tracker_queue, "tracker started");
        let t = &self.ctx.settings.tracker;
        // Every batch in flight, the one being gathered, and the next: its deliveries are on
        // their way while the batch before it is gathered instead of after that one's ack.
        let prefetch = (t.batch_size * (t.batches_in_flight + 2)).min(u16::MAX as usize) as u16;
        let options = ConsumeOptions {
            queue: self.topology.tracker_queue.clone(),
            prefetch,
            slots: t.batches_in_flight,
            grace: self.ctx.settings.runtime.shutdown_timeout(),
        };
        let consumed = consume::run(
            self.clone(),
            &self.ctx.broker,
            &self.ctx.metrics,
            &options,
            &shutdown,
        )
        .await;
        self.reapplies.close();
        if tokio::time::timeout(options.grace, self.reapplies.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                pending = self.reapplies.len(),
                "statuses not applied again before the shutdown timeout; their messages' delivery state may lag"
            );
        }
        consumed
    }
}

impl Consume for Tracker {
    const ROLE: &'static str = ROLE;
    type Work = Batch;
    type Session = AckOrder;

    fn start(&self, _worker: &Worker) -> AckOrder {
        AckOrder { previous: None }
    }

    /// The first delivery and whatever else arrives within `tracker.batch_linger_ms`, up to
    /// `tracker.batch_size`.
    async fn gather(
        &self,
        first: Delivery,
        consumer: &mut lapin::Consumer,
        order: &mut AckOrder,
    ) -> anyhow::Result<Batch> {
        let batch_size = self.ctx.settings.tracker.batch_size;
        let linger = Duration::from_millis(self.ctx.settings.tracker.batch_linger_ms);
        let mut batch = Vec::with_capacity(batch_size);
        batch.push(first);
        let deadline = tokio::time::Instant::now() + linger;
        'gather: while batch.len() < batch_size {
            // Under load, take what has arrived without asking to be woken for each delivery,
            // then wait a tick for more: a wake-up per delivery costs a context switch per
            // event. When nothing has arrived, wait for the next delivery as usual, so a quiet
            // queue costs no polling.
            let before = batch.len();
            while batch.len() < batch_size {
                match consumer.next().now_or_never() {
                    Some(Some(Ok(d))) => batch.push(d),
                    // The channel is gone, so these cannot be acked: they come back.
                    Some(Some(Err(e))) => return Err(e).context("the tracker consumer failed"),
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
                    Some(Err(e)) => return Err(e).context("the tracker consumer failed"),
                    None => break,
                },
            }
        }
        let (done, next) = oneshot::channel();
        Ok(Batch {
            deliveries: batch,
            after: order.previous.replace(next),
            done,
        })
    }

    async fn handle(self: Arc<Self>, batch: Batch, worker: Worker) -> Result<(), HandleError> {
        let Batch {
            deliveries,
            after,
            done,
        } = batch;
        let result = self.process(&worker, deliveries, after).await;
        let _ = done.send(result.is_ok());
        result
    }

    async fn finish(&self, _order: AckOrder) {}
}

impl Tracker {
    /// Applies one batch and, once the batch before it is acked, acks it. Batches are written
    /// concurrently but acked in delivery order: a multiple-ack covers every earlier delivery,
    /// so it must never go out while an earlier batch is uncommitted.
    async fn process(
        &self,
        worker: &Worker,
        batch: Vec<Delivery>,
        after: Option<oneshot::Receiver<bool>>,
    ) -> Result<(), HandleError> {
        let Some(last) = batch.last() else {
            return Ok(());
        };
        // A batch in progress finishes even during shutdown, so its acks go out; only an
        // outage the shutdown interrupts stops it.
        let never = CancellationToken::new();
        let shutdown = if worker.shutdown().is_cancelled() {
            &never
        } else {
            worker.shutdown()
        };
        let started = Instant::now();
        let max_bytes = self.ctx.settings.amqp.max_message_bytes;
        let mut split = Split::default();
        let mut changes: Vec<(Option<&Delivery>, ConsentChanged)> = Vec::new();
        for delivery in &batch {
            // An invalid event is not acked on its own: the batch's multiple-ack below covers
            // it, after its dead-letter copy is confirmed.
            let event_type = delivery.routing_key.to_string();
            let parsed = worker
                .accept(delivery, &event_type, |raw| {
                    let event = IncomingEvent::parse(raw, max_bytes)?;
                    // A reply is recorded whatever it says; a stop or start keyword in it is
                    // also a consent change. A consent change is only that.
                    let change = if event.ty == REPLY_RECEIVED {
                        consent::change_of(&event, &self.keywords, &self.country)
                            .ok()
                            .flatten()
                    } else if event.ty == CONSENT_CHANGED {
                        consent::change_of(&event, &self.keywords, &self.country)?
                    } else {
                        None
                    };
                    Tracked::parse(event).map(|t| (t, change))
                })
                .await?;
            let Some((tracked, change)) = parsed else {
                continue;
            };
            let consent_only = matches!(tracked, Tracked::Consent);
            if let Some(change) = change {
                changes.push((consent_only.then_some(delivery), change));
            }
            if let Tracked::Outcome(outcome) = &tracked
                && let Some(change) = consent::change_of_outcome(outcome)
            {
                changes.push((None, change));
            }
            if !consent_only {
                split.push(delivery, tracked);
            }
        }
        // Outcomes first: a status in the same batch as its message.sent then finds it.
        self.apply(worker, &split.outcomes, shutdown).await?;
        self.apply_statuses(worker, &split.statuses, shutdown)
            .await?;
        self.apply_replies(worker, &split.replies, shutdown).await?;
        self.apply_consent(worker, &changes, shutdown).await?;
        if let Some(after) = after
            && after.await != Ok(true)
        {
            // The batch before is not acked and will be redelivered; acking this one would ack
            // it too. This one comes back with it and counts zero more.
            return Err(HandleError::Shutdown);
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
        worker: &Worker,
        items: &[(&Delivery, MessageOutcome)],
        shutdown: &CancellationToken,
    ) -> Result<(), HandleError> {
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
                    tracing::debug!(event_id = %printable(&outcome.event_id), tag = delivery.delivery_tag, "recorded");
                }
                Ok(())
            }
            Err(DbError::Shutdown) => Err(HandleError::Shutdown),
            Err(DbError::Fatal(e)) if items.len() == 1 => {
                let (delivery, outcome) = &items[0];
                tracing::warn!(event_id = %printable(&outcome.event_id), error = %e, "the database refused an event; dead-lettering it");
                let reason = format!("the database refused the event: {e}");
                worker
                    .dead_letter(delivery, "database_rejected", &reason)
                    .await
            }
            Err(DbError::Fatal(e)) => {
                tracing::warn!(error = %e, size = items.len(), "the database refused a batch; splitting it");
                let (left, right) = items.split_at(items.len() / 2);
                Box::pin(self.apply(worker, left, shutdown)).await?;
                Box::pin(self.apply(worker, right, shutdown)).await
            }
        }
    }

    /// Records the batch's consent changes. One the database refuses (not an outage) is
    /// dead-lettered when its event carried nothing else, and logged when it came with a
    /// message outcome already recorded.
    async fn apply_consent(
        &self,
        worker: &Worker,
        changes: &[(Option<&Delivery>, ConsentChanged)],
        shutdown: &CancellationToken,
    ) -> Result<(), HandleError> {
        if changes.is_empty() {
            return Ok(());
        }
        let pool = &self.ctx.pool;
        let all: Vec<ConsentChanged> = changes.iter().map(|(_, c)| c.clone()).collect();
        let result = self
            .ctx
            .db_retry(ROLE, shutdown, || crate::db::consent::apply(pool, &all))
            .await;
        match result {
            Ok(_) => {}
            Err(DbError::Shutdown) => return Err(HandleError::Shutdown),
            Err(DbError::Fatal(e)) if changes.len() == 1 => {
                let (delivery, change) = &changes[0];
                tracing::warn!(phone = %change.phone, error = %e, "the database refused a consent change");
                if let Some(delivery) = delivery {
                    let reason = format!("the database refused the consent change: {e}");
                    worker
                        .dead_letter(delivery, "database_rejected", &reason)
                        .await?;
                }
                return Ok(());
            }
            Err(DbError::Fatal(_)) => {
                for one in changes {
                    Box::pin(self.apply_consent(worker, std::slice::from_ref(one), shutdown))
                        .await?;
                }
                return Ok(());
            }
        }
        for (_, change) in changes {
            let kind = if change.opted_out {
                "opted_out"
            } else {
                "opted_in"
            };
            tracing::info!(phone = %change.phone, source = change.source.as_str(), at = %change.at, kind, "consent change");
            self.ctx
                .metrics
                .consumed(ROLE, crate::domain::consent::CONSENT_CHANGED, "counted");
        }
        Ok(())
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
