//! What every scenario shares: the options, a private database and exchange/queue prefix per
//! scenario that is removed on every exit path, raw RabbitMQ publishing, polling, sample events
//! and the process's resident memory.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::{NaiveDate, Utc};
use futures::{FutureExt as _, StreamExt as _};
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeleteOptions, QueueDeclareOptions,
    QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use reminder::broker::Topology;
use reminder::configuration::{ProviderKind, Secret, Settings};
use reminder::domain::events::{MAINTENANCE_DUE, MESSAGE_SENT, outcome_id};
use reminder::domain::{CountryCode, MaintenanceDue, MessageSent, OutgoingEvent, PhoneNumber};
use sqlx::PgPool;
use uuid::Uuid;

use crate::report::{Row, Summary, Unit};

/// Options of every scenario. Defaults are the sizes the issues ask for.
#[derive(Debug, Clone, clap::Args, serde::Serialize, serde::Deserialize)]
pub struct Opts {
    /// Measured rounds per figure (medians and min..max are over these).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// PostgreSQL server URL, without a database name.
    #[arg(
        long,
        env = "REMINDER_BENCH_PG_URL",
        default_value = "postgres://postgres@127.0.0.1:5432"
    )]
    pub pg_url: String,
    /// RabbitMQ URL.
    #[arg(
        long,
        env = "REMINDER_BENCH_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp_url: String,
    /// Messages (and upserted events) per ceiling round.
    #[arg(long, default_value_t = 50_000)]
    pub ceiling_messages: usize,
    /// Unconfirmed publishes in flight for the publish ceiling (and amqp.publish_window).
    #[arg(long, default_value_t = 1000)]
    pub publish_window: usize,

    /// producer: vehicles in the fleet.
    #[arg(long, default_value_t = 1_000_000)]
    pub vehicles: u64,
    /// producer: of which due within producer.days_ahead.
    #[arg(long, default_value_t = 100_000)]
    pub due: u64,

    /// sender: reminders per throughput round.
    #[arg(long, default_value_t = 10_000)]
    pub sends: u64,
    /// sender: sender.concurrency (sends in flight; the prefetch is a quarter more).
    #[arg(long, default_value_t = 500)]
    pub sender_concurrency: usize,
    /// sender: the mock Cloud API's answer delay.
    #[arg(long, default_value_t = 100)]
    pub provider_delay_ms: u64,
    /// sender, e2e: speak HTTP/1.1 to the mock Cloud API, a connection per send in flight,
    /// instead of HTTP/2 over one connection (what the real https API negotiates).
    #[arg(long)]
    pub provider_http1: bool,
    /// sender: whatsapp.max_per_second for the rate-limit part.
    #[arg(long, default_value_t = 80)]
    pub rate_limit: u32,
    /// sender: how long each rate-limit round runs.
    #[arg(long, default_value_t = 8)]
    pub rate_seconds: u64,

    /// tracker: message.sent events per round.
    #[arg(long, default_value_t = 200_000)]
    pub tracker_events: u64,
    /// tracker: (customer, vehicle) pairs they are spread over.
    #[arg(long, default_value_t = 10_000)]
    pub tracker_pairs: u64,
    /// tracker: events per round of the seed's way (one transaction and one ack per message).
    #[arg(long, default_value_t = 2_000)]
    pub baseline_events: u64,
    /// tracker: tracker.batch_size (0: the configured default).
    #[arg(long, default_value_t = 0)]
    pub tracker_batch: usize,
    /// tracker: tracker.batches_in_flight (0: the configured default).
    #[arg(long, default_value_t = 0)]
    pub tracker_in_flight: usize,

    /// api: report rows.
    #[arg(long, default_value_t = 1_000_000)]
    pub api_reports: u64,
    /// api: message records (spread evenly over the reports).
    #[arg(long, default_value_t = 5_000_000)]
    pub api_messages: u64,
    /// api: concurrent connections of the load generator.
    #[arg(long, default_value_t = 50)]
    pub api_connections: usize,
    /// api: seconds of load per route and round.
    #[arg(long, default_value_t = 3)]
    pub api_seconds: u64,

    /// e2e: due reminders per round.
    #[arg(long, default_value_t = 100_000)]
    pub e2e_reminders: u64,
    /// e2e: the mock Cloud API's answer delay.
    #[arg(long, default_value_t = 50)]
    pub e2e_provider_delay_ms: u64,
    /// e2e: sender.concurrency. Over HTTP/1.1 each reminder in flight holds a connection on
    /// both ends (client and in-process mock): 1000 measured 145 MiB peak, 700 128 MiB at the
    /// same throughput; over HTTP/2, one connection for all, 700 measured 72-75 MiB.
    #[arg(long, default_value_t = 700)]
    pub e2e_concurrency: usize,
    /// e2e: seconds of paced publishing for the publish-to-counted latency.
    #[arg(long, default_value_t = 5)]
    pub paced_seconds: u64,
    /// e2e: paced publishing rate (0: a quarter of the publish ceiling, the e2e target).
    #[arg(long, default_value_t = 0)]
    pub paced_rate: u64,
    /// e2e: units of each floor part (claims and records, tracker events, provider calls)
    /// measured alone after each round.
    #[arg(long, default_value_t = 20_000)]
    pub floor_units: u64,

    /// database.max_connections of the roles under test (pool size per process; the shipped
    /// default).
    #[arg(long, default_value_t = 8)]
    pub db_connections: u32,

    /// http.db_connections of the API under test (its own read-only pool; the shipped default).
    #[arg(long, default_value_t = 4)]
    pub api_db_connections: u32,

    /// Log filter for reminder's own logs (RUST_LOG overrides).
    #[arg(long, default_value = "warn")]
    pub log: String,
}

