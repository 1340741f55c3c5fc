//! The sender role: consumes `maintenance.due`, sends the WhatsApp reminder through the
//! configured provider, and publishes `message.sent` or `message.failed`.
//!
//! Per delivery: parse and validate (a bad event is dead-lettered with its reason); look up the
//! reminder's dispatch record (already final: re-publish the same outcome, send nothing); wait
//! for the per-recipient gap and the process-wide rate; claim the attempt in PostgreSQL; call
//! the provider; record the answer; publish the outcome (or park the message in a retry delay
//! queue after a transient error) and wait for the broker's confirm; only then ack.
//!
//! Up to `sender.concurrency` deliveries are handled at once (the prefetch matches), so a slow
//! provider does not serialise sends, and a retrying message never blocks the others.

pub mod providers;
pub mod rate_limit;
pub mod render;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;
use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::FieldTable;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::broker::delivery::with_raw_message;
use crate::broker::publisher::Outgoing;
use crate::broker::{Backoff, DeliveryExt, PublishError, Publisher, Topology, dead_letter};
use crate::context::{AppContext, DbError};
use crate::db::dispatch::{self, Claim, DispatchRecord};
use crate::domain::events::MAINTENANCE_DUE;
use crate::domain::{CountryCode, IncomingEvent, MaintenanceDue};
use crate::metrics::{ProviderLabels, SendLabels};
use providers::{OutboundMessage, WhatsappProvider};
use rate_limit::{RateLimiter, RecipientGap, WindowGuard};
use render::{MessageTemplate, MessageVars, format_date};

const ROLE: &str = "sender";
/// CloudEvents `source` of the outcome events.
pub const SOURCE: &str = "reminder/sender";

pub struct Sender {
    ctx: AppContext,
    provider: Arc<dyn WhatsappProvider>,
    template: MessageTemplate,
    country: CountryCode,
    rate: RateLimiter,
    /// The same limit again, right before the provider call. `rate` is taken before the claim
    /// (so waiting never eats into the lease), but the claim's round trip and a busy runtime
    /// delay some sends and bunch them with later ones (measured with the mock Cloud API: up to
    /// 90 sends in one second at 80/s). This guard counts real send times; it only waits after
    /// such a stall, for at most the stall's length.
    pace: WindowGuard,
    gap: RecipientGap,
    topology: Topology,
    /// Retry delay queues declared in this process.
    declared_delays: Mutex<HashSet<u128>>,
}

/// Why handling one delivery stopped without an ack.
#[derive(Debug, thiserror::Error)]
enum HandleError {
    #[error("shutting down")]
    Shutdown,
    #[error(transparent)]
    Broker(#[from] PublishError),
    #[error("broker: {0}")]
    Ack(#[from] lapin::Error),
    #[error(transparent)]
    Database(sqlx::Error),
}

impl From<DbError> for HandleError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Shutdown => HandleError::Shutdown,
            DbError::Fatal(e) => HandleError::Database(e),
        }
    }
}

enum Next {
    /// Publish this final outcome, then ack.
    Publish(Box<DispatchRecord>),
    /// Park the message for `delay`, then ack.
    Retry { delay: Duration },
}

impl Sender {
    pub fn new(ctx: AppContext, provider: Arc<dyn WhatsappProvider>) -> anyhow::Result<Sender> {
        let w = &ctx.settings.whatsapp;
        let template = MessageTemplate::parse(&w.message_template)
            .map_err(|e| anyhow::anyhow!("whatsapp.message_template: {e}"))?;
        let country =
            CountryCode::parse(&w.default_country_code).context("whatsapp.default_country_code")?;
        Ok(Sender {
            template,
            country,
            rate: RateLimiter::new(w.max_per_second),
            pace: WindowGuard::new(w.max_per_second),
            gap: RecipientGap::new(Duration::from_millis(
                ctx.settings.sender.recipient_interval_ms,
            )),
            topology: ctx.broker.topology(),
            provider,
            declared_delays: Mutex::new(HashSet::new()),
            ctx,
        })
    }

