//! The `reminder` command line: `Cli` parses the arguments and `run` dispatches to one file per
//! command, each holding its own arguments beside its handler. Every command takes
//! `--config FILE`, exits 0 on success, and otherwise prints a one-line reason on stderr and
//! exits non-zero.

pub mod consent;
pub mod dead;
pub mod demo;
pub mod history;
pub mod migrate;
pub mod preview;
pub mod produce;
pub mod report;
pub mod run;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::configuration::Settings;

pub use consent::ConsentCommand;
pub use dead::DeadCommand;
pub use demo::DemoArgs;
pub use history::HistoryCommand;
pub use preview::PreviewArgs;
pub use produce::ProduceArgs;
pub use report::ReportCommand;
pub use run::RunArgs;

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
    Run(RunArgs),
    /// Create the database if needed, apply migrations, and exit.
    Migrate,
    /// Run one producer scan now, print a summary, and exit.
    Produce(ProduceArgs),
    /// Change or export the report (the report's write operations live here, not in the API).
    #[command(subcommand)]
    Report(ReportCommand),
    /// Inspect or replay the dead-letter queue.
    #[command(subcommand)]
    Dead(DeadCommand),
    /// Insert a sample fleet, run the whole pipeline with the log provider, print the
    /// statistics, and keep the API serving until interrupted.
    Demo(DemoArgs),
    /// Apply the message history's retention now.
    #[command(subcommand)]
    History(HistoryCommand),
    /// What a scan on a day would send and skip, and why; writes, publishes and sends nothing.
    Preview(PreviewArgs),
    /// The opt-out list, and consent changes by hand.
    #[command(subcommand)]
    Consent(ConsentCommand),
}

/// Loads the settings (`--config` over the layered defaults), starts logging, and runs the
/// command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref())?;
    crate::telemetry::init(&settings.telemetry);
    match cli.command {
        Command::Run(args) => run::run(settings, args).await,
        Command::Migrate => migrate::run(settings).await,
        Command::Produce(args) => produce::run(settings, args).await,
        Command::Report(cmd) => report::run(settings, cmd).await,
        Command::Dead(cmd) => dead::run(settings, cmd).await,
        Command::Demo(args) => demo::run(settings, args).await,
        Command::History(cmd) => history::run(settings, cmd).await,
        Command::Consent(cmd) => consent::run(settings, cmd).await,
        Command::Preview(args) => preview::run(settings, args).await,
    }
}