impl Opts {
    /// How the sender speaks to the mock Cloud API, for the tables' headings.
    pub fn provider_protocol(&self) -> &'static str {
        if self.provider_http1 {
            "HTTP/1.1"
        } else {
            "HTTP/2"
        }
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if self.rounds == 0 {
            bail!("--rounds must be at least 1");
        }
        if self.due > self.vehicles {
            bail!("--due cannot exceed --vehicles");
        }
        if self.tracker_pairs == 0 || self.tracker_events == 0 {
            bail!("--tracker-events and --tracker-pairs must be positive");
        }
        if self.api_reports == 0 || !self.api_messages.is_multiple_of(self.api_reports) {
            bail!("--api-messages must be a multiple of --api-reports");
        }
        if self.sender_concurrency == 0
            || self.e2e_concurrency == 0
            || self.sender_concurrency > u16::MAX as usize
            || self.e2e_concurrency > u16::MAX as usize
        {
            bail!("concurrency must be between 1 and 65535");
        }
        Ok(())
    }

    pub fn database_url(&self, name: &str) -> String {
        format!("{}/{name}", self.pg_url.trim_end_matches('/'))
    }
}

pub fn init_logs(opts: &Opts) {
    let mut t = Settings::defaults().telemetry;
    t.level = opts.log.clone();
    reminder::telemetry::init(&t);
}

/// A scenario's private database(s), exchange and queues.
pub struct BenchEnv {
    pub id: String,
    pub settings: Settings,
    opts: Opts,
    databases: Mutex<Vec<String>>,
    extra_queues: Mutex<Vec<String>>,
}

