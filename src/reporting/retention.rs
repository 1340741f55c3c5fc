//! Retention of the message history: rows older than `retention.history_days` are deleted from
//! the history tables in small batches, each its own short transaction, so the tracker's inserts
//! and the API's reads never wait long behind a prune. Report rows and the per-quarter-hour
//! message totals (which `/daily` and period `/statistics` read) are not touched, so their
//! figures for pruned days stay as they were.
//!
//! The daily job runs in the producer role under an advisory lock: one replica prunes at a time.

use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::context::AppContext;

/// Rows deleted per statement: small enough that each transaction is brief.
const BATCH: i64 = 5_000;
/// Advisory lock key: one pruning replica per database.
const PRUNE_LOCK: i64 = 0x7265_7465_6e74_696f; // "retentio"
/// How often the daily job prunes.
const EVERY: Duration = Duration::from_secs(24 * 60 * 60);
/// Delay before the first prune after start-up, so a restart loop does not prune in a loop.
const FIRST_AFTER: Duration = Duration::from_secs(60);

/// One table the prune clears, and which of its rows are old enough.
struct Table {
    name: &'static str,
    /// Condition on the row (with `$1` the cut-off time) that marks it prunable.
    old: &'static str,
    /// False for tables another part of the product may not have created in this database.
    always_present: bool,
}

const TABLES: [Table; 4] = [
    Table {
        name: "message_log",
        old: "at < $1",
        always_present: true,
    },
    Table {
        name: "message_statuses",
        old: "at < $1",
        always_present: false,
    },
    Table {
        name: "replies",
        old: "at < $1",
        always_present: false,
    },
    // Only finished reminders: a dispatch still sending or retrying is live work.
    Table {
        name: "reminder_dispatch",
        old: "status IN ('sent', 'failed') AND updated_at < $1",
        always_present: true,
    },
];

/// What one prune removed (or, dry, would remove), per table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneReport {
    pub cutoff: DateTime<Utc>,
    pub dry_run: bool,
    pub tables: Vec<(&'static str, u64)>,
}

impl std::fmt::Display for PruneReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verb = if self.dry_run {
            "would delete"
        } else {
            "deleted"
        };
        writeln!(f, "rows older than {} {verb}:", self.cutoff.to_rfc3339())?;
        for (table, n) in &self.tables {
            writeln!(f, "  {table}: {n}")?;
        }
        Ok(())
    }
}

/// Deletes (or with `dry_run` counts) every history row older than `cutoff`, batch by batch.
/// Tables that do not exist in this database are left out of the report.
pub async fn prune(
    pool: &PgPool,
    cutoff: DateTime<Utc>,
    dry_run: bool,
    shutdown: &CancellationToken,
) -> anyhow::Result<PruneReport> {
    let mut report = PruneReport {
        cutoff,
        dry_run,
        tables: Vec::new(),
    };
    for table in &TABLES {
        if !table.always_present && !exists(pool, table.name).await? {
            continue;
        }
        if !dry_run && table.name == "message_log" {
            // Recorded first: from now on the message list counts from the cut-off.
            sqlx::query(
                "INSERT INTO history_horizon (pruned_before) VALUES ($1)
                 ON CONFLICT (id) DO UPDATE
                 SET pruned_before = greatest(history_horizon.pruned_before, excluded.pruned_before)",
            )
            .bind(cutoff)
            .execute(pool)
            .await
            .context("recording where the history begins")?;
        }
        let n = if dry_run {
            let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT count(*) FROM {} WHERE {}",
                table.name, table.old
            )))
            .bind(cutoff)
            .fetch_one(pool)
            .await
            .with_context(|| format!("counting old rows of {}", table.name))?;
            n as u64
        } else {
            delete_in_batches(pool, table, cutoff, shutdown).await?
        };
        report.tables.push((table.name, n));
    }
    Ok(report)
}

async fn exists(pool: &PgPool, table: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(table)
        .fetch_one(pool)
        .await
}

