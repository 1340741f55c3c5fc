//! The mock WhatsApp providers. `MockCloudApi` is a Meta WhatsApp Cloud API server:
//! `POST /{version}/{phone_number_id}/messages` answers the real success format after a fixed
//! delay and records, per reminder (`biz_opaque_callback_data`), how often it was called and
//! accepted, when each call arrived, over which HTTP version and connection, and how many it
//! held at once, so callers can check that each reminder was sent once and measure the rate
//! the provider saw. It can be made flaky: the first call for one reminder in N fails with a
//! transient 503, as a provider having a bad minute does. It speaks HTTP/1.1 and HTTP/2 (prior
//! knowledge, `whatsapp.http2_prior_knowledge`) on the same port.
//!
//! Like Meta, it can report each accepted send by signed status webhooks (`statuses`), twice,
//! out of order or before its own answer; and it can lose the answer of a reminder's first
//! call: accept it, report it, and never answer, as a provider whose answer is lost on the way
//! back does.
//!
//! `scripted` holds the wiremock answers (Cloud API and Fonnte) for tests that script each
//! response themselves.

pub mod scripted;
mod server;
mod statuses;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Version};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use reminder::configuration::{ProviderKind, Secret, WhatsappSettings};
use serde_json::{Value, json};
use uuid::Uuid;

pub use server::MAX_STREAMS;
pub use statuses::StatusWebhooks;

/// The Cloud API phone number id the mocks expect.
pub const PHONE_NUMBER_ID: &str = "106540352242922";
/// The access token the sender is given for the mocks.
pub const ACCESS_TOKEN: &str = "EAAtest-token";

/// Something a sender can be pointed at.
pub trait BaseUrl {
    fn base_url(&self) -> String;
}

impl BaseUrl for wiremock::MockServer {
    fn base_url(&self) -> String {
        self.uri()
    }
}

impl BaseUrl for MockCloudApi {
    fn base_url(&self) -> String {
        self.url.clone()
    }
}

impl BaseUrl for str {
    fn base_url(&self) -> String {
        self.to_string()
    }
}

/// Points `whatsapp` at a Cloud API mock at `base_url`: the mock's phone number id and token,
/// and a 2 s request time-out.
pub fn point_at(whatsapp: &mut WhatsappSettings, base_url: &str) {
    whatsapp.provider = ProviderKind::CloudApi;
    whatsapp.cloud_api.base_url = base_url.to_string();
    whatsapp.cloud_api.phone_number_id = PHONE_NUMBER_ID.into();
    whatsapp.cloud_api.access_token = Secret::new(ACCESS_TOKEN);
    whatsapp.request_timeout_ms = 2000;
}

/// How a `MockCloudApi` behaves.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// How long each call waits before its answer.
    pub delay: Duration,
    /// Keep every call's arrival time (for rates over time).
    pub record_arrivals: bool,
    /// Fail the first call of a reminder whose id is 0 modulo this with a 503 (0: never).
    pub transient_one_in: u32,
    /// Requests one HTTP/2 connection may carry at once.
    pub max_streams: u32,
    /// Serve from a runtime on a thread of its own rather than the caller's runtime, so a test
    /// that blocks its own runtime (running `rabbitmqctl`, say) does not hold the answers up.
    pub own_thread: bool,
    /// Report every accepted send by status webhooks (also settable once the business's
    /// webhook listens, with `report_statuses_to`).
    pub statuses: Option<StatusWebhooks>,
    /// Accept every reminder's first call that is accepted at all (and report it) but never
    /// answer it, so the sender's request times out after the message went out.
    pub hold_first_answer: bool,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            delay: Duration::ZERO,
            record_arrivals: false,
            transient_one_in: 0,
            max_streams: MAX_STREAMS,
            own_thread: false,
            statuses: None,
            hold_first_answer: false,
        }
    }
}

#[derive(Default)]
struct Seen {
    /// Calls per reminder.
    calls: HashMap<u128, u32>,
    /// Calls answered 200 per reminder: sends the provider really made.
    accepted: HashMap<u128, u32>,
    arrivals: Vec<Instant>,
    versions: Vec<Version>,
}