impl BenchEnv {
    pub fn new(scenario: &str, opts: &Opts) -> BenchEnv {
        let id = Uuid::new_v4().simple().to_string()[..10].to_string();
        let db = format!("reminder_bench_{scenario}_{id}");
        let mut s = Settings::defaults();
        s.database.url = opts.database_url(&db);
        s.database.max_connections = opts.db_connections;
        s.http.db_connections = opts.api_db_connections;
        s.amqp.url = opts.amqp_url.clone();
        s.amqp.exchange = format!("bench-{id}.events");
        s.amqp.queue_prefix = format!("bench-{id}.");
        s.amqp.publish_window = opts.publish_window;
        s.producer.catch_up_on_start = false;
        s.whatsapp.provider = ProviderKind::Log;
        s.whatsapp.max_per_second = 0;
        s.sender.recipient_interval_ms = 0;
        s.telemetry.level = opts.log.clone();
        s.http.bind = "127.0.0.1:0".into();
        s.runtime.shutdown_timeout_secs = 10;
        BenchEnv {
            id,
            settings: s,
            opts: opts.clone(),
            databases: Mutex::new(vec![db]),
            extra_queues: Mutex::new(Vec::new()),
        }
    }

    pub fn topology(&self) -> Topology {
        Topology::new(&self.settings.amqp)
    }

    /// Another database of this scenario (removed with the rest), e.g. a fresh one per round.
    pub fn extra_database(&self, suffix: &str) -> String {
        let name = format!("reminder_bench_{}_{suffix}", self.id);
        self.databases.lock().expect("lock").push(name.clone());
        self.opts.database_url(&name)
    }

    /// A queue name under this scenario's prefix, deleted at clean-up.
    pub fn extra_queue(&self, role: &str) -> String {
        let name = format!("{}{role}", self.settings.amqp.queue_prefix);
        self.extra_queues.lock().expect("lock").push(name.clone());
        name
    }

    /// Points the sender at a mock Cloud API.
    pub fn use_mock_cloud_api(settings: &mut Settings, base_url: &str, opts: &Opts) {
        let w = &mut settings.whatsapp;
        w.provider = ProviderKind::CloudApi;
        // The mock speaks both; HTTP/2 is what the real API's https address negotiates.
        w.http2_prior_knowledge = !opts.provider_http1;
        w.cloud_api.base_url = base_url.to_string();
        w.cloud_api.phone_number_id = crate::mock_provider::PHONE_NUMBER_ID.into();
        w.cloud_api.access_token = Secret::new("EAAbench-token");
        w.request_timeout_ms = 10_000;
    }

    /// Deletes the queues and exchanges and drops the databases. Best effort: reports what it
    /// could not remove.
    pub async fn cleanup(&self) {
        let topology = self.topology();
        let mut queues = topology.queue_names();
        for n in 1..=16 {
            queues.push(topology.retry_queue(self.settings.sender.retry_delay(n)));
        }
        queues.extend(self.extra_queues.lock().expect("lock").iter().cloned());
        queues.sort();
        queues.dedup();
        match Connection::connect(&self.opts.amqp_url, ConnectionProperties::default()).await {
            Ok(conn) => {
                for q in &queues {
                    if let Ok(ch) = conn.create_channel().await {
                        let _ = ch
                            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                            .await;
                        let _ = ch.close(200, "".into()).await;
                    }
                }
                for x in [&topology.exchange, &topology.dead_letter_exchange] {
                    if let Ok(ch) = conn.create_channel().await {
                        let _ = ch
                            .exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default())
                            .await;
                        let _ = ch.close(200, "".into()).await;
                    }
                }
                let _ = conn.close(200, "".into()).await;
            }
            Err(e) => eprintln!(
                "reminder-bench: could not delete queues {}*: {e}",
                self.settings.amqp.queue_prefix
            ),
        }
        let databases = self.databases.lock().expect("lock").clone();
        match admin_pool(&self.opts).await {
            Ok(pool) => {
                for db in databases {
                    if let Err(e) = drop_database(&pool, &db).await {
                        eprintln!("reminder-bench: could not drop database {db}: {e}");
                    }
                }
                pool.close().await;
            }
            Err(e) => eprintln!("reminder-bench: could not drop the bench databases: {e}"),
        }
    }
}