async fn delete_in_batches(
    pool: &PgPool,
    table: &Table,
    cutoff: DateTime<Utc>,
    shutdown: &CancellationToken,
) -> anyhow::Result<u64> {
    // Table names and conditions are constants of this module, never input. Rows are picked by their physical address, so one statement shape serves every table
    // whatever its key; each statement commits on its own.
    let sql = format!(
        "DELETE FROM {t} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {t} WHERE {old} LIMIT {BATCH}))",
        t = table.name,
        old = table.old
    );
    let mut total = 0u64;
    loop {
        if shutdown.is_cancelled() {
            anyhow::bail!("shutting down during the prune of {}", table.name);
        }
        let done = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(cutoff)
            .execute(pool)
            .await
            .with_context(|| format!("deleting old rows of {}", table.name))?
            .rows_affected();
        total += done;
        if done < BATCH as u64 {
            return Ok(total);
        }
        // Let other work at the database between batches.
        tokio::task::yield_now().await;
    }
}

/// The cut-off for keeping `days` days of history, or `None` when retention is off. It falls
/// on a quarter-hour, the width of the message totals, so the history left begins exactly
/// where a total does.
pub fn cutoff(days: u32, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    (days > 0).then(|| {
        let t = now - chrono::Duration::days(i64::from(days));
        let secs = t.timestamp() - t.timestamp().rem_euclid(15 * 60);
        DateTime::from_timestamp(secs, 0).expect("in range")
    })
}

/// Prunes under the advisory lock. `None` when another replica holds it (it is pruning now).
pub async fn prune_exclusively(
    pool: &PgPool,
    cutoff: DateTime<Utc>,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<PruneReport>> {
    let mut conn = pool.acquire().await.context("connecting to the database")?;
    // Closing the connection (not returning it to the pool) releases the lock on every path.
    conn.close_on_drop();
    let free: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(PRUNE_LOCK)
        .fetch_one(&mut *conn)
        .await?;
    if !free {
        return Ok(None);
    }
    let report = prune(pool, cutoff, false, shutdown).await;
    let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(PRUNE_LOCK)
        .execute(&mut *conn)
        .await;
    report.map(Some)
}

/// The daily job: prunes shortly after start-up and then once a day, until `shutdown`. Does
/// nothing when `retention.history_days` is 0.
pub async fn run_daily(ctx: AppContext, shutdown: CancellationToken) {
    let days = ctx.settings.retention.history_days;
    if days == 0 {
        return;
    }
    let mut wait = FIRST_AFTER;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = EVERY;
        let Some(cutoff) = cutoff(days, Utc::now()) else {
            return;
        };
        match prune_exclusively(&ctx.pool, cutoff, &shutdown).await {
            Ok(Some(report)) => {
                tracing::info!(tables = ?report.tables, cutoff = %cutoff, "history pruned")
            }
            Ok(None) => tracing::info!("another replica is pruning the history; skipped"),
            Err(e) => tracing::warn!(error = format!("{e:#}"), "history prune failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_cutoff_when_retention_is_off() {
        let now = Utc::now();
        assert_eq!(cutoff(0, now), None);
        let at = DateTime::parse_from_rfc3339("2026-12-05T10:37:12.5Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            cutoff(365, at).unwrap().to_rfc3339(),
            "2025-12-05T10:30:00+00:00",
            "on the quarter-hour"
        );
    }

    #[test]
    fn the_report_names_every_table_and_says_whether_it_was_a_dry_run() {
        let report = PruneReport {
            cutoff: DateTime::from_timestamp(0, 0).unwrap(),
            dry_run: true,
            tables: vec![("message_log", 3), ("reminder_dispatch", 0)],
        };
        let text = report.to_string();
        assert!(text.contains("would delete"), "{text}");
        assert!(text.contains("message_log: 3"), "{text}");
        assert!(text.contains("reminder_dispatch: 0"), "{text}");
    }
}
