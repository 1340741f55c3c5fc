//! `reminder history prune`: applies the retention now (or, with `--dry-run`, shows what it
//! would delete) and prints the rows per table.

use anyhow::Context as _;
use chrono::Utc;
use clap::Subcommand;
use tokio_util::sync::CancellationToken;

use crate::configuration::Settings;
use crate::reporting::retention;

#[derive(Debug, Subcommand)]
pub enum HistoryCommand {
    /// Delete message history, statuses, replies and finished dispatch records older than
    /// retention.history_days (or --older-than-days), in small batches.
    Prune {
        /// Keep this many days instead of retention.history_days.
        #[arg(long, value_name = "N")]
        older_than_days: Option<u32>,
        /// Count what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

pub async fn run(settings: Settings, command: HistoryCommand) -> anyhow::Result<()> {
    let HistoryCommand::Prune {
        older_than_days,
        dry_run,
    } = command;
    let days = older_than_days.unwrap_or(settings.retention.history_days);
    let cutoff = retention::cutoff(days, Utc::now()).context(
        "retention.history_days is 0 (keep everything); give --older-than-days N (N > 0) to prune",
    )?;
    let pool = if settings.database.migrate_on_start {
        crate::db::migrate(&settings.database).await?
    } else {
        crate::db::pool(&settings.database)?
    };
    let shutdown = CancellationToken::new();
    let report = if dry_run {
        retention::prune(&pool, cutoff, true, &shutdown).await?
    } else {
        retention::prune_exclusively(&pool, cutoff, &shutdown)
            .await?
            .context("another process is pruning the history now; try again later")?
    };
    print!("{report}");
    pool.close().await;
    Ok(())
}
