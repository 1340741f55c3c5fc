//! The options of every scenario, with defaults at the sizes the issues ask for.

use anyhow::bail;
use reminder::configuration::Settings;

/// Options of every scenario. Defaults are the sizes the issues ask for.
#[derive(Debug, Clone, clap::Args, serde::Serialize, serde::Deserialize)]
pub struct Opts {
    /// Rounds per figure: medians and min..max are over these, and targets are judged on the
    /// median (keep 3 or more where targets matter).
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
    /// tracker: events per round of the per-message baseline (one transaction and one ack per
    /// message).
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
    /// both ends (client and in-process mock), so the peak RSS grows with it; over HTTP/2 one
    /// connection carries them all.
    #[arg(long, default_value_t = 700)]
    pub e2e_concurrency: usize,
    /// e2e: the mock also reports sent, delivered and read for every message by signed
    /// webhooks to the webhook role, as Meta does. Off by default: the floor and the targets
    /// cover a reminder's own parts, and the mock's queued reports count in the peak RSS.
    #[arg(long)]
    pub e2e_statuses: bool,
    /// e2e: seconds of paced publishing for the publish-to-counted latency.
    #[arg(long, default_value_t = 5)]
    pub paced_seconds: u64,
    /// e2e: paced publishing rate (0: a quarter of the publish ceiling).
    #[arg(long, default_value_t = 0)]
    pub paced_rate: u64,
    /// e2e: units of each floor part (claims and records, tracker events, provider calls)
    /// timed alone after each round.
    #[arg(long, default_value_t = 20_000)]
    pub floor_units: u64,

    /// Status webhooks per round of the webhook scenario.
    #[arg(long, default_value_t = 20_000)]
    pub webhook_statuses: u64,
    /// Webhook requests the webhook scenario keeps in flight.
    #[arg(long, default_value_t = 50)]
    pub webhook_connections: usize,

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
        if self.webhook_statuses == 0 || self.webhook_connections == 0 {
            bail!("--webhook-statuses and --webhook-connections must be positive");
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
}

pub fn init_logs(opts: &Opts) {
    let mut t = Settings::defaults().telemetry;
    t.level = opts.log.clone();
    reminder::telemetry::init(&t);
}
