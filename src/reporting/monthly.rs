//! Gathers one calendar month's management report from the database, with the same queries the
//! JSON routes answer from (so the PDF's figures equal `/statistics?from=<first>&to=<last>` and
//! `/daily` for that month), and renders it with `monthly_pdf`.

use anyhow::Context as _;
use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use chrono_tz::Tz;
use sqlx::PgPool;

use super::monthly_pdf::{self, Day, FailureReason, Figures, MonthlyReport, TopPair};
use super::never_reminded::{self, Window};
use crate::api::params::start_of_day;
use crate::db::reports::{self, Period, Statistics};

/// A month given as `YYYY-MM` that is not one.
#[derive(Debug, thiserror::Error)]
#[error("month must be YYYY-MM (e.g. 2026-11), got {0:?}")]
pub struct BadMonth(pub String);

/// The first day of the month `YYYY-MM`.
pub fn parse_month(raw: &str) -> Result<NaiveDate, BadMonth> {
    let raw = raw.trim();
    let well_formed = raw.len() == 7
        && raw.as_bytes()[4] == b'-'
        && raw
            .bytes()
            .enumerate()
            .all(|(i, b)| i == 4 || b.is_ascii_digit());
    well_formed
        .then(|| NaiveDate::parse_from_str(&format!("{raw}-01"), "%Y-%m-%d").ok())
        .flatten()
        .filter(|d| d.year() >= 1970)
        .ok_or_else(|| BadMonth(raw.chars().take(40).collect()))
}

/// The first day of the month before the one `now` falls in, in the workshop's zone.
pub fn previous_month(tz: Tz, now: DateTime<Utc>) -> NaiveDate {
    let today = now.with_timezone(&tz).date_naive();
    let first = today.with_day(1).expect("every month has a first day");
    first.checked_sub_months(Months::new(1)).unwrap_or(first)
}

/// Builds the month's report from the database.
pub async fn gather(
    pool: &PgPool,
    tz: Tz,
    days_ahead: u32,
    first: NaiveDate,
    generated_at: DateTime<Utc>,
) -> anyhow::Result<MonthlyReport> {
    let next = first
        .checked_add_months(Months::new(1))
        .context("month out of range")?;
    let last = next.pred_opt().context("month out of range")?;
    let (start, end) = (start_of_day(tz, first), start_of_day(tz, next));
    let period = Period {
        start: Some(start),
        end: Some(end),
    };
    let stats = reports::statistics(pool, Some(period), (Some(first), Some(last))).await?;
    let per_day = reports::daily(pool, tz.name(), start, end).await?;
    let mut per_day = per_day.into_iter().peekable();
    let daily = first
        .iter_days()
        .take_while(|d| *d <= last)
        .map(|date| {
            let (sent, failed, delivered, read) = match per_day.next_if(|c| c.day == date) {
                Some(c) => (c.sent, c.failed, c.delivered, c.read),
                None => (0, 0, 0, 0),
            };
            Day {
                date,
                sent,
                failed,
                delivered,
                read,
            }
        })
        .collect();
    let window = Window {
        from: first,
        to: last,
        days_ahead: i32::try_from(days_ahead).unwrap_or(i32::MAX),
        tz: tz.name().to_string(),
    };
    let (delivered, read, replies, opted_out) = hearing_back(&stats);
    Ok(MonthlyReport {
        month: first,
        workshop_tz: tz.name().to_string(),
        generated_at,
        figures: Figures {
            sent: stats.total_messages,
            failed: stats.total_failed,
            delivered,
            read,
            replies,
            opted_out,
            unique_customers: stats.unique_customers,
            unique_vehicles: stats.unique_vehicles,
        },
        daily,
        top_pairs: top_pairs(pool, start, end).await?,
        failure_reasons: failure_reasons(pool, start, end).await?,
        never_reminded: never_reminded::count(pool, &window).await?,
    })
}

/// Gathers and renders the month's report as PDF bytes.
pub async fn pdf(
    pool: &PgPool,
    tz: Tz,
    days_ahead: u32,
    first: NaiveDate,
) -> anyhow::Result<Vec<u8>> {
    let report = gather(pool, tz, days_ahead, first, Utc::now()).await?;
    // Rendering is CPU work of a few hundred milliseconds at most; keep it off the I/O threads.
    let bytes = tokio::task::spawn_blocking(move || monthly_pdf::render(&report))
        .await
        .context("the PDF renderer stopped")??;
    Ok(bytes)
}

/// The figures that come from hearing back (statuses, replies, consent), as the JSON
/// statistics give them for the same period.
fn hearing_back(stats: &Statistics) -> (i64, i64, i64, i64) {
    (
        stats.total_delivered,
        stats.total_read,
        stats.total_replies,
        stats.opted_out,
    )
}

/// The pairs sent the most messages in `[start, end)`, most first (ties by customer name).
async fn top_pairs(
    pool: &PgPool,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Vec<TopPair>, sqlx::Error> {
    let rows: Vec<(Option<String>, Option<String>, i64)> = sqlx::query_as(
        "WITH m AS (
             SELECT id_customer, id_vehicle, count(*) AS n FROM message_log
             WHERE status = 'sent' AND at >= $1 AND at < $2
             GROUP BY id_customer, id_vehicle
             ORDER BY n DESC, id_customer, id_vehicle LIMIT $3
         )
         SELECT coalesce(c.name, r.customer_name), coalesce(v.plate_number, r.plate_number), m.n
         FROM m
         LEFT JOIN whatsapp_report r ON r.id_customer = m.id_customer AND r.id_vehicle = m.id_vehicle
         LEFT JOIN customers c ON c.id = m.id_customer
         LEFT JOIN vehicles v ON v.id = m.id_vehicle
         ORDER BY m.n DESC, m.id_customer, m.id_vehicle",
    )
    .bind(start)
    .bind(end)
    .bind(monthly_pdf::MAX_TOP_PAIRS as i64)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(name, plate, n)| TopPair {
            customer_name: name.unwrap_or_else(|| "(unknown)".into()),
            plate_number: plate.unwrap_or_else(|| "(unknown)".into()),
            frequency: n,
        })
        .collect())
}

/// Failures in `[start, end)` by error code, most common first, each with its latest message.
async fn failure_reasons(
    pool: &PgPool,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Vec<FailureReason>, sqlx::Error> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT coalesce(error_code, ''),
                coalesce((array_agg(error ORDER BY at DESC))[1], ''),
                count(*)
         FROM message_log WHERE status = 'failed' AND at >= $1 AND at < $2
         GROUP BY 1 ORDER BY 3 DESC, 1",
    )
    .bind(start)
    .bind(end)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(error_code, error, count)| FailureReason {
            error_code,
            error,
            count,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_strictly() {
        assert_eq!(
            parse_month("2026-11").unwrap(),
            NaiveDate::from_ymd_opt(2026, 11, 1).unwrap()
        );
        for bad in [
            "2026-13",
            "2026-1",
            "26-11",
            "2026/11",
            "2026-11-01",
            "",
            "abcd-ef",
        ] {
            assert!(parse_month(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_default_is_the_previous_month_in_the_workshops_zone() {
        let tz: Tz = "Asia/Jakarta".parse().unwrap();
        // 1 December 00:30 in Jakarta is still 30 November in UTC.
        let now = DateTime::parse_from_rfc3339("2026-11-30T17:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            previous_month(tz, now),
            NaiveDate::from_ymd_opt(2026, 11, 1).unwrap()
        );
    }
}
