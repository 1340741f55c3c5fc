//! What the fault tests share (besides `services`, which takes RabbitMQ or PostgreSQL away and
//! always brings it back): a mock Cloud API that remembers every reminder it was asked to
//! send, a workload of reminders, and reading the counts it must end with.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::helpers::*;
pub use crate::services::{PostgresDown, RabbitDown};
use crate::services::{peak_rss_kib, quiet};

/// A mock Cloud API that answers every send after `delay`, and remembers how often each
/// reminder (its `biz_opaque_callback_data`) was accepted. When flaky, the first call for one
/// reminder in five (chosen by its id, so a retry does not fail again by chance) fails
/// transiently with a 503, as a provider having a bad minute does; the sender must retry it.
#[derive(Clone, Default)]
pub struct SendLog(Arc<Mutex<Calls>>);

#[derive(Default)]
struct Calls {
    calls: u32,
    transient_failures: u32,
    accepted: HashMap<String, u32>,
}

struct Recording {
    log: SendLog,
    delay: Duration,
    flaky: bool,
}

impl Respond for Recording {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let id = body["biz_opaque_callback_data"]
            .as_str()
            .unwrap_or("<none>")
            .to_string();
        let mut calls = self.log.0.lock().unwrap();
        calls.calls += 1;
        let unlucky = self.flaky && Uuid::parse_str(&id).is_ok_and(|u| u.as_u128() % 5 == 0);
        if unlucky && !calls.accepted.contains_key(&id) {
            calls.transient_failures += 1;
            // Remembered as tried, not accepted: the retry is accepted.
            calls.accepted.insert(id, 0);
            return cloud_api_error(503, 2, "Service temporarily unavailable")
                .set_delay(self.delay);
        }
        *calls.accepted.entry(id).or_default() += 1;
        ResponseTemplate::new(200)
            .set_body_json(json!({
                "messaging_product": "whatsapp",
                "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                "messages": [{"id": format!("wamid.{}", Uuid::new_v4().simple())}]
            }))
            .set_delay(self.delay)
    }
}

impl SendLog {
    /// A provider that accepts every call.
    pub async fn mount(mock: &MockServer, delay: Duration) -> SendLog {
        Self::mount_with(mock, delay, false).await
    }

    /// A provider that fails the first call of one reminder in five transiently.
    pub async fn mount_flaky(mock: &MockServer, delay: Duration) -> SendLog {
        Self::mount_with(mock, delay, true).await
    }

    async fn mount_with(mock: &MockServer, delay: Duration, flaky: bool) -> SendLog {
        let log = SendLog::default();
        Mock::given(method("POST"))
            .and(path(messages_path()))
            .respond_with(Recording {
                log: log.clone(),
                delay,
                flaky,
            })
            .mount(mock)
            .await;
        log
    }

    /// Provider calls so far (a call counts when it arrives, before its answer).
    pub fn calls(&self) -> u32 {
        self.0.lock().unwrap().calls
    }

    /// Calls answered with a transient error.
    pub fn transient_failures(&self) -> u32 {
        self.0.lock().unwrap().transient_failures
    }

    /// Distinct reminders the provider accepted.
    pub fn distinct(&self) -> usize {
        self.0
            .lock()
            .unwrap()
            .accepted
            .values()
            .filter(|n| **n > 0)
            .count()
    }

    /// Reminders accepted more than once, with how often.
    pub fn repeated(&self) -> Vec<(String, u32)> {
        self.0
            .lock()
            .unwrap()
            .accepted
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(id, n)| (id.clone(), *n))
            .collect()
    }
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
pub async fn publish_all(amqp: &Amqp, events: &[Value]) {
    for chunk in events.chunks(200) {
        futures::future::join_all(chunk.iter().map(|e| amqp.publish_event(e))).await;
    }
}

/// What the report says: (sum of frequencies, rows of history, reports).
pub async fn counts(pool: &PgPool) -> (i64, i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT coalesce(sum(frequency), 0)::bigint FROM whatsapp_report),
                (SELECT count(*) FROM message_log),
                (SELECT count(*) FROM whatsapp_report)",
    )
    .fetch_one(pool)
    .await
    .unwrap_or((-1, -1, -1))
}

