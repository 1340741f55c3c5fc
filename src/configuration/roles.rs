//! The `producer`, `sender` and `tracker` sections: how each role does its work.

use std::str::FromStr;
use std::time::Duration;

use chrono_tz::Tz;
use serde::Deserialize;

use super::{ConfigError, invalid};

#[derive(Debug, Clone, Deserialize)]
pub struct ProducerSettings {
    pub schedule: String,
    pub timezone: String,
    pub days_ahead: u32,
    pub overdue_days: u32,
    pub catch_up_on_start: bool,
    pub source: String,
    /// Days before the due date on which a vehicle is reminded (negative: days overdue).
    pub remind_days_before: Vec<i32>,
    /// A customer who replied since the first reminder for a due date is not reminded again.
    pub skip_after_reply: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SenderSettings {
    pub concurrency: usize,
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    pub recipient_interval_ms: u64,
    /// "HH:MM-HH:MM" in producer.timezone; empty: any time.
    pub send_window: String,
    pub send_days: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TrackerSettings {
    pub batch_size: usize,
    pub batch_linger_ms: u64,
    pub batches_in_flight: usize,
}

impl ProducerSettings {
    pub fn cron(&self) -> Result<croner::Cron, ConfigError> {
        croner::Cron::from_str(&self.schedule)
            .map_err(|e| invalid("producer.schedule", format!("not a cron expression: {e}")))
    }
    /// Every cadence day lies within the scan's window, `-overdue_days..=days_ahead`.
    pub fn check_cadence(&self) -> Result<(), ConfigError> {
        let (low, high) = (-i64::from(self.overdue_days), i64::from(self.days_ahead));
        if self.remind_days_before.is_empty() {
            return Err(invalid(
                "producer.remind_days_before",
                "must list at least one day",
            ));
        }
        if let Some(bad) = self
            .remind_days_before
            .iter()
            .find(|d| !(low..=high).contains(&i64::from(**d)))
        {
            return Err(invalid(
                "producer.remind_days_before",
                format!(
                    "{bad} is outside {low}..={high} (-producer.overdue_days..=producer.days_ahead)"
                ),
            ));
        }
        Ok(())
    }

    pub fn tz(&self) -> Result<Tz, ConfigError> {
        self.timezone.parse::<Tz>().map_err(|_| {
            invalid(
                "producer.timezone",
                format!("unknown time zone {:?}", self.timezone),
            )
        })
    }
}

impl SenderSettings {
    /// Delay before retry number `retry` (1-based), before jitter.
    pub fn retry_delay(&self, retry: u32) -> Duration {
        let factor = 1u64 << retry.saturating_sub(1).min(30);
        Duration::from_millis(
            self.retry_initial_ms
                .saturating_mul(factor)
                .min(self.retry_max_ms),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::Settings;
    use super::*;

    #[test]
    fn retry_delays_double_up_to_the_cap() {
        let s = Settings::defaults().sender;
        assert_eq!(s.retry_delay(1), Duration::from_millis(s.retry_initial_ms));
        assert_eq!(
            s.retry_delay(2),
            Duration::from_millis(2 * s.retry_initial_ms)
        );
        assert_eq!(s.retry_delay(40), Duration::from_millis(s.retry_max_ms));
    }
}
