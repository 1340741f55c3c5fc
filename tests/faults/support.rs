//! What the fault tests share besides the harness: private PostgreSQL and RabbitMQ instances
//! for each test to take away, a mock Cloud API on a thread of its own, a workload of
//! reminders, the counts it must end with, and `reminder` child processes.

use std::path::Path;
use std::time::Duration;

use reminder_harness::mock_provider::{Behaviour, MockCloudApi};
use reminder_harness::prelude::*;
use reminder_harness::process::Process;
use reminder_harness::scratch::child_env;
use reminder_harness::tally::{Tally, tally};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

pub use reminder_harness::private::{PrivatePostgres, RabbitCluster};
pub use reminder_harness::tcp_proxy::TcpProxy;

/// A test's own PostgreSQL server and RabbitMQ node(s), started side by side. Dropped last in a
/// test (declare it first), after the application and the environment on it.
pub struct Private {
    pub pg: PrivatePostgres,
    pub rabbit: RabbitCluster,
}

impl Private {
    /// A private PostgreSQL and a RabbitMQ cluster of `nodes` nodes.
    pub async fn start(nodes: usize) -> Private {
        let (pg, rabbit) = tokio::join!(
            PrivatePostgres::start_async(),
            RabbitCluster::start_async(nodes)
        );
        Private { pg, rabbit }
    }

    /// A test environment on them (every node in `amqp.url`). No teardown: the instances go
    /// away whole, and may be stopped or frozen when the test ends.
    pub fn env(&self) -> TestEnv {
        TestEnv::on(&self.pg.url(), &self.rabbit.urls()).without_teardown()
    }

    /// `env`, with its sender pointed at `sends`.
    pub fn env_with(&self, sends: &MockCloudApi) -> TestEnv {
        let mut env = self.env();
        env.use_cloud_api(sends);
        env
    }
}

/// A Cloud API mock answering every send after `delay`. When `flaky`, the first call for one
/// reminder in five (chosen by its id, so a retry does not fail again by chance) fails
/// transiently with a 503, as a provider having a bad minute does; the sender must retry it.
/// It serves from a thread of its own: a test blocked on a service command must not hold its
/// answers up, or a send that outlives its time-out is retried and counts as a second send.
pub async fn provider(delay: Duration, flaky: bool) -> MockCloudApi {
    MockCloudApi::start_with(Behaviour {
        delay,
        transient_one_in: if flaky { 5 } else { 0 },
        own_thread: true,
        ..Behaviour::default()
    })
    .await
    .expect("the mock Cloud API starts")
}

/// A private PostgreSQL and single RabbitMQ node, a `provider` and a test environment on them
/// whose sender calls it.
pub async fn env_with_provider(delay: Duration, flaky: bool) -> (Private, MockCloudApi, TestEnv) {
    let private = Private::start(1).await;
    let sends = provider(delay, flaky).await;
    let env = private.env_with(&sends);
    (private, sends, env)
}

/// `n` reminders, each for its own customer and vehicle.
pub fn reminders(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let mut e =
                maintenance_due(&Uuid::new_v4().to_string(), Uuid::new_v4(), Uuid::new_v4());
            // Distinct phones, so the per-recipient gap never holds one back.
            e["data"]["phone"] = json!(format!("0812{:08}", i));
            e
        })
        .collect()
}

/// Publishes every event with confirms, a window of them in flight.
pub async fn publish_all(amqp: &TestAmqp, events: &[Value]) {
    for chunk in events.chunks(200) {
        futures::future::join_all(chunk.iter().map(|e| amqp.publish_event(e))).await;
    }
}

/// What the report counted; zeros while the database is unreachable.
pub async fn counts(pool: &PgPool) -> Tally {
    tally(pool).await.unwrap_or_default()
}

/// Waits until the report counted `n` sends, then checks it stays there (nothing more arrives
/// after a short quiet period) and that history and report agree.
pub async fn assert_counted_exactly(pool: &PgPool, n: i64, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let c = counts(pool).await;
        if c.frequency >= n {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {c:?} of {n} counted within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(counts(pool).await, Tally::each_once(n));
}

/// After an outage with a flaky provider: every one of `n` reminders is counted once and was
/// accepted by the provider once, although some calls failed and were retried.
pub async fn assert_each_sent_once_despite_failures(pool: &PgPool, sends: &MockCloudApi, n: i64) {
    assert_counted_exactly(pool, n, Duration::from_secs(120)).await;
    assert_eq!(sends.accepted().0, n as u64);
    assert_eq!(sends.repeated(), vec![], "no reminder is sent twice");
    assert!(
        sends.transient_failures() > 0,
        "the provider failed some calls"
    );
}

/// A `reminder run <roles>` child process with the test's settings and `extra` overrides;
/// killed with SIGKILL when dropped.
pub fn reminder(env: &TestEnv, roles: &[&str], extra: &[(&str, &str)]) -> Process {
    let args: Vec<&str> = std::iter::once("run")
        .chain(roles.iter().copied())
        .collect();
    let overrides = extra.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    Process::spawn(
        Path::new(env!("CARGO_BIN_EXE_reminder")),
        &args,
        child_env(&env.settings).into_iter().chain(overrides),
    )
    .expect("reminder starts")
}

/// Reminders whose send is recorded (`reminder_dispatch.status = 'sent'`).
pub async fn recorded_sends(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM reminder_dispatch WHERE status = 'sent'")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The value of one series in a Prometheus text exposition (0 when it is absent).
pub fn metric(exposition: &str, series: &str) -> f64 {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}
