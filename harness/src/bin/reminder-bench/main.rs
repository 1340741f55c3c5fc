//! `reminder-bench`: measures the real roles of reminder (producer, sender, tracker, API and the
//! whole pipeline) against the raw ceilings of this machine's RabbitMQ and PostgreSQL, taken
//! in the same invocation, and prints each figure next to its ceiling as a ratio.
//!
//! ```text
//! cargo run --release --bin reminder-bench -- <ceilings|producer|sender|tracker|api|e2e|webhook|all>
//! ```
//!
//! Every scenario works in its own database (random name) and its own exchange and queue prefix,
//! runs several rounds, prints median and spread (min..max), and removes what it created even
//! when it fails or is interrupted. `all` measures the ceilings once, then runs each scenario in
//! a child process of this binary (so a scenario's peak RSS is its own) with those ceilings.
//! Targets are judged on the median of the rounds (3 by default; `--rounds` sets it): the
//! producer's throughput against the publish ceiling, both the invocation's and one taken just
//! before each round; the tracker's rate and e2e's burst throughput against what their floors
//! (the least CPU their required work costs here, `floor.rs`) allow this machine; the API's p99
//! latencies in milliseconds. `webhook` prints its statuses/s beside the HTTP-and-signature and
//! broker ceilings of the same run, without a target. A missed target prints `MISSED` and the
//! exit code is 2.

mod api;
mod ceilings;
mod cpu;
mod e2e;
mod env;
mod floor;
mod opts;
mod producer;
mod prune;
mod report;
mod sender;
mod tracker;
mod webhook;

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use clap::Parser;

use ceilings::Ceilings;
use opts::Opts;

// The same allocator and settings as the `reminder` binary, so the figures are the shipped
// process's.
reminder::jemalloc!();

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
enum Scenario {
    /// Raw rates of this machine: publish with confirms, consume and ack, batched upsert.
    Ceilings,
    /// Scan of 1,000,000 vehicles of which 100,000 are due, publishing each.
    Producer,
    /// One sender process against a mock Cloud API: throughput, and the 80/s rate limit.
    Sender,
    /// 200,000 message.sent over 10,000 pairs through the tracker, and a per-message baseline.
    Tracker,
    /// API latency at 50 connections over 1,000,000 reports and 5,000,000 messages.
    Api,
    /// 100,000 due reminders through producer, sender and tracker in one process.
    E2e,
    /// The tracker's rate while 1,000,000 history rows are pruned, against its rate alone.
    Prune,
    /// 20,000 signed status webhooks through the webhook role into the tracker.
    Webhook,
    /// Everything above, in that order.
    All,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Ceilings => "ceilings",
            Scenario::Producer => "producer",
            Scenario::Sender => "sender",
            Scenario::Tracker => "tracker",
            Scenario::Api => "api",
            Scenario::E2e => "e2e",
            Scenario::Prune => "prune",
            Scenario::Webhook => "webhook",
            Scenario::All => "all",
        }
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "reminder-bench",
    about = "Benchmarks of reminder's roles against this machine's raw RabbitMQ and PostgreSQL ceilings"
)]
struct Cli {
    /// What to measure.
    #[arg(value_enum)]
    scenario: Scenario,
    #[command(flatten)]
    opts: Opts,
}

/// What `all` hands to each child: its options and the ceilings taken once.
const CHILD_ENV: &str = "REMINDER_BENCH_CHILD";

#[derive(serde::Serialize, serde::Deserialize)]
struct ChildInput {
    opts: Opts,
    ceilings: ceilings::Rates,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("reminder-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Ok(true) when every figure met its target, Ok(false) when some missed.
async fn run(cli: Cli) -> anyhow::Result<bool> {
    let (opts, ceilings) = match std::env::var(CHILD_ENV) {
        Ok(json) => {
            let input: ChildInput =
                serde_json::from_str(&json).context("reading the options handed down by `all`")?;
            let ceilings = Ceilings::given(input.opts.clone(), input.ceilings);
            (input.opts, ceilings)
        }
        Err(_) => (cli.opts.clone(), Ceilings::new(cli.opts.clone())),
    };
    opts::init_logs(&opts);
    opts.validate()?;
    let is_child = std::env::var_os(CHILD_ENV).is_some();
    if !is_child {
        report::print_header(cli.scenario.name(), &opts);
    }
    let started = Instant::now();
    let ok = match cli.scenario {
        Scenario::Ceilings => ceilings::run(&ceilings).await?,
        Scenario::Producer => producer::run(&opts, &ceilings).await?,
        Scenario::Sender => sender::run(&opts, &ceilings).await?,
        Scenario::Tracker => tracker::run(&opts, &ceilings).await?,
        Scenario::Api => api::run(&opts).await?,
        Scenario::E2e => e2e::run(&opts, &ceilings).await?,
        Scenario::Prune => prune::run(&opts).await?,
        Scenario::Webhook => webhook::run(&opts, &ceilings).await?,
        Scenario::All => run_all(&opts, &ceilings).await?,
    };
    if !is_child {
        println!(
            "\n{} finished in {:.0} s: {}",
            cli.scenario.name(),
            started.elapsed().as_secs_f64(),
            if ok {
                "every target met"
            } else {
                "some targets missed (see above)"
            }
        );
    }
    Ok(ok)
}

/// The ceilings here, then each scenario in a child process with those ceilings.
async fn run_all(opts: &Opts, ceilings: &Ceilings) -> anyhow::Result<bool> {
    let started = Instant::now();
    let mut ok = ceilings::run(ceilings).await?;
    println!("(ceilings took {:.0} s)", started.elapsed().as_secs_f64());
    let rates = ceilings.all_rates().await?;
    let input = serde_json::to_string(&ChildInput {
        opts: opts.clone(),
        ceilings: rates,
    })?;
    let exe = std::env::current_exe().context("locating this binary")?;
    // Ctrl-C reaches the children too; they clean up and exit. This process only has to stay
    // alive to wait for them, and then stop instead of starting the next scenario.
    let interrupted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = interrupted.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let mut failed = Vec::new();
    for scenario in [
        Scenario::Producer,
        Scenario::Sender,
        Scenario::Tracker,
        Scenario::Api,
        Scenario::E2e,
        Scenario::Prune,
        Scenario::Webhook,
    ] {
        let started = Instant::now();
        let status = tokio::process::Command::new(&exe)
            .arg(scenario.name())
            .env(CHILD_ENV, &input)
            .kill_on_drop(false)
            .status()
            .await
            .with_context(|| format!("starting the {} scenario", scenario.name()))?;
        println!(
            "({} took {:.0} s)",
            scenario.name(),
            started.elapsed().as_secs_f64()
        );
        match status.code() {
            Some(0) => {}
            Some(2) => ok = false,
            _ => {
                ok = false;
                failed.push(scenario.name());
                eprintln!(
                    "reminder-bench: the {} scenario failed ({status})",
                    scenario.name()
                );
            }
        }
        if interrupted.load(std::sync::atomic::Ordering::SeqCst) {
            anyhow::bail!("interrupted");
        }
    }
    if !failed.is_empty() {
        anyhow::bail!("scenarios that did not complete: {}", failed.join(", "));
    }
    Ok(ok)
}