/// A connection to the maintenance database, quiet about slow statements (dropping a
/// database with millions of rows takes seconds).
pub async fn admin_pool(opts: &Opts) -> anyhow::Result<PgPool> {
    use sqlx::ConnectOptions as _;
    let options = reminder::db::connect_options(&opts.database_url("postgres"))?
        .log_slow_statements(tracing::log::LevelFilter::Off, Duration::from_secs(60));
    Ok(sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await?)
}

pub async fn drop_database(admin: &PgPool, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(admin)
    .await
    .map(|_| ())
}

/// Drops the database at `url` now rather than at clean-up, to free its disk; best effort
/// (clean-up tries again).
pub async fn drop_database_now(opts: &Opts, url: &str) {
    if let Ok(admin) = admin_pool(opts).await {
        let name = url.rsplit('/').next().unwrap_or_default();
        let _ = drop_database(&admin, name).await;
        admin.close().await;
    }
}

/// Runs `body` with a fresh `BenchEnv` and cleans up afterwards whatever happened: success,
/// error, panic or Ctrl-C.
pub async fn guarded<T, F, Fut>(scenario: &str, opts: &Opts, body: F) -> anyhow::Result<T>
where
    F: FnOnce(std::sync::Arc<BenchEnv>) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let env = std::sync::Arc::new(BenchEnv::new(scenario, opts));
    let work = std::panic::AssertUnwindSafe(body(env.clone())).catch_unwind();
    let result = tokio::select! {
        r = work => match r {
            Ok(r) => r,
            Err(panic) => Err(anyhow::anyhow!("the {scenario} scenario panicked: {}", panic_text(&panic))),
        },
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    env.cleanup().await;
    result.with_context(|| format!("{scenario} scenario"))
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

/// Polls `check` every `every` until it yields a value; fails after `timeout` with `what`.
pub async fn poll<T, F, Fut>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(every).await;
    }
}

// ---------------------------------------------------------------- RabbitMQ, raw

pub struct Amqp {
    pub conn: Connection,
    pub channel: Channel,
}

impl Amqp {
    /// A connection with one confirm-mode channel.
    pub async fn connect(url: &str) -> anyhow::Result<Amqp> {
        let conn = Connection::connect(
            url,
            ConnectionProperties::default().with_connection_name("reminder-bench".into()),
        )
        .await
        .context("connecting to RabbitMQ")?;
        let channel = conn.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Amqp { conn, channel })
    }

    pub async fn close(self) {
        let _ = self.channel.close(200, "".into()).await;
        let _ = self.conn.close(200, "".into()).await;
    }

    /// Publishes persistent, mandatory messages with a window of unconfirmed ones in flight;
    /// fails on any nack or return. Returns how many were confirmed.
    pub async fn publish_many<I>(
        &self,
        exchange: &str,
        routing_key: &str,
        messages: I,
        window: usize,
    ) -> anyhow::Result<u64>
    where
        I: IntoIterator<Item = (String, Vec<u8>)>,
    {
        let mut in_flight = futures::stream::FuturesUnordered::new();
        let mut confirmed = 0u64;
        for (id, body) in messages {
            while in_flight.len() >= window.max(1) {
                if let Some(c) = in_flight.next().await {
                    check_confirm(c)?;
                    confirmed += 1;
                }
            }
            in_flight.push(self.publish(exchange, routing_key, &id, &body).await?);
        }
        while let Some(c) = in_flight.next().await {
            check_confirm(c)?;
            confirmed += 1;
        }
        Ok(confirmed)
    }

    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        id: &str,
        body: &[u8],
    ) -> anyhow::Result<lapin::PublisherConfirm> {
        Ok(self
            .channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                body,
                event_properties(id),
            )
            .await?)
    }

    /// Messages ready in a queue.
    pub async fn depth(&self, queue: &str) -> anyhow::Result<u64> {
        let q = self
            .channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("inspecting queue {queue}"))?;
        Ok(q.message_count() as u64)
    }

    pub async fn purge(&self, queue: &str) -> anyhow::Result<()> {
        self.channel
            .queue_purge(queue.into(), QueuePurgeOptions::default())
            .await
            .with_context(|| format!("purging queue {queue}"))?;
        Ok(())
    }
}

