//! The sender role: consumes `maintenance.due`, sends the WhatsApp reminder through the
//! configured provider, and publishes `message.sent` or `message.failed`.
//!
//! Per delivery: parse and validate (a bad event is dead-lettered with its reason); look up the
//! reminder's dispatch record (already final: re-publish the same outcome, send nothing; backing
//! off: park this copy until the next attempt is due); wait for the per-recipient gap and the
//! process-wide rate; claim the attempt in PostgreSQL (another handler holds it: wait for its
//! outcome); call the provider; record the answer; publish the outcome (or park the message in
//! a retry delay queue after a transient error) and wait for the broker's confirm; only then ack,
//! through the session's `AckWindow` (one multiple-ack for the deliveries finished meanwhile).
//!
//! Up to `sender.concurrency` deliveries are handled at once, so a slow provider does not
//! serialise sends, and a retrying message never blocks the others. The prefetch is a quarter
//! larger: deliveries whose handlers are done wait a few milliseconds for their ack, and that
//! wait must not take a sending slot.
//!
//! `reminder_events_consumed_total{role="sender"}` outcomes: `sent`, `failed` (this delivery
//! produced the outcome), `duplicate` (the reminder already had it: re-published, nothing
//! sent), `retry` (parked after a transient error), `deferred` (a copy parked because its
//! reminder is backing off), `dead_lettered`, `error` (requeued after a database error).

pub mod outcome;
pub mod providers;
pub mod rate_limit;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;
use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::BasicNackOptions;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument;

use crate::broker::acks::AckWindow;
use crate::broker::delivery::with_raw_message;
use crate::broker::publisher::Outgoing;
use crate::broker::{
    DeliveryExt, PublishError, Publisher, Session, Topology, answered, dead_letter,
};
use crate::context::AppContext;
use crate::db::dispatch::{self, Claim, DispatchRecord, DispatchStatus, DispatchWrites};
use crate::db::retry::DbError;
use crate::domain::events::MAINTENANCE_DUE;
use crate::domain::message_template::{MessageTemplate, MessageVars, format_date};
use crate::domain::{CountryCode, IncomingEvent, MaintenanceDue};
use crate::metrics::{ProviderLabels, SendLabels};
use outcome::OutcomeEvent;
use providers::{OutboundMessage, WhatsappProvider};
use rate_limit::{RateLimiter, RecipientGap, WindowGuard};

const ROLE: &str = "sender";
/// A reminder backing off for longer than this is parked again rather than waited for in place.
const DEFER_THRESHOLD_MS: i64 = 50;
/// Longest pause between two claims of a reminder another handler is sending.
const MAX_BUSY_POLL: Duration = Duration::from_millis(500);
/// How long a copy waits in place for another handler's attempt before it is parked instead.
/// A live handler answers within one provider call; a lease still held after this is most
/// likely a dead process's, and waiting it out in place would hold a concurrency slot idle.
const BUSY_PARK_AFTER: Duration = Duration::from_secs(2);

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
    /// Claims and recorded sends of the reminders in flight, a statement for many at once.
    writes: DispatchWrites,
}