    /// Consumes until `shutdown`, reconnecting whenever the broker goes away.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) -> anyhow::Result<()> {
        let s = &self.ctx.settings.amqp;
        let mut backoff = Backoff::new(
            Duration::from_millis(s.reconnect_initial_ms),
            Duration::from_millis(s.reconnect_max_ms),
        );
        tracing::info!(provider = self.provider.name(), queue = %self.topology.sender_queue, "sender started");
        loop {
            match self.clone().session(&shutdown).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "sender lost its broker session; reconnecting");
                    if !backoff.sleep(&shutdown).await {
                        return Ok(());
                    }
                }
            }
        }
    }

    async fn session(self: Arc<Self>, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let Some(channel) = self.ctx.broker.channel(shutdown).await else {
            return Ok(());
        };
        self.topology
            .declare(&channel)
            .await
            .context("declaring the topology")?;
        self.declared_delays.lock().expect("lock").clear();
        let concurrency = self.ctx.settings.sender.concurrency;
        channel
            .basic_qos(concurrency as u16, BasicQosOptions::default())
            .await?;
        let publisher = match Publisher::open(&self.ctx.broker, shutdown).await {
            Ok(p) => p,
            Err(PublishError::Shutdown) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let mut consumer = channel
            .basic_consume(
                self.topology.sender_queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .context("consuming the sender queue")?;
        let semaphore = Arc::new(Semaphore::new(concurrency));
        // Cancelled by a handler that lost the broker: the session is over.
        let broken = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let result: anyhow::Result<()> = loop {
            let permit = tokio::select! {
                _ = shutdown.cancelled() => break Ok(()),
                _ = broken.cancelled() => break Err(anyhow::anyhow!("a handler lost the broker connection")),
                p = semaphore.clone().acquire_owned() => p.expect("semaphore is never closed"),
            };
            let delivery = tokio::select! {
                _ = shutdown.cancelled() => break Ok(()),
                _ = broken.cancelled() => break Err(anyhow::anyhow!("a handler lost the broker connection")),
                next = consumer.next() => match next {
                    Some(Ok(d)) => d,
                    Some(Err(e)) => break Err(e).context("the sender consumer failed"),
                    None => break Err(anyhow::anyhow!("the broker cancelled the sender consumer")),
                },
            };
            while tasks.try_join_next().is_some() {}
            let sender = self.clone();
            let publisher = publisher.clone();
            let shutdown = shutdown.clone();
            let broken = broken.clone();
            let span = tracing::info_span!("reminder", role = ROLE, event_id = %delivery.id_hint());
            tasks.spawn(
                async move {
                    let _permit = permit;
                    sender
                        .handle_delivery(delivery, &publisher, &shutdown, &broken)
                        .await;
                }
                .instrument(span),
            );
        };
        // Stop taking work, let in-flight sends finish (and ack), then close.
        let _ = channel
            .basic_cancel(consumer.tag(), BasicCancelOptions::default())
            .await;
        let grace = self.ctx.settings.runtime.shutdown_timeout();
        if tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
            .await
            .is_err()
        {
            tracing::warn!(
                in_flight = tasks.len(),
                "sends still in flight after the shutdown timeout; they will be redelivered"
            );
            tasks.abort_all();
        }
        let _ = channel.close(200, "sender stopping".into()).await;
        publisher.close().await;
        result
    }

    async fn handle_delivery(
        &self,
        delivery: Delivery,
        publisher: &Publisher,
        shutdown: &CancellationToken,
        broken: &CancellationToken,
    ) {
        match self.handle(&delivery, publisher, shutdown).await {
            Ok(()) => {}
            Err(HandleError::Shutdown) => {
                // Unacked: the broker hands it out again when the channel closes.
            }
            Err(e @ (HandleError::Broker(_) | HandleError::Ack(_))) => {
                tracing::warn!(error = %e, "broker failure while handling a reminder; it will be redelivered");
                broken.cancel();
            }
            Err(HandleError::Database(e)) => {
                // Not an outage (those are waited out): something retrying cannot fix. Requeue
                // it; the queue's delivery limit dead-letters it if it keeps failing.
                tracing::error!(error = %e, "database error handling a reminder; requeueing");
                self.ctx.metrics.consumed(ROLE, MAINTENANCE_DUE, "error");
                if let Err(e) = delivery
                    .acker
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..Default::default()
                    })
                    .await
                {
                    tracing::warn!(error = %e, "could not requeue");
                    broken.cancel();
                }
            }
        }
    }

    async fn handle(
        &self,
        delivery: &Delivery,
        publisher: &Publisher,
        shutdown: &CancellationToken,
    ) -> Result<(), HandleError> {
        let parsed = with_raw_message(delivery, |raw| {
            let event = IncomingEvent::parse(raw, self.ctx.settings.amqp.max_message_bytes)?;
            let due = MaintenanceDue::from_event(&event, &self.country)?;
            Ok::<_, crate::domain::EventError>((event, due))
        });
        let (event, due) = match parsed {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(reason = %e, "dead-lettering an invalid maintenance.due");
                dead_letter(
                    publisher,
                    &self.topology,
                    delivery,
                    ROLE,
                    e.code(),
                    &e.to_string(),
                )
                .await?;
                delivery.acker.ack(BasicAckOptions::default()).await?;
                self.ctx.metrics.dead_lettered(ROLE, e.code());
                self.ctx
                    .metrics
                    .consumed(ROLE, MAINTENANCE_DUE, "dead_lettered");
                return Ok(());
            }
        };
        let next = self.decide(&event, &due, shutdown).await?;
        match next {
            Next::Publish(record) => {
                let (ty, id, body) = record
                    .outcome_event(SOURCE)
                    .expect("decide only returns final records");
                publisher.publish_event(ty, &id, body).await?;
                self.ctx.metrics.published(ty);
                delivery.acker.ack(BasicAckOptions::default()).await?;
                self.ctx
                    .metrics
                    .consumed(ROLE, MAINTENANCE_DUE, record.status_label());
            }
            Next::Retry { delay } => {
                self.park(publisher, delivery, delay).await?;
                delivery.acker.ack(BasicAckOptions::default()).await?;
                self.ctx.metrics.consumed(ROLE, MAINTENANCE_DUE, "retry");
            }
        }
        Ok(())
    }

    /// Sends the reminder unless it already has an outcome; returns what to do with the message.
    async fn decide(
        &self,
        event: &IncomingEvent,
        due: &MaintenanceDue,
        shutdown: &CancellationToken,
    ) -> Result<Next, HandleError> {
        let pool = &self.ctx.pool;
        let known = self
            .ctx
            .db_retry(ROLE, shutdown, || dispatch::get(pool, &event.id))
            .await?;
        if let Some(record) = known.filter(|r| r.is_final()) {
            tracing::info!(status = %record.status, "already handled; re-publishing its outcome");
            self.ctx.metrics.duplicates_suppressed.inc();
            return Ok(Next::Publish(Box::new(record)));
        }
        // Rate limits come before the claim, so waiting never eats into the claim's lease.
        tokio::select! {
            _ = shutdown.cancelled() => return Err(HandleError::Shutdown),
            _ = async {
                self.gap.acquire(due.phone.as_str()).await;
                self.rate.acquire().await;
            } => {}
        }
        let lease = self.lease();
        let max_attempts = self.ctx.settings.whatsapp.max_attempts;
        loop {
            let claim = self
                .ctx
                .db_retry(ROLE, shutdown, || {
                    dispatch::claim(
                        pool,
                        &event.id,
                        due,
                        self.provider.name(),
                        lease,
                        max_attempts,
                    )
                })
                .await?;
            match claim {
                Claim::Send { attempt } => {
                    return self.attempt(event, due, attempt, shutdown).await;
                }
                Claim::Done(record) => {
                    self.ctx.metrics.duplicates_suppressed.inc();
                    return Ok(Next::Publish(record));
                }
                Claim::Busy { until } => {
                    // Another worker is calling the provider for this reminder right now.
                    let wait = (until - Utc::now())
                        .to_std()
                        .unwrap_or_default()
                        .clamp(Duration::from_millis(100), Duration::from_secs(1));
                    tokio::select! {
                        _ = shutdown.cancelled() => return Err(HandleError::Shutdown),
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
                Claim::Exhausted(record) => {
                    tracing::warn!(
                        attempts = record.attempts,
                        "no attempts left and the last one's outcome is unknown; giving up"
                    );
                    let record = self
                        .ctx
                        .db_retry(ROLE, shutdown, || {
                            dispatch::record_failed(
                                pool,
                                &event.id,
                                "attempts_exhausted",
                                "every attempt was used; the last one ended without an answer",
                                Utc::now(),
                            )
                        })
                        .await?;
                    return Ok(Next::Publish(Box::new(record)));
                }
            }
        }
    }

    /// How long a claim keeps other workers away: the provider call's time-out plus a margin
    /// for recording its answer.
    fn lease(&self) -> Duration {
        Duration::from_millis(self.ctx.settings.whatsapp.request_timeout_ms)
            + Duration::from_secs(30)
    }

    #[tracing::instrument(skip_all, fields(attempt))]
    async fn attempt(
        &self,
        event: &IncomingEvent,
        due: &MaintenanceDue,
        attempt: i32,
        shutdown: &CancellationToken,
    ) -> Result<Next, HandleError> {
        let message = self.outbound(event, due);
        let provider = self.provider.name();
        self.pace.acquire().await;
        let started = std::time::Instant::now();
        let result = self.provider.send(&message).await;
        self.ctx
            .metrics
            .send_duration
            .get_or_create(&ProviderLabels { provider })
            .observe(started.elapsed().as_secs_f64());
        let pool = &self.ctx.pool;
        match result {
            Ok(receipt) => {
                self.count_send(provider, "sent");
                tracing::info!(to = %due.phone, provider, "reminder sent");
                let sent_at = Utc::now();
                let record = self
                    .ctx
                    .db_retry(ROLE, shutdown, || {
                        dispatch::record_sent(
                            pool,
                            &event.id,
                            &receipt.provider_message_id,
                            sent_at,
                        )
                    })
                    .await?;
                Ok(Next::Publish(Box::new(record)))
            }
            Err(e)
                if e.is_transient()
                    && (attempt as u32) < self.ctx.settings.whatsapp.max_attempts =>
            {
                self.count_send(provider, "transient_error");
                self.ctx
                    .metrics
                    .send_retries
                    .get_or_create(&ProviderLabels { provider })
                    .inc();
                let delay = self.retry_delay(attempt as u32, e.retry_after);
                tracing::warn!(code = %e.code, error = %e.message, retry_in_ms = delay.as_millis() as u64, "transient provider error; will retry");
                let still_open = self
                    .ctx
                    .db_retry(ROLE, shutdown, || {
                        dispatch::record_retry(pool, &event.id, &e.code, &e.message)
                    })
                    .await?;
                if still_open {
                    Ok(Next::Retry { delay })
                } else {
                    let record = self
                        .ctx
                        .db_retry(ROLE, shutdown, || dispatch::get(pool, &event.id))
                        .await?
                        .ok_or(HandleError::Database(sqlx::Error::RowNotFound))?;
                    Ok(Next::Publish(Box::new(record)))
                }
            }
            Err(e) => {
                self.count_send(
                    provider,
                    if e.is_transient() {
                        "gave_up"
                    } else {
                        "permanent_error"
                    },
                );
                tracing::warn!(code = %e.code, error = %e.message, "reminder failed");
                let record = self
                    .ctx
                    .db_retry(ROLE, shutdown, || {
                        dispatch::record_failed(pool, &event.id, &e.code, &e.message, Utc::now())
                    })
                    .await?;
                Ok(Next::Publish(Box::new(record)))
            }
        }
    }

    fn count_send(&self, provider: &'static str, outcome: &'static str) {
        self.ctx
            .metrics
            .sends
            .get_or_create(&SendLabels { provider, outcome })
            .inc();
    }

    fn outbound(&self, event: &IncomingEvent, due: &MaintenanceDue) -> OutboundMessage {
        let locale = due
            .locale
            .clone()
            .unwrap_or_else(|| self.ctx.settings.whatsapp.default_locale.clone());
        let text = self.template.render(&MessageVars {
            customer_name: &due.customer_name,
            plate_number: &due.plate_number,
            vehicle: due.vehicle.as_deref(),
            due_date: due.due_date,
            locale: &locale,
        });
        OutboundMessage {
            reminder_id: event.id.clone(),
            to: due.phone.clone(),
            customer_name: due.customer_name.clone(),
            plate_number: due.plate_number.clone(),
            vehicle: due.vehicle.clone(),
            due_date: due.due_date,
            due_date_text: format_date(due.due_date, &locale),
            locale,
            text,
        }
    }

    /// The delay queue level for retry number `retry`: exponential, raised to honour the
    /// provider's Retry-After. Levels are a fixed ladder so the number of delay queues stays
    /// small whatever the provider asks.
    fn retry_delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let s = &self.ctx.settings.sender;
        let mut level = s.retry_delay(retry);
        if let Some(wanted) = retry_after {
            let mut n = retry;
            while level < wanted && level < Duration::from_millis(s.retry_max_ms) {
                n += 1;
                level = s.retry_delay(n);
            }
        }
        level
    }

    /// Publishes the message to the delay queue for `delay`; it comes back to the sender queue
    /// when it expires. The per-message expiration adds jitter (75–100 % of the level) so
    /// retries of a burst spread out; messages in one level expire within a quarter of the
    /// level of each other, which bounds head-of-line waiting.
    async fn park(
        &self,
        publisher: &Publisher,
        delivery: &Delivery,
        delay: Duration,
    ) -> Result<(), HandleError> {
        let queue = self.topology.retry_queue(delay);
        let needs_declare = !self
            .declared_delays
            .lock()
            .expect("lock")
            .contains(&delay.as_millis());
        if needs_declare {
            self.topology
                .declare_retry_queue(publisher.channel(), delay)
                .await
                .map_err(PublishError::Broker)?;
            self.declared_delays
                .lock()
                .expect("lock")
                .insert(delay.as_millis());
        }
        let jittered = delay.mul_f64(rand::random_range(0.75..=1.0));
        let properties = delivery
            .properties
            .clone()
            .with_expiration(jittered.as_millis().to_string().into())
            .with_delivery_mode(2);
        publisher
            .publish(Outgoing {
                exchange: String::new(),
                routing_key: queue,
                body: delivery.data.clone(),
                properties,
            })
            .await?;
        Ok(())
    }
}

impl DispatchRecord {
    pub fn is_final(&self) -> bool {
        matches!(self.status.as_str(), "sent" | "failed")
    }
    fn status_label(&self) -> &'static str {
        if self.status == "sent" {
            "sent"
        } else {
            "failed"
        }
    }
}