struct Shared {
    behaviour: Behaviour,
    calls: AtomicU64,
    transient_failures: AtomicU64,
    in_flight: AtomicU64,
    most_at_once: AtomicU64,
    connections: Arc<AtomicU64>,
    seen: Mutex<Seen>,
    statuses: Mutex<Option<StatusWebhooks>>,
    reporter: Arc<statuses::Reporter>,
    held: AtomicU64,
}

pub struct MockCloudApi {
    pub url: String,
    shared: Arc<Shared>,
    server: server::Server,
}

/// What the mock saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendCounts {
    pub calls: u64,
    pub distinct_reminders: u64,
    /// The most calls any one reminder got.
    pub max_per_reminder: u32,
}

impl MockCloudApi {
    /// A mock answering every call after `delay`.
    pub async fn start(delay: Duration, record_arrivals: bool) -> anyhow::Result<MockCloudApi> {
        Self::start_with(Behaviour {
            delay,
            record_arrivals,
            ..Behaviour::default()
        })
        .await
    }

    /// A mock whose first call for one reminder in `one_in` fails with a transient 503.
    pub async fn start_flaky(delay: Duration, one_in: u32) -> anyhow::Result<MockCloudApi> {
        Self::start_with(Behaviour {
            delay,
            transient_one_in: one_in,
            ..Behaviour::default()
        })
        .await
    }

