//! `reminder-soak`: runs many reminders through every role, as separate processes, while faults
//! are injected on a timer (RabbitMQ restarted, PostgreSQL stopped, the sender and the tracker
//! killed with SIGKILL), against a mock Cloud API that fails the first call of one reminder in
//! five transiently. Prints what went in and what came out, and fails unless nothing was lost
//! and nothing was counted twice.
//!
//! ```text
//! cargo run --release --bin reminder-soak -- [--reminders 50000] [--fault-every-secs 10]
//! ```
//!
//! It stops and starts the machine's RabbitMQ and PostgreSQL (every client on the machine sees
//! that): run it alone, e.g. under `flock -x -o /tmp/reminder-services.lock`. The role processes
//! are this binary re-executed as `reminder-soak reminder run <role>`, which is exactly
//! `reminder run <role>`, so the soak needs no other binary.

#[allow(dead_code)]
#[path = "../reminder-bench/mock_provider.rs"]
mod mock_provider;
#[allow(dead_code)] // the guards are for the fault tests, which include the module too
mod services;

use std::collections::HashMap;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::{Connection, ConnectionProperties};
use reminder::broker::Topology;
use reminder::configuration::Settings;
use sqlx::PgPool;

use mock_provider::MockCloudApi;
use services::{peak_rss_kib, start_postgres, start_rabbit};

// The role processes are this binary, so it ships the `reminder` binary's allocator.
reminder::jemalloc!();

