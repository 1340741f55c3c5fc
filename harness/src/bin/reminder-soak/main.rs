//! `reminder-soak`: runs many reminders through every role, as separate processes, while faults
//! are injected on a timer (a RabbitMQ node stopped, PostgreSQL stopped, the sender and the
//! tracker killed with SIGKILL), against a mock Cloud API that fails the first call of one reminder in
//! five transiently. Prints what went in and what came out, and fails unless nothing was lost
//! and nothing was counted twice.
//!
//! ```text
//! cargo run --release -p reminder-harness --bin reminder-soak -- [--reminders 50000] [--fault-every-secs 10]
//! ```
//!
//! It runs against a private PostgreSQL and a private three-node RabbitMQ cluster of its own
//! (`reminder_harness::private`, as root: the servers run as the `postgres` and `rabbitmq`
//! users), which it stops and starts; the machine's services are not touched. The role processes
//! are this binary re-executed as `reminder-soak reminder run <role>`, which is exactly
//! `reminder run <role>`, so the soak needs no other binary.

mod fault;
mod outcome;
mod role;

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use reminder_harness::fixtures::{self, Fleet};
use reminder_harness::mock_provider::MockCloudApi;
use reminder_harness::scratch::{Scratch, child_env};

use fault::{FAULTS, Fault, Services};
use outcome::Outcome;
use role::Role;

// The role processes are this binary, so it ships the `reminder` binary's allocator.
reminder::jemalloc!();

