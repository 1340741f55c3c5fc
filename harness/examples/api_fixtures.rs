//! Loads synthetic report data into a database for benchmarks and query-plan checks:
//! `cargo run --release -p reminder-harness --example api_fixtures -- DATABASE_URL [REPORTS]
//! [MESSAGES]` (default 1,000,000 reports and 5,000,000 messages). The database is created and
//! migrated first; the report and history must be empty. See
//! `reminder_harness::fixtures::reports`.

use std::time::Instant;

use anyhow::Context;
use reminder::configuration::Settings;
use reminder_harness::fixtures::reports::{self as fixtures, FixtureSize};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .context("usage: api_fixtures DATABASE_URL [REPORTS] [MESSAGES]")?;
    let reports: u64 = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let messages: u64 = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(5 * reports);
    let mut settings = Settings::defaults().database;
    settings.url = url;
    let pool = reminder::db::migrate(&settings).await?;
    let started = Instant::now();
    let size = FixtureSize {
        reports,
        messages,
        ..FixtureSize::default()
    };
    fixtures::load(&pool, &size, chrono::Utc::now()).await?;
    println!(
        "loaded {reports} reports and {messages} messages in {:.1?}",
        started.elapsed()
    );
    let started = Instant::now();
    let drift = fixtures::aggregate_drift(&pool).await?;
    println!(
        "aggregates recounted in {:.1?}: {}",
        started.elapsed(),
        if drift.is_empty() {
            "consistent".to_string()
        } else {
            format!("DRIFT {drift:?}")
        }
    );
    Ok(())
}