pub fn event_properties(id: &str) -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/cloudevents+json".into())
        .with_delivery_mode(2)
        .with_message_id(id.into())
}

pub fn check_confirm(c: lapin::Result<Confirmation>) -> anyhow::Result<()> {
    match c? {
        Confirmation::Ack(None) => Ok(()),
        other => bail!("the broker did not confirm a publish: {other:?}"),
    }
}

// ---------------------------------------------------------------- sample events

/// A `maintenance.due` as the producer writes it, for recipient number `n`.
pub fn due_event(id: &str, n: u64, time: chrono::DateTime<Utc>, due: NaiveDate) -> Vec<u8> {
    let country = CountryCode::parse("62").expect("62 is a country code");
    let data = MaintenanceDue {
        customer_id: Uuid::new_v4(),
        vehicle_id: Uuid::new_v4(),
        customer_name: format!("Customer {n}"),
        phone: PhoneNumber::parse(&format!("0812{:08}", n % 100_000_000), &country)
            .expect("a valid Indonesian mobile number"),
        plate_number: format!("B {} XY", n % 10_000),
        vehicle: Some("Honda Vario 125".into()),
        due_date: due,
        locale: None,
    };
    OutgoingEvent::new(
        id.to_string(),
        "reminder-bench/upstream",
        MAINTENANCE_DUE,
        time,
        data,
    )
    .to_bytes()
}

/// A `message.sent` as the sender writes it. Returns (event id, body).
pub fn sent_event(
    reminder_id: &str,
    customer: Uuid,
    vehicle: Uuid,
    n: u64,
    at: chrono::DateTime<Utc>,
) -> (String, Vec<u8>) {
    let id = outcome_id(MESSAGE_SENT, reminder_id);
    let data = MessageSent {
        reminder_id: reminder_id.to_string(),
        customer_id: customer,
        vehicle_id: vehicle,
        phone: format!("62812{:08}", n % 100_000_000),
        provider: "cloud_api".into(),
        provider_message_id: format!("wamid.HBgLNjI4MTIzNDU2Nzg5MBUCABEYEj{n:010}"),
        sent_at: at,
        attempts: 1,
        customer_name: Some(format!("Customer {n}")),
        plate_number: Some(format!("B {} XY", n % 10_000)),
    };
    let body = OutgoingEvent::new(id.clone(), "reminder/sender", MESSAGE_SENT, at, data).to_bytes();
    (id, body)
}

/// The (customer, vehicle) of pair `p` of a benchmark: stable, so events spread over pairs.
pub fn pair(seed: Uuid, p: u64) -> (Uuid, Uuid) {
    (
        Uuid::new_v5(&seed, format!("customer/{}", p / 2).as_bytes()),
        Uuid::new_v5(&seed, format!("vehicle/{p}").as_bytes()),
    )
}

// ---------------------------------------------------------------- CPU time

/// `/proc`'s clock tick (USER_HZ), 100 on Linux whatever the kernel's own tick rate.
const TICKS_PER_SEC: f64 = 100.0;

/// CPU time spent so far by this process, by the local RabbitMQ and PostgreSQL, and by the whole
/// machine, read from `/proc`, to say what a unit of work costs and who pays for it.
#[derive(Debug, Clone, Copy)]
pub struct CpuTimes {
    process: f64,
    broker: f64,
    database: f64,
    machine: f64,
    at: Instant,
}

