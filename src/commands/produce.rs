//! `reminder produce [--date YYYY-MM-DD]`: one producer scan now, its summary printed.

use anyhow::Context as _;
use chrono::NaiveDate;
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::configuration::Settings;
use crate::producer::{Producer, Trigger};
use crate::startup;

#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Scan as if today were this date (YYYY-MM-DD); default today in producer.timezone.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub date: Option<NaiveDate>,
}

pub async fn run(settings: Settings, args: ProduceArgs) -> anyhow::Result<()> {
    let shutdown = startup::shutdown_on_signals();
    let broker_shutdown = CancellationToken::new();
    let ctx = startup::connect(settings, "reminder produce", broker_shutdown.clone()).await?;
    let producer = Producer::new(ctx.clone())?;
    let date = args.date.unwrap_or_else(|| producer.today());
    let summary = producer
        .scan(date, Trigger::Manual, None, &shutdown)
        .await
        .context("the scan failed")?;
    println!("{summary}");
    broker_shutdown.cancel();
    ctx.pool.close().await;
    Ok(())
}
