//! One run's private place on the shared PostgreSQL and RabbitMQ: its own database (random
//! name), exchange and queue prefix, so tests, benchmark scenarios and soaks run side by side
//! with each other and with the machine's other users, and one teardown that removes all of it
//! (the databases it handed out, the topology's queues at every retry delay, the extra queues
//! it named, both exchanges). The benchmark and the soak await `teardown`; a test's
//! `TestEnv` runs it when dropped.

use std::sync::Mutex;
use std::time::Duration;

use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use reminder::broker::Topology;
use reminder::configuration::{ProviderKind, Settings};
use sqlx::ConnectOptions as _;
use sqlx::PgPool;
use uuid::Uuid;

use crate::mock_provider::{self, BaseUrl};

/// Retries per reminder whose delay queues the teardown removes: more than any run reaches.
const RETRY_LEVELS: u32 = 16;

pub struct Scratch {
    /// Random, 12 hex digits: part of every name below.
    pub id: String,
    /// The compiled-in defaults, pointed at this run's database, exchange and queues, with no
    /// catch-up scan at start, the log provider, no rate limits and any free HTTP port.
    pub settings: Settings,
    label: String,
    pg_url: String,
    databases: Mutex<Vec<String>>,
    extra_queues: Mutex<Vec<String>>,
}

impl Scratch {
    /// `label` says what runs (`test`, `bench_producer`, `soak`): the database is
    /// `reminder_{label}_{id}`, the exchange `{label}-{id}.events` and every queue starts with
    /// `{label}-{id}.`. `pg_url` is the server without a database name.
    pub fn new(label: &str, pg_url: &str, amqp_url: &str) -> Scratch {
        let id = Uuid::new_v4().simple().to_string()[..12].to_string();
        let pg_url = pg_url.trim_end_matches('/').to_string();
        let database = format!("reminder_{label}_{id}");
        let prefix = format!("{}-{id}.", label.replace('_', "-"));
        let mut s = Settings::defaults();
        s.database.url = format!("{pg_url}/{database}");
        s.amqp.url = amqp_url.into();
        s.amqp.exchange = format!("{prefix}events");
        s.amqp.queue_prefix = prefix;
        s.producer.catch_up_on_start = false;
        s.whatsapp.provider = ProviderKind::Log;
        s.whatsapp.max_per_second = 0;
        s.sender.recipient_interval_ms = 0;
        s.http.bind = "127.0.0.1:0".into();
        Scratch {
            id,
            settings: s,
            label: label.to_string(),
            pg_url,
            databases: Mutex::new(vec![database]),
            extra_queues: Mutex::new(Vec::new()),
        }
    }

    pub fn topology(&self) -> Topology {
        Topology::new(&self.settings.amqp)
    }

    /// Points the sender at a Cloud API mock.
    pub fn use_cloud_api(&mut self, mock: &(impl BaseUrl + ?Sized)) {
        mock_provider::point_at(&mut self.settings.whatsapp, &mock.base_url());
    }

    /// The URL of database `name` on this run's server.
    pub fn database_url(&self, name: &str) -> String {
        format!("{}/{name}", self.pg_url)
    }

    /// The URL of another database of this run (e.g. a fresh one per round), dropped with the
    /// rest.
    pub fn extra_database(&self, suffix: &str) -> String {
        let name = format!("reminder_{}_{}_{suffix}", self.label, self.id);
        self.databases.lock().expect("lock").push(name.clone());
        self.database_url(&name)
    }

    /// A queue name under this run's prefix, deleted at teardown.
    pub fn extra_queue(&self, role: &str) -> String {
        let name = format!("{}{role}", self.settings.amqp.queue_prefix);
        self.extra_queues.lock().expect("lock").push(name.clone());
        name
    }

    /// Drops the database at `url` now rather than at teardown, to free its disk; best effort
    /// (the teardown tries again).
    pub async fn drop_database_now(&self, url: &str) {
        if let Ok(admin) = admin_pool(&self.pg_url).await {
            let name = url.rsplit('/').next().unwrap_or_default();
            let _ = drop_database(&admin, name).await;
            admin.close().await;
        }
    }

