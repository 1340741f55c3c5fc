//! The producer role: finds the vehicles whose maintenance is due within
//! `producer.days_ahead` days and publishes one `maintenance.due` per vehicle, on a cron
//! schedule (daily by default) or on demand.
//!
//! Exactly once per vehicle and day: the event id is derived from (vehicle, due date, scan
//! date), so scanning twice, restarting mid-scan or running two replicas publishes the same ids
//! and the sender sends each once. An advisory lock lets one replica scan at a time; a
//! scheduled scan that finds today's scan already done by another replica skips.
//!
//! The scan streams rows from PostgreSQL and publishes with a window of unconfirmed publishes,
//! so a fleet of millions needs neither memory nor one round trip per vehicle.

pub mod schedule;
pub mod selection;

use std::time::Instant;

use anyhow::Context as _;
use chrono::{DateTime, Days, NaiveDate, Utc};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::broker::PublishError;
use crate::broker::pipeline::PipelinedPublisher;
use crate::broker::publisher::Outgoing;
use crate::context::AppContext;
use crate::db::master_data::{self, DueVehicle};
use crate::db::producer_runs::{self, RunCounts};
use crate::domain::events::{MAINTENANCE_DUE, maintenance_due_id};
use crate::domain::{CountryCode, OutgoingEvent};
use crate::metrics::{OutcomeLabels, ReasonLabels};
use selection::{Decision, SkipReason};

const ROLE: &str = "producer";
/// Advisory lock key: one scanning producer per database.
const SCAN_LOCK: i64 = 0x7265_6d69_6e64_6572; // "reminder"
/// Vehicles read per statement of a scan (each page is one index range in due-date order).
/// Publishing waits while a page is read, so pages are large enough for that wait to be a small
/// part of the scan, and small enough (a few MiB of rows) to hold in memory.
const SCAN_PAGE: i64 = 20_000;

/// What started a scan, recorded with the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Schedule,
    CatchUp,
    Manual,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::CatchUp => "catch_up",
            Trigger::Manual => "manual",
        }
    }
}

/// The result of one scan.
#[derive(Debug, Clone, Serialize)]
pub struct ScanSummary {
    pub run_date: NaiveDate,
    pub window_from: NaiveDate,
    pub window_to: NaiveDate,
    pub vehicles_scanned: u64,
    pub events_published: u64,
    pub skipped_invalid_phone: u64,
    pub skipped_invalid_data: u64,
    pub skipped_opted_out: u64,
    pub skipped_already_replied: u64,
    /// True when another replica had already done this scan and this one did nothing.
    pub skipped_as_done: bool,
    pub duration_ms: u64,
}

impl std::fmt::Display for ScanSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.skipped_as_done {
            return write!(
                f,
                "scan for {} already done by another producer; nothing published",
                self.run_date
            );
        }
        write!(
            f,
            "scan for {}: {} vehicles due {}..={}, {} events published, {} skipped (invalid phone), {} skipped (invalid data), {} skipped (opted out), {} skipped (already replied), {} ms",
            self.run_date,
            self.vehicles_scanned,
            self.window_from,
            self.window_to,
            self.events_published,
            self.skipped_invalid_phone,
            self.skipped_invalid_data,
            self.skipped_opted_out,
            self.skipped_already_replied,
            self.duration_ms
        )
    }
}

pub struct Producer {
    ctx: AppContext,
    country: CountryCode,
}

impl Producer {
    pub fn new(ctx: AppContext) -> anyhow::Result<Producer> {
        let country = CountryCode::parse(&ctx.settings.whatsapp.default_country_code)
            .context("whatsapp.default_country_code")?;
        Ok(Producer { ctx, country })
    }

    pub fn context(&self) -> &AppContext {
        &self.ctx
    }

    /// Today in the workshop's time zone.
    pub fn today(&self) -> NaiveDate {
        self.date_at(Utc::now())
    }

    /// The workshop's calendar date at `now`: at 00:30 in Jakarta it is already the next day
    /// there while UTC is still on the previous one.
    pub fn date_at(&self, now: DateTime<Utc>) -> NaiveDate {
        let tz = self
            .ctx
            .settings
            .producer
            .tz()
            .expect("validated at start-up");
        now.with_timezone(&tz).date_naive()
    }

