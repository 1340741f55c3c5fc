//! A test's environment: a `Scratch` (its own PostgreSQL database and RabbitMQ exchange and
//! queue prefix, random names) with settings that make a test quick, so tests run in parallel
//! and leave nothing behind: dropping the `TestEnv` drops the database and deletes the
//! exchanges and queues. Only the WhatsApp provider is replaced, by a mock (`mock_provider`).

use std::ops::{Deref, DerefMut};
use std::time::Duration;

use reminder::configuration::Settings;
use reminder::context::AppContext;
use reminder::startup::{Application, Role};
use serde_json::Value;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::amqp::TestAmqp;
use crate::scratch::Scratch;
use crate::services::{AMQP_URL, PG_URL};
use crate::wait::wait_until;

/// Logs of reminder itself at `TEST_LOG` (default `warn`), once per process.
pub fn init_logs() {
    let mut t = Settings::defaults().telemetry;
    t.level = std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".into());
    reminder::telemetry::init(&t);
}

/// One test's private database, exchange and queues; `Deref`s to its `Scratch` (`settings`,
/// `topology()`, `use_cloud_api`).
pub struct TestEnv {
    scratch: Scratch,
    teardown: bool,
}

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl TestEnv {
    /// On the machine's PostgreSQL and RabbitMQ.
    pub fn new() -> TestEnv {
        TestEnv::on(PG_URL, AMQP_URL)
    }

    /// On the PostgreSQL server at `pg_url` (no database name) and the RabbitMQ at `amqp_url`
    /// (one node, or a cluster's nodes comma-separated): a fault test's private instances.
    pub fn on(pg_url: &str, amqp_url: &str) -> TestEnv {
        init_logs();
        let mut scratch = Scratch::new("test", pg_url, amqp_url);
        let s = &mut scratch.settings;
        s.database.max_connections = 10;
        // Short back-offs and lingers, so reconnects, retries and batches happen in test time.
        s.amqp.reconnect_initial_ms = 50;
        s.amqp.reconnect_max_ms = 1000;
        s.sender.retry_initial_ms = 100;
        s.sender.retry_max_ms = 2000;
        s.tracker.batch_linger_ms = 10;
        s.runtime.shutdown_timeout_secs = 5;
        s.telemetry.level = "warn".into();
        TestEnv {
            scratch,
            teardown: true,
        }
    }

    /// Leaves the database and the queues behind when dropped: for a test on private
    /// instances, which go away whole, and may be dead or frozen by then.
    pub fn without_teardown(mut self) -> TestEnv {
        self.teardown = false;
        self
    }

    /// Starts the given roles in this process.
    pub async fn spawn(&self, roles: &[Role]) -> TestApp {
        self.spawn_with(self.settings.clone(), roles).await
    }

    pub async fn spawn_with(&self, settings: Settings, roles: &[Role]) -> TestApp {
        let app = self.spawn_unready(settings, roles).await;
        app.wait_for_broker().await;
        app
    }

    /// Starts the roles without waiting for the broker (for tests where it is unreachable).
    pub async fn spawn_unready(&self, settings: Settings, roles: &[Role]) -> TestApp {
        let app = Application::build(settings, roles)
            .await
            .expect("the application starts");
        let ctx = app.context().clone();
        let port = app.port();
        let webhook = app.webhook_port().map(|p| format!("http://127.0.0.1:{p}"));
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(app.run(shutdown.clone()));
        TestApp {
            ctx,
            address: port.map(|p| format!("http://127.0.0.1:{p}")),
            webhook,
            http: reqwest::Client::new(),
            shutdown,
            handle: Some(handle),
        }
    }

    /// A pool on this test's database (migrated).
    pub async fn pool(&self) -> PgPool {
        reminder::db::migrate(&self.settings.database)
            .await
            .expect("the test database migrates")
    }

    /// A client on this test's topology (declared).
    pub async fn amqp(&self) -> TestAmqp {
        TestAmqp::connect(&self.settings).await
    }
}

impl Deref for TestEnv {
    type Target = Scratch;
    fn deref(&self) -> &Scratch {
        &self.scratch
    }
}

impl DerefMut for TestEnv {
    fn deref_mut(&mut self) -> &mut Scratch {
        &mut self.scratch
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if self.teardown {
            self.scratch.teardown_blocking();
        }
    }
}

/// A running application.
pub struct TestApp {
    pub ctx: AppContext,
    pub address: Option<String>,
    /// The webhook role's listener, when it runs.
    pub webhook: Option<String>,
    pub http: reqwest::Client,
    pub shutdown: CancellationToken,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub fn pool(&self) -> &PgPool {
        &self.ctx.pool
    }

    pub fn url(&self, path: &str) -> String {
        format!(
            "{}{path}",
            self.address.as_deref().expect("the api role runs")
        )
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.expect("request")
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let r = self.get(path).await;
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.expect("json body")
    }

    pub async fn wait_for_broker(&self) {
        wait_until(Duration::from_secs(10), || async {
            self.ctx.broker.is_connected()
        })
        .await;
    }

    /// Stops the roles gracefully and waits for them.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(h) = self.handle.take() {
            h.await.expect("no panic").expect("clean shutdown");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
