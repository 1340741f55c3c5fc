//! The `reminder` command line (contract §6). Every command takes `--config FILE`, exits 0 on
//! success, and otherwise prints a one-line reason on stderr and exits non-zero.

use std::path::PathBuf;

use anyhow::Context as _;
use chrono::NaiveDate;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::configuration::Settings;
use crate::startup::{self, Application, Role};

#[derive(Debug, Parser)]
#[command(
    name = "reminder",
    version,
    about = "WhatsApp maintenance reminders for a vehicle workshop, with per customer and vehicle frequency tracking",
    long_about = "reminder finds vehicles whose maintenance is due, reminds their owners over WhatsApp, and counts how often each customer and vehicle was reminded.\n\nRoles talk through RabbitMQ: the producer publishes maintenance.due events, the sender sends the messages and publishes message.sent or message.failed, the tracker counts them into PostgreSQL, and a read-only HTTP API serves the reports.\n\nConfiguration: config/default.toml, config/$REMINDER_ENV.toml, --config FILE, then REMINDER__SECTION__KEY environment variables."
)]
pub struct Cli {
    /// Configuration file layered over config/default.toml and config/$REMINDER_ENV.toml.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run roles in this process until SIGINT/SIGTERM (default: all of them).
    Run {
        /// Roles to run: all, producer, sender, tracker, api (several allowed).
        #[arg(value_enum, value_name = "ROLE")]
        roles: Vec<Role>,
    },
    /// Create the database if needed, apply migrations, and exit.
    Migrate,
    /// Run one producer scan now, print a summary, and exit.
    Produce {
        /// Scan as if today were this date (YYYY-MM-DD); default today in producer.timezone.
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: Option<NaiveDate>,
    },
    /// Change or export the report (the seed's write operations live here, not in the API).
    #[command(subcommand)]
    Report(ReportCommand),
    /// Inspect or replay the dead-letter queue.
    #[command(subcommand)]
    Dead(DeadCommand),
    /// Insert a sample fleet, run the whole pipeline with the log provider, print the
    /// statistics, and keep the API serving until interrupted.
    Demo {
        /// Exit after printing the statistics instead of serving the API.
        #[arg(long)]
        exit: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Delete one report row (its message history stays).
    Delete {
        /// The report's id.
        report_id: Uuid,
    },
    /// Set frequency to 0 on matching reports (all when no filter), keeping the rows, their
    /// last message date and the message history.
    ResetFrequency {
        /// Only this customer's reports.
        #[arg(long, value_name = "ID")]
        customer: Option<Uuid>,
        /// Only this vehicle's reports.
        #[arg(long, value_name = "ID")]
        vehicle: Option<Uuid>,
    },
    /// Write the detail view as CSV, streamed (default: to stdout).
    Export {
        /// Write to this file instead of stdout.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeadCommand {
    /// List what is in the dead-letter queue, and why (messages stay in the queue).
    List {
        /// Show at most this many.
        #[arg(long, default_value_t = 100, value_name = "N")]
        limit: u32,
    },
    /// Move dead letters back to their original routing key to be processed again.
    Replay {
        /// Replay at most this many (default: all).
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
    },
}

/// Parses the arguments and runs the command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref())?;
    crate::telemetry::init(&settings.telemetry);
    match cli.command {
        Command::Run { roles } => {
            let shutdown = startup::shutdown_on_signals();
            let app = Application::build(settings, &roles).await?;
            app.run(shutdown).await
        }
        Command::Migrate => {
            let pool = crate::db::migrate(&settings.database).await?;
            let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
                .fetch_one(&pool)
                .await?;
            println!("database is up to date ({applied} migrations applied)");
            Ok(())
        }
        Command::Produce { date } => produce(settings, date).await,
        Command::Report(cmd) => crate::report_cli::run(settings, cmd).await,
        Command::Dead(cmd) => crate::dead_letters::run(settings, cmd).await,
        Command::Demo { exit } => crate::demo::run(settings, exit).await,
    }
}

async fn produce(settings: Settings, date: Option<NaiveDate>) -> anyhow::Result<()> {
    let shutdown = startup::shutdown_on_signals();
    let broker_shutdown = CancellationToken::new();
    let ctx = startup::connect(settings, "reminder produce", broker_shutdown.clone()).await?;
    let producer = crate::producer::Producer::new(ctx.clone())?;
    let date = date.unwrap_or_else(|| producer.today());
    let summary = producer
        .scan(date, crate::producer::Trigger::Manual, None, &shutdown)
        .await
        .context("the scan failed")?;
    println!("{summary}");
    broker_shutdown.cancel();
    ctx.pool.close().await;
    Ok(())
}
