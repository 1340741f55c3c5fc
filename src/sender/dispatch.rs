//! One reminder's way to an outcome: look up its dispatch record, wait for the rate limits,
//! claim the attempt, call the provider and record its answer. Each step decides what becomes
//! of the message (`Next`): publish the final outcome, or park it until its next attempt.

use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::outcome::OPTED_OUT;
use super::providers::{OutboundMessage, RequestFate};
use super::{DEFER_THRESHOLD_MS, ROLE, Sender};
use crate::configuration::locale_section;
use crate::db::consent;
use crate::db::dispatch::{self, Claim, DispatchRecord, DispatchStatus};
use crate::db::retry::DbError;
use crate::domain::message_template::{MessageVars, format_date, localized_date};
use crate::domain::{IncomingEvent, MaintenanceDue};
use crate::metrics::{ProviderLabels, SendLabels};

/// Longest pause between two claims of a reminder another handler is sending.
const MAX_BUSY_POLL: Duration = Duration::from_millis(500);
/// How long a copy waits in place for another handler's attempt before it is parked instead.
/// A live handler answers within one provider call; a lease still held after this is most
/// likely a dead process's, and waiting it out in place would hold a concurrency slot idle.
const BUSY_PARK_AFTER: Duration = Duration::from_secs(2);