/// Why handling one delivery stopped without an ack.
#[derive(Debug, thiserror::Error)]
enum HandleError {
    #[error("shutting down")]
    Shutdown,
    #[error(transparent)]
    Broker(#[from] PublishError),
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
    /// Publish this final outcome, then ack. `duplicate`: the reminder already had this outcome
    /// before this delivery (a redelivery or a duplicate), so nothing was sent for it.
    Publish {
        record: Box<DispatchRecord>,
        duplicate: bool,
    },
    /// Park the message for `delay`, then ack. `outcome` is the metric label: `retry` after a
    /// transient error, `deferred` for a copy that arrived while the reminder was backing off.
    Retry {
        delay: Duration,
        outcome: &'static str,
    },
}

impl Next {
    fn publish(record: DispatchRecord) -> Next {
        Next::Publish {
            record: Box::new(record),
            duplicate: false,
        }
    }
    fn duplicate(record: DispatchRecord) -> Next {
        Next::Publish {
            record: Box::new(record),
            duplicate: true,
        }
    }
}

impl Sender {
    pub fn new(ctx: AppContext, provider: Arc<dyn WhatsappProvider>) -> anyhow::Result<Sender> {
        let w = &ctx.settings.whatsapp;
        let template = MessageTemplate::parse(&w.message_template)
            .map_err(|e| anyhow::anyhow!("whatsapp.message_template: {e}"))?;
        let country =
            CountryCode::parse(&w.default_country_code).context("whatsapp.default_country_code")?;
        let writes = DispatchWrites::start(
            &ctx.pool,
            provider.name(),
            lease(&ctx.settings),
            w.max_attempts,
        );
        Ok(Sender {
            writes,
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
        tracing::info!(provider = self.provider.name(), queue = %self.topology.sender_queue, "sender started");
        crate::broker::run_sessions(&self.ctx.settings.amqp, ROLE, &shutdown, || {
            self.clone().session(&shutdown)
        })
        .await
    }

    async fn session(self: Arc<Self>, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let concurrency = self.ctx.settings.sender.concurrency;
        let Some(Session {
            channel,
            lost,
            publisher,
            mut consumer,
        }) = Session::open(
            &self.ctx.broker,
            &self.topology,
            &self.topology.sender_queue,
            prefetch(concurrency),
            shutdown,
        )
        .await?
        else {
            return Ok(());
        };
        // Retry queues are declared again on the new channel when first used.
        self.declared_delays.lock().expect("lock").clear();
        let semaphore = Arc::new(Semaphore::new(concurrency));
        // Cancelled by a handler that lost the broker: the session is over.
        let broken = CancellationToken::new();
        let acks = Arc::new(AckWindow::default());
        let acks_stop = CancellationToken::new();
        let acking = tokio::spawn({
            let (acks, stop, broken) = (acks.clone(), acks_stop.clone(), broken.clone());
            async move {
                if let Err(e) = acks.run(&stop).await {
                    tracing::warn!(error = %e, "could not ack finished reminders; they will be redelivered");
                    broken.cancel();
                }
            }
        });
        let mut tasks = JoinSet::new();
        let result: anyhow::Result<()> = loop {
            let permit = tokio::select! {
                _ = shutdown.cancelled() => break Ok(()),
                _ = lost.cancelled() => break Err(anyhow::anyhow!("the broker connection was lost")),
                _ = broken.cancelled() => break Err(anyhow::anyhow!("a handler lost the broker connection")),
                p = semaphore.clone().acquire_owned() => p.expect("semaphore is never closed"),
            };
            let delivery = tokio::select! {
                _ = shutdown.cancelled() => break Ok(()),
                _ = lost.cancelled() => break Err(anyhow::anyhow!("the broker connection was lost")),
                _ = broken.cancelled() => break Err(anyhow::anyhow!("a handler lost the broker connection")),
                next = consumer.next() => match next {
                    Some(Ok(d)) => d,
                    Some(Err(e)) => break Err(e).context("the sender consumer failed"),
                    None => break Err(anyhow::anyhow!("the broker cancelled the sender consumer")),
                },
            };
            acks.taken(&delivery);
            while tasks.try_join_next().is_some() {}
            let sender = self.clone();
            let acks = acks.clone();
            let publisher = publisher.clone();
            let shutdown = shutdown.clone();
            let broken = broken.clone();
            // The event id is known once the event is parsed (structured events carry it in
            // the body); until then, and for bad events, the AMQP message id or `ce-id`.
            let span =
                tracing::info_span!("reminder", role = ROLE, event_id = tracing::field::Empty);
            tasks.spawn(
                async move {
                    let _permit = permit;
                    sender
                        .handle_delivery(delivery, &publisher, &acks, &shutdown, &broken)
                        .await;
                }
                .instrument(span),
            );
        };
        let grace = self.ctx.settings.runtime.shutdown_timeout();
        // `end_session` drops this when the shutdown timeout passes first (on a connection
        // that is gone an ack can hang until the broker bound), and the window's task goes
        // with it: what it would have acked comes back anyway.
        let acking = AbortOnDropHandle::new(acking);
        let settle = async {
            acks_stop.cancel();
            let _ = acking.await;
        };
        crate::broker::end_session(
            &channel, &consumer, &mut tasks, &publisher, grace, ROLE, settle,
        )
        .await;
        result
    }

    async fn handle_delivery(
        &self,
        delivery: Delivery,
        publisher: &Publisher,
        acks: &AckWindow,
        shutdown: &CancellationToken,
        broken: &CancellationToken,
    ) {
        match self.handle(&delivery, publisher, shutdown).await {
            Ok(()) => acks.finished(&delivery),
            Err(HandleError::Shutdown) => {
                // Unacked: the broker hands it out again when the channel closes.
            }
            Err(HandleError::Broker(e)) => {
                tracing::warn!(error = %e, "broker failure while handling a reminder; it will be redelivered");
                broken.cancel();
            }
            Err(HandleError::Database(e)) => {
                // Not an outage (those are waited out): something retrying cannot fix. Requeue
                // it; the queue's delivery limit dead-letters it if it keeps failing.
                tracing::error!(error = %e, "database error handling a reminder; requeueing");
                self.ctx.metrics.consumed(ROLE, MAINTENANCE_DUE, "error");
                if let Err(e) = answered(
                    "requeueing a reminder",
                    delivery.acker.nack(BasicNackOptions {
                        requeue: true,
                        ..Default::default()
                    }),
                )
                .await
                {
                    tracing::warn!(error = %e, "could not requeue");
                    broken.cancel();
                } else {
                    acks.settled_elsewhere(&delivery);
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
            Ok(v) => {
                tracing::Span::current().record("event_id", v.0.id.as_str());
                v
            }
            Err(e) => {
                tracing::Span::current().record("event_id", delivery.id_hint().as_str());
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
                self.ctx.metrics.dead_lettered(ROLE, e.code());
                self.ctx
                    .metrics
                    .consumed(ROLE, MAINTENANCE_DUE, "dead_lettered");
                return Ok(());
            }
        };
        let next = self.decide(&event, &due, shutdown).await?;
        match next {
            Next::Publish { record, duplicate } => {
                let event = OutcomeEvent::of(&record).expect("decide only returns final records");
                let ty = event.event_type();
                publisher.publish_event(ty, &event.id, event.body).await?;
                self.ctx.metrics.published(ty);
                let outcome = if duplicate {
                    "duplicate"
                } else {
                    event.status.as_str()
                };
                self.ctx.metrics.consumed(ROLE, MAINTENANCE_DUE, outcome);
            }
            Next::Retry { delay, outcome } => {
                self.park(publisher, delivery, delay).await?;
                self.ctx.metrics.consumed(ROLE, MAINTENANCE_DUE, outcome);
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
        // The look-up spares a copy that needs no send (already final, or backing off) the wait
        // for the rate limits. When nothing would wait, the claim below finds that out by
        // itself (it looks the record up only when refused), so the common case costs one
        // round trip less.
        let would_wait = !(self.gap.is_free(due.phone.as_str()) && self.rate.is_free());
        if would_wait {
            let known = self
                .ctx
                .db_retry(ROLE, shutdown, || dispatch::get(pool, &event.id))
                .await?;
            if let Some(record) = known {
                if record.status.is_final() {
                    tracing::info!(status = %record.status, "already handled; re-publishing its outcome");
                    self.ctx.metrics.duplicates_suppressed.inc();
                    return Ok(Next::duplicate(record));
                }
                if record.status == DispatchStatus::Retrying
                    && record.retry_in_ms > DEFER_THRESHOLD_MS
                {
                    return Ok(self.defer(record.retry_in_ms));
                }
            }
        }
        // Rate limits come before the claim, so waiting never eats into the claim's lease.
        tokio::select! {
            _ = shutdown.cancelled() => return Err(HandleError::Shutdown),
            _ = async {
                self.gap.acquire(due.phone.as_str()).await;
                self.rate.acquire().await;
            } => {}
        }
        let waiting_since = std::time::Instant::now();
        loop {
            let claim = self
                .ctx
                .db_retry(ROLE, shutdown, || self.writes.claim(&event.id, due))
                .await?;
            let wait = match claim {
                Claim::Send { attempt } => {
                    return self.attempt(event, due, attempt).await;
                }
                Claim::Done(record) => {
                    tracing::info!(status = %record.status, "handled meanwhile by another delivery; re-publishing its outcome");
                    self.ctx.metrics.duplicates_suppressed.inc();
                    return Ok(Next::duplicate(*record));
                }
                // Another handler (here or in another process) is calling the provider for this
                // reminder right now; its outcome is ours. Leases are short (one provider
                // call), so polling beats parking the message.
                Claim::Busy { wait } if waiting_since.elapsed() >= BUSY_PARK_AFTER => {
                    return Ok(self.defer(wait.as_millis() as i64));
                }
                Claim::Busy { wait } => {
                    tracing::debug!(
                        lease_left_ms = wait.as_millis() as u64,
                        "another handler is sending this reminder; waiting for its outcome"
                    );
                    wait.clamp(Duration::from_millis(20), MAX_BUSY_POLL)
                }
                Claim::NotYet { wait } if wait.as_millis() as i64 > DEFER_THRESHOLD_MS => {
                    return Ok(self.defer(wait.as_millis() as i64));
                }
                Claim::NotYet { wait } => wait.max(Duration::from_millis(1)),
                Claim::Exhausted(record) => {
                    // Only reachable when the last attempt's handler died mid-call (its outcome
                    // is unknown, so another call could send twice) or when max_attempts was
                    // lowered below the attempts already made.
                    let (code, error) = match (record.status, &record.error_code) {
                        (DispatchStatus::Retrying, Some(code)) => {
                            (code.clone(), record.error.clone().unwrap_or_default())
                        }
                        _ => (
                            "attempts_exhausted".to_string(),
                            "every attempt was used; the last one ended without an answer"
                                .to_string(),
                        ),
                    };
                    tracing::warn!(attempts = record.attempts, %code, "no attempts left; giving up");
                    let record = self
                        .ctx
                        .db_retry(ROLE, shutdown, || {
                            dispatch::record_failed(
                                pool,
                                &event.id,
                                None,
                                &code,
                                &error,
                                Utc::now(),
                            )
                        })
                        .await?;
                    return Ok(self.settled(record));
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return Err(HandleError::Shutdown),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// A copy of a reminder that may not be sent now (backing off after a transient error, or
    /// another handler's attempt is under way): park it until its next attempt is due. The copy
    /// parked after the failure comes back then as well; whichever claims first sends, the
    /// other finds the outcome.
    fn defer(&self, retry_in_ms: i64) -> Next {
        tracing::info!(
            retry_in_ms,
            "the reminder's next attempt is not due yet; parking this copy"
        );
        Next::Retry {
            delay: Duration::from_millis(retry_in_ms.max(0) as u64),
            outcome: "deferred",
        }
    }

    /// What to do after recording an attempt's outcome: publish the reminder's final outcome,
    /// or, when a newer attempt took over and is still under way, park this copy briefly; it
    /// comes back, waits for that attempt's lease and publishes its outcome.
    fn settled(&self, record: DispatchRecord) -> Next {
        if record.status.is_final() {
            Next::publish(record)
        } else {
            self.defer(record.retry_in_ms)
        }
    }

    #[tracing::instrument(skip_all, fields(attempt))]
    async fn attempt(
        &self,
        event: &IncomingEvent,
        due: &MaintenanceDue,
        attempt: i32,
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
        // The provider has answered: what it said must be recorded even if shutdown began
        // meanwhile, or the next delivery would find an expired lease and send again. The
        // session's shutdown timeout still bounds how long this may take.
        let shutdown = &CancellationToken::new();
        match result {
            Ok(receipt) => {
                self.count_send(provider, "sent");
                tracing::info!(to = %due.phone, provider, "reminder sent");
                let sent_at = Utc::now();
                let record = self
                    .ctx
                    .db_retry(ROLE, shutdown, || {
                        self.writes
                            .record_sent(&event.id, &receipt.provider_message_id, sent_at)
                    })
                    .await?;
                Ok(Next::publish(record))
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
                let delay = self.backoff(attempt as u32, e.retry_after);
                tracing::warn!(code = %e.code, error = %e.message, retry_in_ms = delay.as_millis() as u64, "transient provider error; will retry");
                let still_open = self
                    .ctx
                    .db_retry(ROLE, shutdown, || {
                        dispatch::record_retry(pool, &event.id, attempt, &e.code, &e.message, delay)
                    })
                    .await?;
                if still_open {
                    Ok(Next::Retry {
                        delay,
                        outcome: "retry",
                    })
                } else {
                    // Our lease ran out (the answer took longer to record than the lease) and a
                    // newer attempt took over: its outcome is the one that counts.
                    let record = self
                        .ctx
                        .db_retry(ROLE, shutdown, || dispatch::get(pool, &event.id))
                        .await?
                        .ok_or(HandleError::Database(sqlx::Error::RowNotFound))?;
                    Ok(self.settled(record))
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
                        dispatch::record_failed(
                            pool,
                            &event.id,
                            Some(attempt),
                            &e.code,
                            &e.message,
                            Utc::now(),
                        )
                    })
                    .await?;
                Ok(self.settled(record))
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

    /// The wait before retry number `retry`: exponential (`sender.retry_initial_ms` doubling up
    /// to `sender.retry_max_ms`) with jitter (75–100 %) so a burst of failures does not come
    /// back as a burst, and never shorter than the provider's `Retry-After`.
    fn backoff(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let level = self.ctx.settings.sender.retry_delay(retry);
        let jittered = level.mul_f64(rand::random_range(0.75..=1.0));
        retry_after.map_or(jittered, |wanted| jittered.max(wanted))
    }

    /// The delay queue a wait of `wait` parks in: the shortest level of the fixed ladder
    /// (`retry_initial_ms` doubling up to `retry_max_ms`) that covers it, so the number of delay
    /// queues stays small whatever the provider asks. A wait beyond the top level comes back
    /// early and is parked again for the rest (see `defer`).
    fn level_for(&self, wait: Duration) -> Duration {
        let s = &self.ctx.settings.sender;
        let top = Duration::from_millis(s.retry_max_ms);
        (1..=64)
            .map(|n| s.retry_delay(n))
            .find(|level| *level >= wait || *level >= top)
            .unwrap_or(top)
    }

    /// Publishes the message to the delay queue covering `wait`, with a per-message expiration
    /// of exactly `wait` (at most the level); the queue dead-letters it back to the sender queue
    /// when it expires. Expiry happens at the head of a queue only, so a message can wait behind
    /// a longer one of its level, never behind one of a longer level.
    async fn park(
        &self,
        publisher: &Publisher,
        delivery: &Delivery,
        wait: Duration,
    ) -> Result<(), HandleError> {
        let level = self.level_for(wait);
        let queue = self.topology.retry_queue(level);
        let needs_declare = !self
            .declared_delays
            .lock()
            .expect("lock")
            .contains(&level.as_millis());
        if needs_declare {
            answered(
                "declaring a retry queue",
                self.topology
                    .declare_retry_queue(publisher.channel(), level),
            )
            .await
            .map_err(PublishError::Broker)?;
            self.declared_delays
                .lock()
                .expect("lock")
                .insert(level.as_millis());
        }
        let expire = wait.min(level);
        let properties = delivery
            .properties
            .clone()
            .with_expiration(expire.as_millis().to_string().into())
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

/// The sender's prefetch: its sending slots plus room for deliveries that are done and wait for
/// their ack (`broker::acks`).
fn prefetch(concurrency: usize) -> u16 {
    (concurrency + concurrency.div_ceil(4)).min(u16::MAX as usize) as u16
}

/// How long a claim keeps other workers away: the provider call's time-out plus a margin for
/// recording its answer.
fn lease(settings: &crate::configuration::Settings) -> Duration {
    Duration::from_millis(settings.whatsapp.request_timeout_ms) + Duration::from_secs(30)
}
