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
//! The consume session is in `session` (on the loop shared with the tracker,
//! `broker::consume`), claiming, sending and recording in `dispatch`, parking and retry delays
//! in `parking`, and the outcome event in `outcome`.
//!
//! `reminder_events_consumed_total{role="sender"}` outcomes: `sent`, `failed` (this delivery
//! produced the outcome), `duplicate` (the reminder already had it: re-published, nothing
//! sent), `retry` (parked after a transient error), `unknown` (parked after a lost answer to
//! wait for a delivery status, see `unknown`), `deferred` (a copy parked because its reminder is
//! backing off), `quiet_hours` (parked until the send window opens), `dead_lettered`, `error`
//! (requeued after a database error).

mod dispatch;
pub mod outcome;
pub mod parking;
pub mod providers;
pub mod rate_limit;
mod session;
mod unknown;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::broker::Topology;
use crate::broker::consume::{self, ConsumeOptions};
use crate::configuration::{SendWindow, Settings};
use crate::context::AppContext;
use crate::db::dispatch::DispatchWrites;
use crate::domain::{CountryCode, MessageTemplate};
use parking::DeclaredDelays;
use providers::WhatsappProvider;
use rate_limit::{RateLimiter, RecipientGap, WindowGuard};

const ROLE: &str = "sender";
/// A reminder backing off for longer than this is parked again rather than waited for in place.
const DEFER_THRESHOLD_MS: i64 = 50;

pub struct Sender {
    ctx: AppContext,
    provider: Arc<dyn WhatsappProvider>,
    template: MessageTemplate,
    /// The text of locales whose section sets `message_template`.
    locale_templates: HashMap<String, MessageTemplate>,
    country: CountryCode,
    rate: RateLimiter,
    /// The same limit again, right before the provider call. `rate` is taken before the claim
    /// (so waiting never eats into the lease), but the claim's round trip and a busy runtime
    /// delay some sends and bunch them with later ones, which could break the provider's limit
    /// within one second. This guard counts real send times; it only waits after such a stall,
    /// for at most the stall's length.
    pace: WindowGuard,
    gap: RecipientGap,
    topology: Topology,
    /// Retry delay queues declared on the current session's channels.
    declared_delays: DeclaredDelays,
    /// Claims and recorded sends of the reminders in flight, a statement for many at once.
    writes: DispatchWrites,
    /// Quiet hours: outside them a reminder is parked until the window opens.
    window: SendWindow,
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
        let window = ctx.settings.send_window().context("sender.send_window")?;
        let mut locale_templates = HashMap::new();
        for (name, locale) in &w.locales {
            if let Some(text) = &locale.message_template {
                let parsed = MessageTemplate::parse(text).map_err(|e| {
                    anyhow::anyhow!("whatsapp.locales.{name}.message_template: {e}")
                })?;
                locale_templates.insert(name.clone(), parsed);
            }
        }
        Ok(Sender {
            locale_templates,
            window,
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
            declared_delays: DeclaredDelays::default(),
            ctx,
        })
    }

    /// Consumes until `shutdown`, reconnecting whenever the broker goes away.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(provider = self.provider.name(), queue = %self.topology.sender_queue, "sender started");
        let settings = &self.ctx.settings;
        let options = ConsumeOptions {
            queue: self.topology.sender_queue.clone(),
            prefetch: prefetch(settings.sender.concurrency),
            slots: settings.sender.concurrency,
            grace: settings.runtime.shutdown_timeout(),
        };
        consume::run(
            self.clone(),
            &self.ctx.broker,
            &self.ctx.metrics,
            &options,
            &shutdown,
        )
        .await
    }
}

/// The sender's prefetch: its sending slots plus room for deliveries that are done and wait for
/// their ack (`broker::acks`).
fn prefetch(concurrency: usize) -> u16 {
    (concurrency + concurrency.div_ceil(4)).min(u16::MAX as usize) as u16
}

/// How long a claim keeps other workers away: the provider call's time-out plus a margin for
/// recording its answer.
fn lease(settings: &Settings) -> Duration {
    Duration::from_millis(settings.whatsapp.request_timeout_ms) + Duration::from_secs(30)
}