#[derive(Debug, Parser)]
#[command(about = "Soak test: reminders through every role with faults injected on a timer")]
struct Opts {
    /// Due vehicles (one reminder each).
    #[arg(long, default_value_t = 50_000)]
    reminders: u64,
    /// Seconds between two faults; they take turns: broker restart, database stop, sender
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
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    postgres: String,
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    amqp_url: String,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    // A role process: behave exactly as the `reminder` binary.
    if args.get(1).map(String::as_str) == Some("reminder") {
        let cli = reminder::cli::Cli::parse_from(&args[1..]);
        return match runtime.block_on(reminder::cli::run(cli)) {
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

/// One role's process, restarted after each kill; remembers the highest peak RSS of all its
/// incarnations.
struct Role {
    name: &'static str,
    env: Vec<(String, String)>,
    child: Option<Child>,
    peak_kib: u64,
    kills: u32,
}

impl Role {
    fn start(name: &'static str, env: Vec<(String, String)>) -> anyhow::Result<Role> {
        let mut role = Role {
            name,
            env,
            child: None,
            peak_kib: 0,
            kills: 0,
        };
        role.spawn()?;
        Ok(role)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let child = Command::new(std::env::current_exe()?)
            .args(["reminder", "run", self.name])
            .envs(self.env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting the {} process", self.name))?;
        self.child = Some(child);
        Ok(())
    }

    fn sample(&mut self) {
        if let Some(kib) = self.child.as_ref().and_then(|c| peak_rss_kib(c.id())) {
            self.peak_kib = self.peak_kib.max(kib);
        }
    }

    fn kill_and_restart(&mut self) -> anyhow::Result<()> {
        self.sample();
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.kills += 1;
        self.spawn()
    }

    fn stop(&mut self) {
        self.sample();
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Brings both services back however the soak ends.
struct ServicesBack;

impl Drop for ServicesBack {
    fn drop(&mut self) {
        start_rabbit();
        start_postgres();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Broker,
    Database,
    KillSender,
    KillTracker,
}

const FAULTS: [Fault; 4] = [
    Fault::Broker,
    Fault::Database,
    Fault::KillSender,
    Fault::KillTracker,
];

async fn soak(o: Opts) -> anyhow::Result<bool> {
    let started = Instant::now();
    let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_string();
    let mut settings = Settings::defaults();
    settings.database.url = format!("{}/reminder_soak_{id}", o.postgres);
    settings.amqp.url = o.amqp_url.clone();
    settings.amqp.exchange = format!("soak-{id}.events");
    settings.amqp.queue_prefix = format!("soak-{id}.");
    let _services = ServicesBack;
    let result = run(&o, &settings).await;
    cleanup(&settings).await;
    println!("soak finished in {:.0} s", started.elapsed().as_secs_f64());
    result
}

async fn run(o: &Opts, settings: &Settings) -> anyhow::Result<bool> {
    let mock = MockCloudApi::start_flaky(
        Duration::from_millis(o.provider_delay_ms),
        o.transient_one_in,
    )
    .await?;
    let pool = reminder::db::migrate(&settings.database)
        .await
        .context("creating the soak database")?;
    seed(&pool, o.reminders).await?;
    let s = settings;
    let env: Vec<(String, String)> = [
        ("REMINDER__DATABASE__URL", s.database.url.clone()),
        ("REMINDER__AMQP__URL", s.amqp.url.clone()),
        ("REMINDER__AMQP__EXCHANGE", s.amqp.exchange.clone()),
        ("REMINDER__AMQP__QUEUE_PREFIX", s.amqp.queue_prefix.clone()),
        ("REMINDER__AMQP__RECONNECT_MAX_MS", "2000".into()),
        ("REMINDER__PRODUCER__CATCH_UP_ON_START", "false".into()),
        ("REMINDER__PRODUCER__TIMEZONE", "UTC".into()),
        ("REMINDER__WHATSAPP__PROVIDER", "cloud_api".into()),
        ("REMINDER__WHATSAPP__CLOUD_API__BASE_URL", mock.url.clone()),
        // One connection for every send in flight, as to the real API's https address: a
        // sender kill drops them all at once.
        ("REMINDER__WHATSAPP__HTTP2_PRIOR_KNOWLEDGE", "true".into()),
        (
            "REMINDER__WHATSAPP__CLOUD_API__PHONE_NUMBER_ID",
            mock_provider::PHONE_NUMBER_ID.into(),
        ),
        (
            "REMINDER__WHATSAPP__CLOUD_API__ACCESS_TOKEN",
            "EAAsoak".into(),
        ),
        ("REMINDER__WHATSAPP__MAX_PER_SECOND", "0".into()),
        ("REMINDER__WHATSAPP__REQUEST_TIMEOUT_MS", "2000".into()),
        ("REMINDER__SENDER__RECIPIENT_INTERVAL_MS", "0".into()),
        ("REMINDER__SENDER__RETRY_INITIAL_MS", "200".into()),
        ("REMINDER__SENDER__RETRY_MAX_MS", "2000".into()),
        (
            "REMINDER__SENDER__CONCURRENCY",
            o.sender_concurrency.to_string(),
        ),
        ("REMINDER__HTTP__BIND", "127.0.0.1:0".into()),
        ("REMINDER__TELEMETRY__LEVEL", "error".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();

    println!(
        "soak: {} reminders, a fault every {} s (broker restart, database stop, sender kill, \
         tracker kill in turn), provider {} ms with 1 in {} first calls failing",
        o.reminders, o.fault_every_secs, o.provider_delay_ms, o.transient_one_in
    );
    let mut sender = Role::start("sender", env.clone())?;
    let mut tracker = Role::start("tracker", env.clone())?;
    // The producer's scan, run again until it succeeds (a fault can cut it off): its event ids
    // are the same every time, so a repeated scan adds no reminder.
    let produce_env = env.clone();
    let producer = tokio::task::spawn_blocking(move || {
        let mut runs = 0;
        loop {
            runs += 1;
            let ok = Command::new(std::env::current_exe().expect("current exe"))
                .args(["reminder", "produce"])
                .envs(produce_env.iter().cloned())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return runs;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });

    let deadline = Instant::now() + Duration::from_secs(o.timeout_secs);
    let mut next_fault = Instant::now() + Duration::from_secs(o.fault_every_secs);
    let mut injected: HashMap<&'static str, u32> = HashMap::new();
    let mut turn = 0usize;
    let mut last_report = Instant::now();
    let settled = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        sender.sample();
        tracker.sample();
        let done = outcomes(&pool).await.unwrap_or(0);
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
            inject(fault, o, &mut sender, &mut tracker).await?;
            *injected.entry(fault_name(fault)).or_default() += 1;
            next_fault = Instant::now() + Duration::from_secs(o.fault_every_secs);
        }
    };
    let producer_runs = producer.await.unwrap_or(0);
    // Anything still in flight (a duplicate copy, a last batch) settles before counting.
    tokio::time::sleep(Duration::from_secs(3)).await;
    sender.stop();
    tracker.stop();

    let r = Report::read(&pool, settings).await?;
    let (accepted, provider_duplicates) = mock.accepted();
    let expected = o.reminders as i64;
    let lost = expected - r.sent - r.failed - r.dead;
    let double_counted = r.frequency - r.distinct_sent;
    println!("reminders in:                {expected}");
    println!(
        "faults injected:             {} broker restarts, {} database stops, {} sender kills, {} tracker kills",
        injected.get("broker").unwrap_or(&0),
        injected.get("database").unwrap_or(&0),
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

fn fault_name(f: Fault) -> &'static str {
    match f {
        Fault::Broker => "broker",
        Fault::Database => "database",
        Fault::KillSender => "sender",
        Fault::KillTracker => "tracker",
    }
}

async fn inject(f: Fault, o: &Opts, sender: &mut Role, tracker: &mut Role) -> anyhow::Result<()> {
    let outage = Duration::from_secs(o.outage_secs);
    match f {
        Fault::Broker => {
            println!("  fault: RabbitMQ stopped for {} s", o.outage_secs);
            services::stop_rabbit();
            tokio::time::sleep(outage).await;
            tokio::task::spawn_blocking(start_rabbit).await?;
        }
        Fault::Database => {
            println!("  fault: PostgreSQL stopped for {} s", o.outage_secs);
            services::stop_postgres();
            tokio::time::sleep(outage).await;
            tokio::task::spawn_blocking(start_postgres).await?;
        }
        Fault::KillSender => {
            println!("  fault: sender killed (SIGKILL) and restarted");
            sender.kill_and_restart()?;
        }
        Fault::KillTracker => {
            println!("  fault: tracker killed (SIGKILL) and restarted");
            tracker.kill_and_restart()?;
        }
    }
    Ok(())
}

/// Customers and vehicles, every vehicle due today to today + 2 (UTC).
async fn seed(pool: &PgPool, n: u64) -> anyhow::Result<()> {
    let today = chrono::Utc::now().date_naive();
    sqlx::query(
        "INSERT INTO customers (id, name, phone)
         SELECT md5('soak-c' || i)::uuid, 'Customer ' || i, '0812' || lpad(i::text, 8, '0')
         FROM generate_series(1, $1::bigint) i",
    )
    .bind(n as i64)
    .execute(pool)
    .await
    .context("seeding customers")?;
    sqlx::query(
        "INSERT INTO vehicles (id, id_customer, plate_number, next_maintenance_date)
         SELECT md5('soak-v' || i)::uuid, md5('soak-c' || i)::uuid, 'B ' || i || ' SK',
                $2::date + (i % 3)::int
         FROM generate_series(1, $1::bigint) i",
    )
    .bind(n as i64)
    .bind(today)
    .execute(pool)
    .await
    .context("seeding vehicles")?;
    Ok(())
}

/// Reminders whose outcome the tracker recorded (0 while the database is away).
async fn outcomes(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(DISTINCT reminder_id) FROM message_log")
        .fetch_one(pool)
        .await
}

struct Report {
    sent: i64,
    distinct_sent: i64,
    failed: i64,
    frequency: i64,
    dead: i64,
}

impl Report {
    async fn read(pool: &PgPool, settings: &Settings) -> anyhow::Result<Report> {
        let (sent, distinct_sent, failed, frequency): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM message_log WHERE status = 'sent'),
                    (SELECT count(DISTINCT reminder_id) FROM message_log WHERE status = 'sent'),
                    (SELECT count(*) FROM message_log WHERE status = 'failed'),
                    (SELECT coalesce(sum(frequency), 0)::bigint FROM whatsapp_report)",
        )
        .fetch_one(pool)
        .await?;
        let conn = Connection::connect(&settings.amqp.url, ConnectionProperties::default()).await?;
        let channel = conn.create_channel().await?;
        let dead = channel
            .queue_declare(
                Topology::new(&settings.amqp).dead_queue.as_str().into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                Default::default(),
            )
            .await
            .map(|q| q.message_count() as i64)
            .unwrap_or(0);
        let _ = conn.close(200, "".into()).await;
        Ok(Report {
            sent,
            distinct_sent,
            failed,
            frequency,
            dead,
        })
    }
}

/// Removes the soak's queues, exchanges and database.
async fn cleanup(settings: &Settings) {
    if let Ok(conn) = Connection::connect(&settings.amqp.url, ConnectionProperties::default()).await
    {
        let topology = Topology::new(&settings.amqp);
        let mut queues = topology.queue_names();
        for n in 1..=16 {
            queues.push(topology.retry_queue(settings.sender.retry_delay(n)));
        }
        // The children ran with their own retry ladder (200 ms doubling to 2 s).
        for ms in [200u64, 400, 800, 1600, 2000] {
            queues.push(topology.retry_queue(Duration::from_millis(ms)));
        }
        queues.sort();
        queues.dedup();
        if let Ok(ch) = conn.create_channel().await {
            for q in queues {
                let _ = ch
                    .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                    .await;
            }
            for x in [&topology.exchange, &topology.dead_letter_exchange] {
                let _ = ch
                    .exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default())
                    .await;
            }
        }
        let _ = conn.close(200, "".into()).await;
    }
    let db = settings
        .database
        .url
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let admin = settings.database.url.replace(&db, "postgres");
    if let Ok(pool) = PgPool::connect(&admin).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"
        )))
        .execute(&pool)
        .await;
        pool.close().await;
    }
}