/// Waits until the report counted `n` sends, then checks it stays there (nothing more arrives
/// after a short quiet period) and that history and report agree.
pub async fn assert_counted_exactly(pool: &PgPool, n: i64, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let c = counts(pool).await;
        if c.0 >= n {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {c:?} of {n} counted within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        counts(pool).await,
        (n, n, n),
        "frequency sum, history rows, reports"
    );
}

/// Sets an environment-style override for a child `reminder` process from the test's settings.
pub fn child_env(env: &TestEnv) -> Vec<(String, String)> {
    let s = &env.settings;
    let mut vars = vec![
        ("REMINDER__DATABASE__URL", s.database.url.clone()),
        ("REMINDER__AMQP__URL", s.amqp.url.clone()),
        ("REMINDER__AMQP__EXCHANGE", s.amqp.exchange.clone()),
        ("REMINDER__AMQP__QUEUE_PREFIX", s.amqp.queue_prefix.clone()),
        ("REMINDER__AMQP__RECONNECT_INITIAL_MS", "50".into()),
        ("REMINDER__AMQP__RECONNECT_MAX_MS", "1000".into()),
        ("REMINDER__PRODUCER__CATCH_UP_ON_START", "false".into()),
        ("REMINDER__SENDER__RECIPIENT_INTERVAL_MS", "0".into()),
        (
            "REMINDER__SENDER__RETRY_INITIAL_MS",
            s.sender.retry_initial_ms.to_string(),
        ),
        (
            "REMINDER__SENDER__RETRY_MAX_MS",
            s.sender.retry_max_ms.to_string(),
        ),
        ("REMINDER__WHATSAPP__MAX_PER_SECOND", "0".into()),
        ("REMINDER__TRACKER__BATCH_LINGER_MS", "10".into()),
        ("REMINDER__HTTP__BIND", "127.0.0.1:0".into()),
        ("REMINDER__TELEMETRY__LEVEL", "warn".into()),
    ];
    if s.whatsapp.provider == reminder::configuration::ProviderKind::CloudApi {
        vars.extend([
            ("REMINDER__WHATSAPP__PROVIDER", "cloud_api".to_string()),
            (
                "REMINDER__WHATSAPP__CLOUD_API__BASE_URL",
                s.whatsapp.cloud_api.base_url.clone(),
            ),
            (
                "REMINDER__WHATSAPP__CLOUD_API__PHONE_NUMBER_ID",
                PHONE_NUMBER_ID.to_string(),
            ),
            (
                "REMINDER__WHATSAPP__CLOUD_API__ACCESS_TOKEN",
                ACCESS_TOKEN.to_string(),
            ),
            (
                "REMINDER__WHATSAPP__REQUEST_TIMEOUT_MS",
                s.whatsapp.request_timeout_ms.to_string(),
            ),
        ]);
    }
    vars.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// A `reminder run` child process; killed with SIGKILL when dropped.
pub struct Child {
    pub process: std::process::Child,
}

impl Child {
    pub fn spawn(env: &TestEnv, roles: &[&str], extra: &[(&str, &str)]) -> Child {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_reminder"));
        cmd.arg("run")
            .args(roles)
            .envs(child_env(env))
            .envs(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        Child {
            process: cmd.spawn().expect("reminder starts"),
        }
    }

    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    pub fn kill9(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }

    pub fn sigterm(&self) {
        quiet("kill", &["-TERM", &self.pid().to_string()]);
    }

    /// Waits for the process to exit, failing with `what` once `bound` has passed.
    pub async fn exit_within(&mut self, bound: Duration, what: &str) -> std::process::ExitStatus {
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = self.process.try_wait().unwrap() {
                return status;
            }
            assert!(started.elapsed() < bound, "{what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Peak resident memory so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        peak_rss_kib(self.pid())
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Stops RabbitMQ off the test's runtime: `rabbitmqctl` takes seconds, and blocking the
/// single-threaded test runtime would freeze the app and the mock provider with it (a provider
/// call that outlives its time-out is retried, and counts as a second send).
pub async fn rabbit_down() -> RabbitDown {
    tokio::task::spawn_blocking(RabbitDown::stop).await.unwrap()
}

/// Brings a stopped service back (its guard's drop) off the test's runtime.
pub async fn bring_back<T: Send + 'static>(down: T) {
    tokio::task::spawn_blocking(move || drop(down))
        .await
        .unwrap();
}

/// A RabbitMQ memory alarm while this lives: the broker blocks every connection that publishes
/// (`connection.blocked`) until it is cleared, which restores the high watermark it found (also
/// on drop, when a test fails). `rabbitmqctl` takes a second or more, so it runs off the test's
/// runtime: blocking that thread would freeze the app and the mock provider with it.
pub struct MemoryAlarm {
    watermark: Option<String>,
}

impl MemoryAlarm {
    pub async fn raise() -> MemoryAlarm {
        let watermark = tokio::task::spawn_blocking(|| {
            let out = Command::new("rabbitmqctl")
                .args([
                    "-q",
                    "eval",
                    "vm_memory_monitor:get_vm_memory_high_watermark().",
                ])
                .stdin(Stdio::null())
                .output()
                .expect("rabbitmqctl eval");
            let watermark = String::from_utf8_lossy(&out.stdout).trim().to_string();
            assert!(
                watermark.parse::<f64>().is_ok_and(|w| w > 0.0),
                "a relative memory watermark, not {watermark:?}"
            );
            assert!(
                quiet("rabbitmqctl", &["-q", "set_vm_memory_high_watermark", "0"]),
                "rabbitmqctl set_vm_memory_high_watermark 0"
            );
            watermark
        })
        .await
        .unwrap();
        MemoryAlarm {
            watermark: Some(watermark),
        }
    }

    pub async fn clear(mut self) {
        if let Some(watermark) = self.watermark.take() {
            tokio::task::spawn_blocking(move || restore_watermark(&watermark))
                .await
                .unwrap();
        }
    }
}

fn restore_watermark(watermark: &str) {
    quiet(
        "rabbitmqctl",
        &["-q", "set_vm_memory_high_watermark", watermark],
    );
}

impl Drop for MemoryAlarm {
    fn drop(&mut self) {
        if let Some(watermark) = self.watermark.take() {
            restore_watermark(&watermark);
        }
    }
}

/// RabbitMQ's Erlang VM is stopped (SIGSTOP) while this lives: its connections stay open and
/// the kernel still takes in what is written to them, but nothing is read or answered, as with a
/// hung broker or a network that drops every packet. SIGCONT on drop, also when a test fails.
pub struct BrokerFrozen {
    pid: String,
}

impl BrokerFrozen {
    /// RabbitMQ's OS pid. `rabbitmqctl` takes a second or more, so look it up before the
    /// moment to freeze comes.
    pub async fn broker_pid() -> u32 {
        let pid = tokio::task::spawn_blocking(|| {
            let out = Command::new("rabbitmqctl")
                .args(["-q", "eval", "os:getpid()."])
                .stdin(Stdio::null())
                .output()
                .expect("rabbitmqctl eval");
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .trim_matches('"')
                .to_string()
        })
        .await
        .unwrap();
        pid.parse()
            .unwrap_or_else(|_| panic!("RabbitMQ's OS pid, not {pid:?}"))
    }

    pub fn freeze(pid: u32) -> BrokerFrozen {
        let pid = pid.to_string();
        assert!(quiet("kill", &["-STOP", &pid]), "kill -STOP {pid}");
        BrokerFrozen { pid }
    }

    /// Lets the broker run again and waits until it answers.
    pub async fn thaw(self) {
        drop(self);
        tokio::task::spawn_blocking(|| {
            quiet("rabbitmqctl", &["-q", "await_startup", "--timeout", "60"])
        })
        .await
        .unwrap();
    }
}

impl Drop for BrokerFrozen {
    fn drop(&mut self) {
        quiet("kill", &["-CONT", &self.pid]);
    }
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