/// What becomes of a message once its reminder's step is done.
pub(super) enum Next {
    /// Publish this final outcome, then ack. `duplicate`: the reminder already had this outcome
    /// before this delivery (a redelivery or a duplicate), so nothing was sent for it.
    Publish {
        record: Box<DispatchRecord>,
        duplicate: bool,
    },
    /// Park the message for `delay`, then ack. `outcome` is the metric label: `retry` after a
    /// transient error, `unknown` after a lost answer (waiting for a status), `deferred` for a
    /// copy that arrived while the reminder was backing off.
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
    /// Sends the reminder unless it already has an outcome; returns what to do with the message.
    pub(super) async fn decide(
        &self,
        event: &IncomingEvent,
        due: &MaintenanceDue,
        shutdown: &CancellationToken,
    ) -> Result<Next, DbError> {
        let pool = &self.ctx.pool;
        if let Some(next) = self.refuse_if_opted_out(event, due, shutdown).await? {
            return Ok(next);
        }
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
                if matches!(
                    record.status,
                    DispatchStatus::Retrying | DispatchStatus::Unknown
                ) && record.retry_in_ms > DEFER_THRESHOLD_MS
                {
                    return Ok(self.defer(record.retry_in_ms));
                }
            }
        }
        // Rate limits come before the claim, so waiting never eats into the claim's lease. A
        // phone's next slot further off than a moment is waited for in a delay queue, not in
        // one of the sending slots everyone else needs.
        let phone = due.phone.as_str();
        let mut slot = self.gap.reserve(phone, &event.id);
        loop {
            let gap_wait = slot.saturating_duration_since(tokio::time::Instant::now());
            if gap_wait.as_millis() as i64 > DEFER_THRESHOLD_MS {
                return Ok(self.defer(gap_wait.as_millis() as i64));
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Err(DbError::Shutdown),
                _ = tokio::time::sleep_until(slot) => {}
            }
            match self.gap.take(phone, &event.id) {
                Ok(()) => break,
                Err(later) => slot = later,
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Err(DbError::Shutdown),
            _ = self.rate.acquire() => {}
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
                // The lost call's wait for a status is over: a status settles it, or it is
                // retrying now and the next claim takes the next attempt.
                Claim::Unknown { wait } if wait.is_zero() => {
                    match self.reconcile(&event.id, shutdown).await? {
                        Some(next) => return Ok(next),
                        None => continue,
                    }
                }
                Claim::Unknown { wait } if wait.as_millis() as i64 > DEFER_THRESHOLD_MS => {
                    return Ok(self.defer(wait.as_millis() as i64));
                }
                Claim::Unknown { wait } => wait,
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
                _ = shutdown.cancelled() => return Err(DbError::Shutdown),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// For a phone opted out now: no provider call; the reminder fails with `opted_out` and
    /// no attempt (or keeps the outcome it already had). `None` when the phone may be messaged,
    /// or when an attempt begun before the opt-out is still under way (its outcome counts).
    async fn refuse_if_opted_out(
        &self,
        event: &IncomingEvent,
        due: &MaintenanceDue,
        shutdown: &CancellationToken,
    ) -> Result<Option<Next>, DbError> {
        let pool = &self.ctx.pool;
        let phone = due.phone.as_str();
        if !self
            .ctx
            .db_retry(ROLE, shutdown, || consent::is_opted_out(pool, phone))
            .await?
        {
            return Ok(None);
        }
        let provider = self.provider.name();
        let settled = self
            .ctx
            .db_retry(ROLE, shutdown, || {
                dispatch::record_opted_out(
                    pool,
                    &event.id,
                    due,
                    provider,
                    "the customer opted out of reminders",
                )
            })
            .await?;
        if let Some(record) = settled {
            tracing::info!(to = %due.phone, "the phone is opted out; not sending");
            self.count_send(provider, OPTED_OUT);
            return Ok(Some(Next::publish(record)));
        }
        let known = self
            .ctx
            .db_retry(ROLE, shutdown, || dispatch::get(pool, &event.id))
            .await?;
        Ok(match known {
            Some(record) if record.status.is_final() => {
                self.ctx.metrics.duplicates_suppressed.inc();
                Some(Next::duplicate(record))
            }
            _ => None,
        })
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
    pub(super) fn settled(&self, record: DispatchRecord) -> Next {
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
    ) -> Result<Next, DbError> {
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
            // The provider may have sent it: wait for a status rather than risk a second send
            // (on the last attempt too, since a status can still show it went out).
            Err(e) if e.fate.may_have_reached() && !self.unknown_outcome_wait().is_zero() => {
                self.count_send(provider, "unknown");
                self.hold_unknown(&event.id, attempt, &e, shutdown).await
            }
            // Accepted without a readable id, and no status will be waited for: a retry could
            // send twice, so it counts as sent.
            Err(e) if e.fate == RequestFate::AcceptedUnreadable => {
                self.count_send(provider, "sent");
                tracing::warn!(error = %e.message, "accepted without a readable id; counted as sent");
                let sent_at = Utc::now();
                let record = self
                    .ctx
                    .db_retry(ROLE, shutdown, || {
                        self.writes.record_sent(&event.id, "unknown", sent_at)
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
                        .ok_or(DbError::Fatal(sqlx::Error::RowNotFound))?;
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
        let w = &self.ctx.settings.whatsapp;
        let locale = due
            .locale
            .clone()
            .unwrap_or_else(|| w.default_locale.clone());
        // A locale neither configured nor known to the date library gets the defaults, the
        // date included.
        let date_locale = if locale_section(&w.locales, &locale).is_some()
            || localized_date(due.due_date, &locale).is_some()
        {
            locale.as_str()
        } else {
            w.default_locale.as_str()
        };
        let template = self
            .locale_templates
            .get(&locale)
            .or_else(|| {
                let language = locale.split(['-', '_']).next()?.to_ascii_lowercase();
                self.locale_templates.get(&language)
            })
            .unwrap_or(&self.template);
        let text = template.render(&MessageVars {
            customer_name: &due.customer_name,
            plate_number: &due.plate_number,
            vehicle: due.vehicle.as_deref(),
            due_date: due.due_date,
            locale: date_locale,
        });
        OutboundMessage {
            reminder_id: event.id.clone(),
            to: due.phone.clone(),
            customer_name: due.customer_name.clone(),
            plate_number: due.plate_number.clone(),
            vehicle: due.vehicle.clone(),
            due_date: due.due_date,
            due_date_text: format_date(due.due_date, date_locale),
            locale,
            text,
        }
    }
}