#[derive(Debug, Parser)]
#[command(about = "Soak test: reminders through every role with faults injected on a timer")]
struct Opts {
    /// Due vehicles (one reminder each).
    #[arg(long, default_value_t = 50_000)]
    reminders: u64,
    /// Seconds between two faults; they take turns: broker node stop, database stop, sender
    /// kill, tracker kill.
    #[arg(long, default_value_t = 10)]
    fault_every_secs: u64,
    /// How long RabbitMQ or PostgreSQL stays down per fault, in seconds.
    #[arg(long, default_value_t = 3)]
    outage_secs: u64,
    /// Mock provider answer time, in milliseconds.
    #[arg(long, default_value_t = 20)]
    provider_delay_ms: u64,
    /// The first call of one reminder in N fails transiently (0: never).
    #[arg(long, default_value_t = 5)]
    transient_one_in: u32,
    /// Sends in flight in the sender.
    #[arg(long, default_value_t = 64)]
    sender_concurrency: usize,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout_secs: u64,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    // A role process: behave exactly as the `reminder` binary.
    if args.get(1).map(String::as_str) == Some("reminder") {
        let cli = reminder::commands::Cli::parse_from(&args[1..]);
        return match runtime.block_on(reminder::commands::run(cli)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("reminder: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let opts = Opts::parse();
    match runtime.block_on(soak(opts)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("reminder-soak: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn soak(o: Opts) -> anyhow::Result<bool> {
    let started = Instant::now();
    let services = Services::start().await;
    // Every role gets the whole cluster, and fails over along the list.
    let mut scratch = Scratch::new("soak", &services.pg.url(), &services.rabbit.urls());
    let s = &mut scratch.settings;
    s.amqp.reconnect_max_ms = 2000;
    s.producer.timezone = "UTC".into();
    s.sender.retry_initial_ms = 200;
    s.sender.retry_max_ms = 2000;
    s.sender.concurrency = o.sender_concurrency;
    s.telemetry.level = "error".into();
    let result = run(&o, &mut scratch, &services).await;
    // No teardown: the private services go away whole when dropped.
    println!("soak finished in {:.0} s", started.elapsed().as_secs_f64());
    result
}

async fn run(o: &Opts, scratch: &mut Scratch, services: &Services) -> anyhow::Result<bool> {
    let mock = MockCloudApi::start_flaky(
        Duration::from_millis(o.provider_delay_ms),
        o.transient_one_in,
    )
    .await?;
    scratch.use_cloud_api(&mock);
    // One connection for every send in flight, as to the real API's https address: a sender
    // kill drops them all at once.
    scratch.settings.whatsapp.http2_prior_knowledge = true;
    let settings = &scratch.settings;
    let pool = reminder::db::migrate(&settings.database)
        .await
        .context("creating the soak database")?;
    fixtures::load_fleet(
        &pool,
        &Fleet {
            vehicles: o.reminders,
            due: o.reminders,
            run_date: chrono::Utc::now().date_naive(),
            days_ahead: settings.producer.days_ahead,
        },
    )
    .await?;
    let env = child_env(settings);

    println!(
        "soak: {} reminders, a fault every {} s (broker node stop, database stop, sender kill, \
         tracker kill in turn), provider {} ms with 1 in {} first calls failing",
        o.reminders, o.fault_every_secs, o.provider_delay_ms, o.transient_one_in
    );
    let mut sender = Role::start("sender", env.clone())?;
    let mut tracker = Role::start("tracker", env.clone())?;
    let producer = tokio::spawn(role::produce_until_done(env));

    let deadline = Instant::now() + Duration::from_secs(o.timeout_secs);
    let mut next_fault = Instant::now() + Duration::from_secs(o.fault_every_secs);
    let mut injected: HashMap<Fault, u32> = HashMap::new();
    let mut turn = 0usize;
    let mut broker_round = 0u32;
    let mut last_report = Instant::now();
    let settled = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        sender.sample();
        tracker.sample();
        let done = outcome::outcomes(&pool).await.unwrap_or(0);
        if done >= o.reminders as i64 {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            println!(
                "  {:>4.0} s: {done} of {} reminders have an outcome counted",
                o.timeout_secs as f64 - (deadline - Instant::now()).as_secs_f64(),
                o.reminders
            );
            last_report = Instant::now();
        }
        if Instant::now() >= next_fault {
            let fault = FAULTS[turn % FAULTS.len()];
            turn += 1;
            fault
                .inject(
                    broker_round,
                    Duration::from_secs(o.outage_secs),
                    services,
                    &mut sender,
                    &mut tracker,
                )
                .await?;
            *injected.entry(fault).or_default() += 1;
            if fault == Fault::Broker {
                broker_round += 1;
            }
            next_fault = Instant::now() + Duration::from_secs(o.fault_every_secs);
        }
    };
    let producer_runs = producer.await.map_or(Ok(0), |r| r)?;
    // Anything still in flight (a duplicate copy, a last batch) settles before counting.
    tokio::time::sleep(Duration::from_secs(3)).await;
    sender.stop();
    tracker.stop();

    let r = Outcome::read(&pool, settings).await?;
    let (accepted, provider_duplicates) = mock.accepted();
    let expected = o.reminders as i64;
    let (lost, double_counted) = (r.lost(expected), r.double_counted());
    println!("reminders in:                {expected}");
    println!(
        "faults injected:             {} broker node stops, {} database stops, {} sender kills, {} tracker kills",
        injected.get(&Fault::Broker).unwrap_or(&0),
        injected.get(&Fault::Database).unwrap_or(&0),
        sender.kills,
        tracker.kills
    );
    println!("producer runs:               {producer_runs} (repeated after a fault cut one off)");
    println!(
        "provider calls:              {} ({} transient failures, retried)",
        mock.calls(),
        mock.transient_failures()
    );
    println!("provider accepted:           {accepted} distinct reminders");
    println!(
        "duplicates seen by provider: {provider_duplicates} (sends cut off by a sender kill: the documented window)"
    );
    println!("messages sent:               {}", r.sent);
    println!("counted (sum of frequency):  {}", r.frequency);
    println!("failed:                      {}", r.failed);
    println!("dead-lettered:               {}", r.dead);
    println!("lost:                        {lost}");
    println!("double-counted:              {double_counted}");
    println!(
        "peak RSS:                    sender {:.1} MiB, tracker {:.1} MiB",
        sender.peak_kib as f64 / 1024.0,
        tracker.peak_kib as f64 / 1024.0
    );
    if !settled {
        println!("TIMED OUT before every reminder had an outcome");
    }
    mock.stop().await;
    pool.close().await;
    Ok(settled && lost == 0 && double_counted == 0 && r.frequency == r.sent)
}