    /// Deletes the queues and exchanges and drops the databases. Best effort: says on stderr
    /// what it could not remove.
    pub async fn teardown(&self) {
        let topology = self.topology();
        let mut queues = topology.queue_names();
        for n in 1..=RETRY_LEVELS {
            queues.push(topology.retry_queue(self.settings.sender.retry_delay(n)));
        }
        queues.extend(self.extra_queues.lock().expect("lock").iter().cloned());
        queues.sort();
        queues.dedup();
        match crate::amqp::connect_any(&self.settings.amqp.url).await {
            Ok(conn) => {
                // A channel per deletion: deleting what does not exist closes the channel.
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
                "reminder-harness: could not delete queues {}*: {e}",
                self.settings.amqp.queue_prefix
            ),
        }
        let databases = self.databases.lock().expect("lock").clone();
        match admin_pool(&self.pg_url).await {
            Ok(pool) => {
                for db in databases {
                    if let Err(e) = drop_database(&pool, &db).await {
                        eprintln!("reminder-harness: could not drop database {db}: {e}");
                    }
                }
                pool.close().await;
            }
            Err(e) => eprintln!("reminder-harness: could not drop the databases: {e}"),
        }
    }

    /// `teardown` from synchronous code (a `Drop`), on a short-lived runtime of its own
    /// thread, so it works inside or outside a runtime.
    pub fn teardown_blocking(&self) {
        std::thread::scope(|scope| {
            scope.spawn(|| {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt.block_on(self.teardown()),
                    Err(e) => eprintln!("reminder-harness: no runtime for the teardown: {e}"),
                }
            });
        });
    }
}

/// A connection to the maintenance database of the server at `pg_url`, quiet about slow
/// statements (dropping a database with millions of rows takes seconds).
pub async fn admin_pool(pg_url: &str) -> anyhow::Result<PgPool> {
    let url = format!("{}/postgres", pg_url.trim_end_matches('/'));
    let options = reminder::db::connect_options(&url)?
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

/// The environment that gives a child `reminder` process these settings (`REMINDER__…`), as
/// far as the harness changes them.
pub fn child_env(s: &Settings) -> Vec<(String, String)> {
    let w = &s.whatsapp;
    let vars = [
        ("DATABASE__URL", s.database.url.clone()),
        ("AMQP__URL", s.amqp.url.clone()),
        ("AMQP__EXCHANGE", s.amqp.exchange.clone()),
        ("AMQP__QUEUE_PREFIX", s.amqp.queue_prefix.clone()),
        (
            "AMQP__RECONNECT_INITIAL_MS",
            s.amqp.reconnect_initial_ms.to_string(),
        ),
        (
            "AMQP__RECONNECT_MAX_MS",
            s.amqp.reconnect_max_ms.to_string(),
        ),
        (
            "PRODUCER__CATCH_UP_ON_START",
            s.producer.catch_up_on_start.to_string(),
        ),
        ("PRODUCER__TIMEZONE", s.producer.timezone.clone()),
        ("SENDER__CONCURRENCY", s.sender.concurrency.to_string()),
        (
            "SENDER__RECIPIENT_INTERVAL_MS",
            s.sender.recipient_interval_ms.to_string(),
        ),
        (
            "SENDER__RETRY_INITIAL_MS",
            s.sender.retry_initial_ms.to_string(),
        ),
        ("SENDER__RETRY_MAX_MS", s.sender.retry_max_ms.to_string()),
        (
            "TRACKER__BATCH_LINGER_MS",
            s.tracker.batch_linger_ms.to_string(),
        ),
        ("WHATSAPP__PROVIDER", w.provider.as_str().to_string()),
        ("WHATSAPP__MAX_PER_SECOND", w.max_per_second.to_string()),
        (
            "WHATSAPP__REQUEST_TIMEOUT_MS",
            w.request_timeout_ms.to_string(),
        ),
        (
            "WHATSAPP__HTTP2_PRIOR_KNOWLEDGE",
            w.http2_prior_knowledge.to_string(),
        ),
        (
            "WHATSAPP__CLOUD_API__BASE_URL",
            w.cloud_api.base_url.clone(),
        ),
        (
            "WHATSAPP__CLOUD_API__PHONE_NUMBER_ID",
            w.cloud_api.phone_number_id.clone(),
        ),
        (
            "WHATSAPP__CLOUD_API__ACCESS_TOKEN",
            w.cloud_api.access_token.expose().to_string(),
        ),
        ("HTTP__BIND", s.http.bind.clone()),
        ("TELEMETRY__LEVEL", s.telemetry.level.clone()),
    ];
    vars.into_iter()
        .map(|(k, v)| (format!("REMINDER__{k}"), v))
        .collect()
}