/// CPU seconds spent between two `CpuTimes`, and the wall-clock seconds between them.
#[derive(Debug, Clone, Copy)]
pub struct CpuSpent {
    pub process: f64,
    /// RabbitMQ's Erlang VM (`beam.smp`) on this machine; 0 when the broker runs elsewhere.
    pub broker: f64,
    /// Every `postgres` process on this machine; 0 when the database runs elsewhere. A backend
    /// that exits between the readings takes its time with it (pooled connections do not).
    pub database: f64,
    pub machine: f64,
    pub wall: f64,
}

/// utime + stime of one `/proc/<pid>/stat` line, in seconds, and the process's command name.
fn process_cpu(stat: &str) -> Option<(&str, f64)> {
    let name = stat.get(stat.find('(')? + 1..stat.rfind(')')?)?;
    // Fields after the command name, which may itself hold spaces and parentheses.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
    let ticks = |i: usize| fields.get(i)?.parse::<u64>().ok();
    // utime and stime: fields 14 and 15 of the line (`man 5 proc`).
    Some((name, (ticks(11)? + ticks(12)?) as f64 / TICKS_PER_SEC))
}

/// CPU seconds so far of the local RabbitMQ and of the local PostgreSQL processes.
fn services_cpu() -> (f64, f64) {
    let (mut broker, mut database) = (0.0, 0.0);
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return (0.0, 0.0);
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        // A process may end between listing and reading: skip it.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        match process_cpu(&stat) {
            Some(("beam.smp", t)) => broker += t,
            Some((comm, t)) if comm.starts_with("postgres") => database += t,
            _ => {}
        }
    }
    (broker, database)
}

impl CpuTimes {
    /// `None` where `/proc` cannot be read (not Linux).
    pub fn now() -> Option<CpuTimes> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let (_, process) = process_cpu(&stat)?;
        let (broker, database) = services_cpu();
        let all = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu: Vec<u64> = all
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .map(|v| v.parse().ok())
            .collect::<Option<_>>()?;
        // user nice system idle iowait irq softirq steal ...: busy is user, nice, system, irq
        // and softirq (guest time is already in user). Steal is the hypervisor's, not work
        // done here.
        let busy: u64 = [0, 1, 2, 5, 6]
            .iter()
            .map(|&i| cpu.get(i).copied())
            .sum::<Option<u64>>()?;
        Some(CpuTimes {
            process,
            broker,
            database,
            machine: busy as f64 / TICKS_PER_SEC,
            at: Instant::now(),
        })
    }

    pub fn since(&self, earlier: &CpuTimes) -> CpuSpent {
        CpuSpent {
            process: self.process - earlier.process,
            broker: self.broker - earlier.broker,
            database: self.database - earlier.database,
            machine: self.machine - earlier.machine,
            wall: self.at.duration_since(earlier.at).as_secs_f64(),
        }
    }
}

/// The whole machine's CPU microseconds per unit for `units` units of work done since `start`;
/// `None` where `/proc` cannot be read.
pub fn machine_us_per_unit(start: Option<CpuTimes>, units: u64) -> Option<f64> {
    let spent = CpuTimes::now()?.since(&start?);
    Some(spent.machine * 1e6 / units as f64)
}

/// What a unit of work cost over each round: CPU microseconds per unit of the whole machine, of
/// this process and of the local RabbitMQ and PostgreSQL, and the cores the machine kept busy.
#[derive(Debug, Default)]
pub struct CpuFigures {
    machine_us: Vec<f64>,
    process_us: Vec<f64>,
    broker_us: Vec<f64>,
    database_us: Vec<f64>,
    busy_cores: Vec<f64>,
}

impl CpuFigures {
    /// Records a round of `units` units of work that ran between `start` and now; nothing when
    /// `/proc` could not be read.
    pub fn push(&mut self, start: Option<CpuTimes>, units: u64) {
        if let (Some(start), Some(end)) = (start, CpuTimes::now()) {
            let spent = end.since(&start);
            self.machine_us.push(spent.machine * 1e6 / units as f64);
            self.process_us.push(spent.process * 1e6 / units as f64);
            self.broker_us.push(spent.broker * 1e6 / units as f64);
            self.database_us.push(spent.database * 1e6 / units as f64);
            self.busy_cores.push(spent.machine / spent.wall);
        }
    }

