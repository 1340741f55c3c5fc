//! What the report counted, read from its tables: the quick total the triggers keep, and the
//! exact counts from the rows themselves.

use std::time::Duration;

use sqlx::PgPool;

use crate::wait;

/// The exact counts of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tally {
    /// Sum of `whatsapp_report.frequency`: messages counted as sent.
    pub frequency: i64,
    /// Rows of `whatsapp_report`: (customer, vehicle) pairs.
    pub reports: i64,
    /// Rows of `message_log`: every outcome recorded.
    pub messages: i64,
}

impl Tally {
    /// `n` messages for `n` pairs, each counted once.
    pub fn each_once(n: i64) -> Tally {
        Tally {
            frequency: n,
            reports: n,
            messages: n,
        }
    }
}

/// Sum of `frequency` over the report, from the trigger-maintained totals (cheap to poll).
pub async fn total_messages(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT coalesce(sum(total_messages), 0)::bigint FROM report_totals")
        .fetch_one(pool)
        .await
}

/// Waits until the report's total reaches `at_least`, polling every `every`; fails after
/// `timeout`, naming `what`.
pub async fn wait_for_total(
    pool: &PgPool,
    at_least: i64,
    what: &str,
    timeout: Duration,
    every: Duration,
) -> anyhow::Result<()> {
    wait::poll(what, timeout, every, || async {
        Ok((total_messages(pool).await? >= at_least).then_some(()))
    })
    .await
}

/// The exact counts, from the tables themselves (scans them).
pub async fn tally(pool: &PgPool) -> Result<Tally, sqlx::Error> {
    let (frequency, reports, messages) = sqlx::query_as(
        "SELECT (SELECT coalesce(sum(frequency), 0)::bigint FROM whatsapp_report),
                (SELECT count(*) FROM whatsapp_report),
                (SELECT count(*) FROM message_log)",
    )
    .fetch_one(pool)
    .await?;
    Ok(Tally {
        frequency,
        reports,
        messages,
    })
}