    pub async fn start_with(behaviour: Behaviour) -> anyhow::Result<MockCloudApi> {
        let connections = Arc::new(AtomicU64::new(0));
        let shared = Arc::new(Shared {
            behaviour: behaviour.clone(),
            calls: AtomicU64::new(0),
            transient_failures: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            most_at_once: AtomicU64::new(0),
            connections: connections.clone(),
            seen: Mutex::new(Seen::default()),
            statuses: Mutex::new(behaviour.statuses.clone()),
            reporter: Arc::new(statuses::Reporter::new()),
            held: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/{version}/{phone_number_id}/messages", post(messages))
            .with_state(shared.clone());
        let server = server::Server::start(app, &behaviour, connections).await?;
        Ok(MockCloudApi {
            url: server.url.clone(),
            shared,
            server,
        })
    }

    /// Calls so far (a call counts when it arrives, before its answer).
    pub fn calls(&self) -> u64 {
        self.shared.calls.load(Ordering::Relaxed)
    }

    pub fn counts(&self) -> SendCounts {
        let seen = self.seen();
        SendCounts {
            calls: self.calls(),
            distinct_reminders: seen.calls.len() as u64,
            max_per_reminder: seen.calls.values().copied().max().unwrap_or(0),
        }
    }

    /// From now on, report every accepted send by status webhooks to `to`.
    pub fn report_statuses_to(&self, to: StatusWebhooks) {
        *self.shared.statuses.lock().expect("lock") = Some(to);
    }

    /// From now on, report nothing (sends already reported still are).
    pub fn stop_reporting_statuses(&self) {
        *self.shared.statuses.lock().expect("lock") = None;
    }

    /// Status webhooks the business answered 2xx.
    pub fn statuses_posted(&self) -> u64 {
        self.shared.reporter.posted.load(Ordering::Relaxed)
    }

    /// Status webhook attempts the business refused or failed (each was tried again).
    pub fn status_attempts_failed(&self) -> u64 {
        self.shared.reporter.failed_attempts.load(Ordering::Relaxed)
    }

    /// Calls accepted and never answered (`hold_first_answer`).
    pub fn held(&self) -> u64 {
        self.shared.held.load(Ordering::Relaxed)
    }

    /// Calls answered with a transient error.
    pub fn transient_failures(&self) -> u64 {
        self.shared.transient_failures.load(Ordering::Relaxed)
    }

    /// (reminders accepted at least once, reminders accepted more than once).
    pub fn accepted(&self) -> (u64, u64) {
        let seen = self.seen();
        (
            seen.accepted.len() as u64,
            seen.accepted.values().filter(|n| **n > 1).count() as u64,
        )
    }

    /// Reminders accepted more than once, with how often.
    pub fn repeated(&self) -> Vec<(Uuid, u32)> {
        self.seen()
            .accepted
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(id, n)| (Uuid::from_u128(*id), *n))
            .collect()
    }

    /// Arrival times of the calls since the last reset, in order (with `record_arrivals`).
    pub fn arrivals(&self) -> Vec<Instant> {
        let mut v = self.seen().arrivals.clone();
        v.sort();
        v
    }

    /// The HTTP version of each call, in order of arrival.
    pub fn versions(&self) -> Vec<Version> {
        self.seen().versions.clone()
    }

    /// Connections accepted.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// The most calls it held at once.
    pub fn most_at_once(&self) -> u64 {
        self.shared.most_at_once.load(Ordering::SeqCst)
    }

    pub fn reset(&self) {
        self.shared.calls.store(0, Ordering::Relaxed);
        self.shared.transient_failures.store(0, Ordering::Relaxed);
        self.shared.most_at_once.store(0, Ordering::SeqCst);
        *self.shared.seen.lock().expect("lock") = Seen::default();
    }

    pub async fn stop(self) {
        self.server.stop().await;
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.shared.seen.lock().expect("lock")
    }
}

/// A reminder id as a number: the UUID itself, or a name-based UUID of any other text.
fn reminder_key(id: &str) -> u128 {
    Uuid::parse_str(id)
        .unwrap_or_else(|_| Uuid::new_v5(&Uuid::NAMESPACE_OID, id.as_bytes()))
        .as_u128()
}

async fn messages(
    State(shared): State<Arc<Shared>>,
    Path((_version, phone_number_id)): Path<(String, String)>,
    version: Version,
    body: Bytes,
) -> Response {
    let arrived = Instant::now();
    if phone_number_id != PHONE_NUMBER_ID {
        return error(400, 100, "Unsupported post request");
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error(400, 100, "Invalid parameter");
    };
    let to = request["to"].as_str().unwrap_or_default().to_string();
    let Some(reminder_id) = request["biz_opaque_callback_data"].as_str() else {
        return error(400, 100, "biz_opaque_callback_data is missing");
    };
    let reminder = reminder_key(reminder_id);
    let behaviour = &shared.behaviour;
    let n = shared.calls.fetch_add(1, Ordering::Relaxed);
    let first_call = {
        let mut seen = shared.seen.lock().expect("lock");
        let calls = seen.calls.entry(reminder).or_insert(0);
        *calls += 1;
        let first = *calls == 1;
        seen.versions.push(version);
        if behaviour.record_arrivals {
            seen.arrivals.push(arrived);
        }
        first
    };
    let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    shared.most_at_once.fetch_max(now, Ordering::SeqCst);
    // No sleep at all without a delay: even a zero sleep yields, and a client that gave up
    // meanwhile would drop this call before it was accepted.
    if !behaviour.delay.is_zero() {
        tokio::time::sleep(behaviour.delay).await;
    }
    shared.in_flight.fetch_sub(1, Ordering::SeqCst);
    let one_in = u128::from(behaviour.transient_one_in);
    if first_call && one_in > 0 && reminder.is_multiple_of(one_in) {
        shared.transient_failures.fetch_add(1, Ordering::Relaxed);
        return error(503, 2, "Service temporarily unavailable");
    }
    let first_accepted = {
        let mut seen = shared.seen.lock().expect("lock");
        let accepted = seen.accepted.entry(reminder).or_insert(0);
        *accepted += 1;
        *accepted == 1
    };
    let wamid = format!("wamid.HBgLNjI4MTIzNDU2Nzg5MBUCABEYEj{n:016X}");
    let report = shared.statuses.lock().expect("lock").clone();
    if let Some(report) = report {
        let before_answer = report.before_answer;
        let send = statuses::Accepted {
            wamid: wamid.clone(),
            recipient: to.trim_start_matches('+').to_string(),
            reminder_id: reminder_id.to_string(),
        };
        // A task of its own: a client that gives up on the answer drops this handler, and the
        // provider reports the message all the same.
        let reporting = tokio::spawn(shared.reporter.clone().report(report, send));
        if before_answer {
            let _ = reporting.await;
        }
    }
    if behaviour.hold_first_answer && first_accepted {
        shared.held.fetch_add(1, Ordering::Relaxed);
        std::future::pending::<()>().await;
    }
    axum::Json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{ "input": to, "wa_id": to }],
        "messages": [{ "id": wamid }]
    }))
    .into_response()
}

fn error(status: u16, code: i64, message: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        axum::Json(scripted::cloud_api_error_body(code, message)),
    )
        .into_response()
}