    /// The rows, `phase` and `unit` naming them ("burst", "reminder"): the whole machine, then
    /// who spent it (this process, and RabbitMQ and PostgreSQL when they run on this machine),
    /// then the cores busy; none without samples.
    pub fn rows(&self, phase: &str, unit: &str) -> Vec<Row> {
        if self.machine_us.is_empty() {
            return Vec::new();
        }
        let per_unit = |who: &str, samples: &[f64]| {
            Row::new(
                format!("{phase}: CPU per {unit}, {who}"),
                Summary::of(samples),
                Unit::Us,
            )
        };
        let mut rows = vec![
            per_unit("whole machine", &self.machine_us),
            per_unit("this process", &self.process_us),
        ];
        let local = |samples: &[f64]| samples.iter().any(|v| *v > 0.0);
        if local(&self.broker_us) {
            rows.push(per_unit("RabbitMQ (beam.smp)", &self.broker_us));
        }
        if local(&self.database_us) {
            rows.push(per_unit("PostgreSQL (postgres)", &self.database_us));
        }
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        rows.push(Row::new(
            format!("{phase}: machine busy, of {cores} cores"),
            Summary::of(&self.busy_cores),
            Unit::Cores,
        ));
        rows
    }
}

// ---------------------------------------------------------------- memory

fn status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The process's peak resident set size (VmHWM) in MiB.
pub fn peak_rss_mb() -> f64 {
    status_kb("VmHWM:").unwrap_or(0) as f64 / 1024.0
}

/// The process's resident set size now, in MiB.
pub fn rss_mb() -> f64 {
    status_kb("VmRSS:").unwrap_or(0) as f64 / 1024.0
}

/// Resets VmHWM to the current RSS (Linux `clear_refs` 5), so a later `peak_rss_mb` is the
/// peak of what ran in between.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

// ---------------------------------------------------------------- misc

/// Sum of `frequency` over the report, from the trigger-maintained totals (cheap to poll).
pub async fn total_messages(pool: &PgPool) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT coalesce(sum(total_messages), 0)::bigint FROM report_totals")
            .fetch_one(pool)
            .await?,
    )
}

/// The exact counts, from the tables themselves: (sum of frequency, report rows, message_log
/// rows).
pub async fn exact_counts(pool: &PgPool) -> anyhow::Result<(i64, i64, i64)> {
    Ok(sqlx::query_as(
        "SELECT (SELECT coalesce(sum(frequency), 0)::bigint FROM whatsapp_report),
                (SELECT count(*) FROM whatsapp_report),
                (SELECT count(*) FROM message_log)",
    )
    .fetch_one(pool)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_spent_spinning_shows_in_the_process_and_in_the_machine() {
        let start = CpuTimes::now().expect("/proc is readable");
        // Spin until the process has used 0.2 s of CPU by its own count (however busy the
        // machine is), or give up after 10 s of wall time.
        let give_up = Instant::now() + Duration::from_secs(10);
        let mut n = 0u64;
        let spent = loop {
            for _ in 0..100_000 {
                n = std::hint::black_box(n.wrapping_add(1));
            }
            let spent = CpuTimes::now().expect("/proc is readable").since(&start);
            if spent.process >= 0.2 || Instant::now() > give_up {
                break spent;
            }
        };

        assert!(spent.process >= 0.2, "process {:.2} s", spent.process);
        // The machine's count includes this process; the two are read a moment apart, in
        // ticks of 10 ms.
        assert!(
            spent.machine >= spent.process - 0.02,
            "machine {:.2} s < process {:.2} s",
            spent.machine,
            spent.process
        );
        assert!(spent.wall > 0.0);
    }
}
