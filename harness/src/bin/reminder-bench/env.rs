//! A scenario's environment: a `Scratch` (its own database, exchange and queue prefix) with
//! the roles' settings the options ask for, removed on every exit path: success, error, panic
//! or Ctrl-C.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use futures::FutureExt as _;
use reminder::broker::Topology;
use reminder::configuration::Settings;
use reminder::context::AppContext;
use reminder_harness::amqp::Amqp;
use reminder_harness::mock_provider::{self, MockCloudApi};
use reminder_harness::scratch::Scratch;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::opts::Opts;

pub type BenchEnv = Scratch;

/// A fresh environment for `scenario`, with the roles' pools, publish window and logs as the
/// options say.
fn bench_env(scenario: &str, opts: &Opts) -> BenchEnv {
    let mut env = Scratch::new(&format!("bench_{scenario}"), &opts.pg_url, &opts.amqp_url);
    let s = &mut env.settings;
    s.database.max_connections = opts.db_connections;
    s.http.db_connections = opts.api_db_connections;
    s.amqp.publish_window = opts.publish_window;
    s.telemetry.level = opts.log.clone();
    s.runtime.shutdown_timeout_secs = 10;
    env
}

/// Points the sender of `settings` at `mock`, over HTTP/2 unless the options ask for HTTP/1.1
/// (the mock speaks both; HTTP/2 is what the real API's https address negotiates).
pub fn use_mock(settings: &mut Settings, mock: &MockCloudApi, opts: &Opts) {
    let w = &mut settings.whatsapp;
    mock_provider::point_at(w, &mock.url);
    w.http2_prior_knowledge = !opts.provider_http1;
    w.request_timeout_ms = 10_000;
}

/// The roles' context on the scenario's database and broker, connected, and a plain client
/// with the scenario's topology declared. The context's broker session ends when this drops.
pub struct Connected {
    pub ctx: AppContext,
    pub amqp: Amqp,
    pub topology: Topology,
    /// Cancelled when this drops.
    pub shutdown: CancellationToken,
    _stop: DropGuard,
}

/// Connects the roles' context with `settings`, its connection named after `role`.
pub async fn connect(env: &BenchEnv, settings: &Settings, role: &str) -> anyhow::Result<Connected> {
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone().drop_guard();
    let ctx = reminder::startup::connect(
        settings.clone(),
        &format!("reminder-bench {role}"),
        shutdown.clone(),
    )
    .await?;
    anyhow::ensure!(
        ctx.broker.connection(&shutdown).await.is_some(),
        "no broker connection"
    );
    let amqp = Amqp::connect(&settings.amqp.url).await?;
    let topology = env.topology();
    topology.declare(&amqp.channel).await?;
    Ok(Connected {
        ctx,
        amqp,
        topology,
        shutdown,
        _stop: stop,
    })
}

/// Runs `body` with a fresh environment and tears it down afterwards whatever happened.
pub async fn guarded<T, F, Fut>(scenario: &str, opts: &Opts, body: F) -> anyhow::Result<T>
where
    F: FnOnce(Arc<BenchEnv>) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let env = Arc::new(bench_env(scenario, opts));
    let work = std::panic::AssertUnwindSafe(body(env.clone())).catch_unwind();
    let result = tokio::select! {
        r = work => match r {
            Ok(r) => r,
            Err(panic) => Err(anyhow::anyhow!("the {scenario} scenario panicked: {}", panic_text(&panic))),
        },
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    env.teardown().await;
    result.with_context(|| format!("{scenario} scenario"))
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}