    /// Scans for `run_date` and publishes every due vehicle. With `unless_done_since`, a scan
    /// for the same date that succeeded after that time (another replica's) makes this one a
    /// no-op.
    #[tracing::instrument(skip_all, fields(role = ROLE, %run_date, trigger = trigger.as_str()))]
    pub async fn scan(
        &self,
        run_date: NaiveDate,
        trigger: Trigger,
        unless_done_since: Option<DateTime<Utc>>,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<ScanSummary> {
        let started = Instant::now();
        let p = &self.ctx.settings.producer;
        let window_from = run_date
            .checked_sub_days(Days::new(p.overdue_days as u64))
            .context("date out of range")?;
        let window_to = run_date
            .checked_add_days(Days::new(p.days_ahead as u64))
            .context("date out of range")?;
        let mut summary = ScanSummary {
            run_date,
            window_from,
            window_to,
            vehicles_scanned: 0,
            events_published: 0,
            skipped_invalid_phone: 0,
            skipped_invalid_data: 0,
            skipped_opted_out: 0,
            skipped_already_replied: 0,
            skipped_as_done: false,
            duration_ms: 0,
        };
        let pool = &self.ctx.pool;
        let mut conn = pool.acquire().await.context("connecting to the database")?;
        // The lock lives as long as this connection; closing it (not returning it to the pool)
        // releases the lock on every path, errors included.
        conn.close_on_drop();
        let free: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(SCAN_LOCK)
            .fetch_one(&mut *conn)
            .await?;
        if !free {
            tracing::info!("another producer is scanning; waiting for it to finish");
            tokio::select! {
                _ = shutdown.cancelled() => anyhow::bail!("shutting down"),
                r = sqlx::query("SELECT pg_advisory_lock($1)").bind(SCAN_LOCK).execute(&mut *conn) => { r?; }
            }
        }
        if let Some(since) = unless_done_since
            && producer_runs::succeeded_since(pool, run_date, since).await?
        {
            tracing::info!("today's scan was already done by another producer; skipping");
            summary.skipped_as_done = true;
            self.ctx
                .metrics
                .producer_runs
                .get_or_create(&OutcomeLabels { outcome: "skipped" })
                .inc();
            return Ok(summary);
        }
        let run_id = producer_runs::start(pool, run_date, trigger.as_str()).await?;
        let result = self
            .publish_due(&mut conn, run_date, &mut summary, shutdown)
            .await;
        summary.duration_ms = started.elapsed().as_millis() as u64;
        let counts = RunCounts {
            vehicles_scanned: summary.vehicles_scanned,
            events_published: summary.events_published,
            skipped_invalid_phone: summary.skipped_invalid_phone,
            skipped_invalid_data: summary.skipped_invalid_data,
        };
        let m = &self.ctx.metrics;
        m.producer_scan_duration
            .observe(started.elapsed().as_secs_f64());
        match &result {
            Ok(()) => {
                producer_runs::finish(pool, run_id, counts, None).await?;
                m.producer_runs
                    .get_or_create(&OutcomeLabels {
                        outcome: "succeeded",
                    })
                    .inc();
                tracing::info!("{summary}");
            }
            Err(e) => {
                let reason = format!("{e:#}");
                if let Err(e) = producer_runs::finish(pool, run_id, counts, Some(&reason)).await {
                    tracing::warn!(error = %e, "could not record the failed run");
                }
                m.producer_runs
                    .get_or_create(&OutcomeLabels { outcome: "failed" })
                    .inc();
            }
        }
        result.map(|()| summary)
    }

    async fn publish_due(
        &self,
        conn: &mut sqlx::PgConnection,
        run_date: NaiveDate,
        summary: &mut ScanSummary,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let broker = &self.ctx.broker;
        let exchange = broker.settings().exchange.clone();
        let source = self.ctx.settings.producer.source.clone();
        let mut publisher =
            PipelinedPublisher::new(broker, shutdown, broker.settings().publish_window);
        let now = Utc::now();
        let mut after = None;
        loop {
            let page = master_data::due_vehicles_page(
                conn,
                summary.window_from,
                summary.window_to,
                after,
                SCAN_PAGE,
            )
            .await
            .context("reading due vehicles")?;
            let Some(last) = page.last() else {
                break;
            };
            after = Some((last.next_maintenance_date, last.vehicle_id));
            let full = page.len() as i64 == SCAN_PAGE;
            summary.vehicles_scanned += page.len() as u64;
            let settings = &self.ctx.settings.producer;
            let decided = selection::select(conn, settings, &self.country, run_date, page)
                .await
                .context("selecting the vehicles to remind")?;
            for (vehicle, decision) in decided {
                let due = match decision {
                    Decision::Remind(due) => *due,
                    Decision::Skip(reason) => {
                        self.skipped(&vehicle, reason, summary);
                        continue;
                    }
                };
                let id =
                    maintenance_due_id(vehicle.vehicle_id, vehicle.next_maintenance_date, run_date);
                let body =
                    OutgoingEvent::new(id.clone(), source.as_str(), MAINTENANCE_DUE, now, due)
                        .to_bytes();
                publisher
                    .send(Outgoing::event(&exchange, MAINTENANCE_DUE, &id, body))
                    .await
                    .map_err(shutdown_error)?;
            }
            if !full {
                break;
            }
        }
        let confirmed = publisher.flush().await.map_err(shutdown_error)?;
        summary.events_published = confirmed;
        self.ctx
            .metrics
            .events_published
            .get_or_create(&crate::metrics::TypeLabels {
                r#type: MAINTENANCE_DUE.to_string(),
            })
            .inc_by(confirmed);
        if publisher.republished() > 0 {
            tracing::info!(
                republished = publisher.republished(),
                "some publishes were repeated after broker trouble"
            );
        }
        Ok(())
    }

    /// Counts and logs a vehicle the scan skips.
    fn skipped(&self, v: &DueVehicle, reason: SkipReason, summary: &mut ScanSummary) {
        match reason {
            SkipReason::InvalidPhone => {
                tracing::warn!(customer_id = %v.customer_id, vehicle_id = %v.vehicle_id, "skipping a vehicle: its customer's phone number is unusable");
                summary.skipped_invalid_phone += 1;
            }
            SkipReason::InvalidData => {
                tracing::warn!(customer_id = %v.customer_id, vehicle_id = %v.vehicle_id, "skipping a vehicle: customer name or plate number is empty");
                summary.skipped_invalid_data += 1;
            }
            SkipReason::OptedOut => {
                tracing::info!(customer_id = %v.customer_id, vehicle_id = %v.vehicle_id, "skipping a vehicle: its customer's phone is opted out");
                summary.skipped_opted_out += 1;
            }
            SkipReason::AlreadyReplied => {
                tracing::info!(customer_id = %v.customer_id, vehicle_id = %v.vehicle_id, "skipping a vehicle: its customer replied since the first reminder for this due date");
                summary.skipped_already_replied += 1;
            }
        }
        self.ctx
            .metrics
            .producer_skipped
            .get_or_create(&ReasonLabels {
                reason: reason.as_str(),
            })
            .inc();
    }
}

fn shutdown_error(e: PublishError) -> anyhow::Error {
    anyhow::Error::new(e).context("publishing interrupted")
}
