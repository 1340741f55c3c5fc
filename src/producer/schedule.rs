//! The producer's clock: scans at each `producer.schedule` time (cron, in `producer.timezone`),
//! and once at start-up when today's scheduled time has passed without a successful scan (a
//! deploy or crash over the scheduled minute must not skip a day).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use tokio_util::sync::CancellationToken;

use super::{Producer, ScanSummary, Trigger};
use crate::backoff::Backoff;
use crate::db::producer_runs;

impl Producer {
    /// Runs the schedule until `shutdown`.
    pub async fn run_scheduled(self: Arc<Self>, shutdown: CancellationToken) -> anyhow::Result<()> {
        let settings = &self.context().settings.producer;
        let cron = settings.cron()?;
        let tz = settings.tz()?;
        tracing::info!(schedule = %settings.schedule, timezone = %tz, "producer started");
        // The history's daily prune rides with the producer: one role, one lock, one replica.
        tokio::spawn(crate::reporting::retention::run_daily(
            self.context().clone(),
            shutdown.clone(),
        ));
        if settings.catch_up_on_start {
            self.catch_up(Utc::now(), &shutdown).await;
        }
        loop {
            let now = Utc::now().with_timezone(&tz);
            let next = match cron.find_next_occurrence(&now, false) {
                Ok(next) => next,
                Err(e) => anyhow::bail!("producer.schedule has no next run: {e}"),
            };
            let wait = (next.with_timezone(&Utc) - Utc::now())
                .to_std()
                .unwrap_or_default();
            tracing::debug!(next_run = %next, "waiting for the next scheduled scan");
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(wait) => {}
            }
            self.scan_until_done(
                next.date_naive(),
                Trigger::Schedule,
                next.with_timezone(&Utc),
                tz,
                &shutdown,
            )
            .await;
        }
    }

    /// Runs today's scan if its scheduled time (before `now`) passed without a successful scan;
    /// returns the scan's summary, or `None` when nothing was missed.
    pub async fn catch_up(
        &self,
        now: DateTime<Utc>,
        shutdown: &CancellationToken,
    ) -> Option<ScanSummary> {
        let settings = &self.context().settings.producer;
        let (cron, tz) = (settings.cron().ok()?, settings.tz().ok()?);
        let now = now.with_timezone(&tz);
        let due = missed_run(&cron, now)?;
        let done = self
            .context()
            .db_retry("producer", shutdown, || {
                producer_runs::succeeded_since(&self.context().pool, now.date_naive(), due)
            })
            .await
            .ok()?;
        if done {
            return None;
        }
        tracing::info!(scheduled_at = %due, "today's scheduled scan was missed; running it now");
        self.scan_until_done(now.date_naive(), Trigger::CatchUp, due, tz, shutdown)
            .await
    }

    /// Retries a failed scan with back-off for as long as `run_date` is still today.
    async fn scan_until_done(
        &self,
        run_date: NaiveDate,
        trigger: Trigger,
        scheduled_at: DateTime<Utc>,
        tz: Tz,
        shutdown: &CancellationToken,
    ) -> Option<ScanSummary> {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        loop {
            match self
                .scan(run_date, trigger, Some(scheduled_at), shutdown)
                .await
            {
                Ok(summary) => return Some(summary),
                Err(e) => {
                    if shutdown.is_cancelled() {
                        return None;
                    }
                    tracing::warn!(error = %format!("{e:#}"), "scan failed; retrying");
                    if Utc::now().with_timezone(&tz).date_naive() != run_date {
                        tracing::error!(%run_date, "giving up on the scan: the day is over");
                        return None;
                    }
                    if !backoff.sleep(shutdown).await {
                        return None;
                    }
                }
            }
        }
    }
}

/// The scheduled time earlier today that a process starting at `now` has missed, if any.
pub fn missed_run(cron: &croner::Cron, now: DateTime<Tz>) -> Option<DateTime<Utc>> {
    let previous = cron.find_previous_occurrence(&now, true).ok()?;
    (previous.date_naive() == now.date_naive()).then(|| previous.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::str::FromStr;

    #[test]
    fn a_start_after_todays_run_time_has_missed_it() {
        let cron = croner::Cron::from_str("0 8 * * *").unwrap();
        let jakarta: Tz = "Asia/Jakarta".parse().unwrap();
        let at_nine = jakarta.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap();
        let missed = missed_run(&cron, at_nine).unwrap();
        assert_eq!(missed, Utc.with_ymd_and_hms(2026, 11, 25, 1, 0, 0).unwrap());
        let at_seven = jakarta.with_ymd_and_hms(2026, 11, 25, 7, 0, 0).unwrap();
        assert_eq!(missed_run(&cron, at_seven), None);
    }
}
