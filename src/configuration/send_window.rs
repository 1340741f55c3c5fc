//! Quiet hours: `sender.send_window` ("HH:MM-HH:MM", empty for any time; a window may cross
//! midnight) and `sender.send_days`, in the workshop's time zone. A reminder outside them waits
//! until the next opening.

use std::time::Duration;

use chrono::{DateTime, Datelike, Days, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

use super::{ConfigError, invalid};

/// When reminders may go out.
#[derive(Debug, Clone)]
pub struct SendWindow {
    /// Start and end of each day's window; `None` for the whole day.
    hours: Option<(NaiveTime, NaiveTime)>,
    days: [bool; 7],
    tz: Tz,
}

impl SendWindow {
    pub fn parse(window: &str, days: &[String], tz: Tz) -> Result<SendWindow, ConfigError> {
        let hours = if window.trim().is_empty() {
            None
        } else {
            let (a, b) = window
                .trim()
                .split_once('-')
                .ok_or_else(|| invalid("sender.send_window", "must be \"HH:MM-HH:MM\" or empty"))?;
            let time = |s: &str| {
                NaiveTime::parse_from_str(s.trim(), "%H:%M").map_err(|_| {
                    invalid("sender.send_window", format!("{s:?} is not a time HH:MM"))
                })
            };
            let (start, end) = (time(a)?, time(b)?);
            if start == end {
                return Err(invalid(
                    "sender.send_window",
                    "start and end are equal; leave it empty for any time",
                ));
            }
            Some((start, end))
        };
        let mut allowed = [false; 7];
        for d in days {
            let day: Weekday = d.trim().parse().map_err(|_| {
                invalid("sender.send_days", format!("{d:?} is not a day (mon..sun)"))
            })?;
            allowed[day.num_days_from_monday() as usize] = true;
        }
        if !allowed.contains(&true) {
            return Err(invalid("sender.send_days", "must list at least one day"));
        }
        Ok(SendWindow {
            hours,
            days: allowed,
            tz,
        })
    }

    fn allowed(&self, day: Weekday) -> bool {
        self.days[day.num_days_from_monday() as usize]
    }

    /// Whether a reminder may go out at `now`. The part of a window after midnight belongs to
    /// the day it started on.
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        let local = now.with_timezone(&self.tz);
        let (today, t) = (local.weekday(), local.time());
        match self.hours {
            None => self.allowed(today),
            Some((start, end)) if start < end => self.allowed(today) && t >= start && t < end,
            Some((start, end)) => {
                (self.allowed(today) && t >= start) || (self.allowed(today.pred()) && t < end)
            }
        }
    }

    /// How long until reminders may go out; `None` when they may now.
    pub fn wait(&self, now: DateTime<Utc>) -> Option<Duration> {
        if self.is_open(now) {
            return None;
        }
        let start = self.hours.map_or(NaiveTime::MIN, |(s, _)| s);
        let local_date = now.with_timezone(&self.tz).date_naive();
        (0..=8)
            .filter_map(|n| local_date.checked_add_days(Days::new(n)))
            .filter_map(|d| self.tz.from_local_datetime(&d.and_time(start)).earliest())
            .map(|t| t.with_timezone(&Utc))
            .find(|t| *t > now && self.is_open(*t))
            .map(|t| (t - now).to_std().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_days() -> Vec<String> {
        ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
            .map(String::from)
            .to_vec()
    }

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        // 2026-12-05 is a Saturday; Jakarta is UTC+7.
        chrono_tz::Asia::Jakarta
            .with_ymd_and_hms(2026, 12, 5, h, m, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_window_opens_and_closes_at_its_times() {
        let w = SendWindow::parse("08:00-20:00", &all_days(), chrono_tz::Asia::Jakarta).unwrap();
        assert!(w.is_open(at(8, 0)));
        assert!(!w.is_open(at(20, 0)));
        assert_eq!(w.wait(at(7, 30)), Some(Duration::from_secs(30 * 60)));
        assert_eq!(w.wait(at(21, 0)), Some(Duration::from_secs(11 * 3600)));
    }

    #[test]
    fn a_window_may_cross_midnight_and_skip_days() {
        let w = SendWindow::parse("22:00-02:00", &all_days(), chrono_tz::Asia::Jakarta).unwrap();
        assert!(w.is_open(at(23, 0)));
        assert!(w.is_open(at(1, 0)));
        assert!(!w.is_open(at(12, 0)));
        let weekdays = ["mon", "tue", "wed", "thu", "fri"].map(String::from);
        let w = SendWindow::parse("", &weekdays, chrono_tz::Asia::Jakarta).unwrap();
        // Saturday 10:00 waits for Monday 00:00.
        assert_eq!(
            w.wait(at(10, 0)),
            Some(Duration::from_secs((14 + 24) * 3600))
        );
        assert!(SendWindow::parse("8-20", &weekdays, chrono_tz::Asia::Jakarta).is_err());
        assert!(SendWindow::parse("", &["funday".into()], chrono_tz::Asia::Jakarta).is_err());
    }
}
