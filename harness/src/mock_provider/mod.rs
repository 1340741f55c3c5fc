//! A mock Meta WhatsApp Cloud API inside the tool: `POST /{version}/{phone_number_id}/messages`
//! answers the real success format after a fixed delay, and records which reminder each call
//! was for (`biz_opaque_callback_data`) and when it arrived, so scenarios can check that each
//! reminder was sent once and measure the send rate the provider saw. `reminder-soak` uses it
//! too, made flaky: the first call for one reminder in N fails transiently. It speaks HTTP/1.1
//! and HTTP/2 (prior knowledge, `whatsapp.http2_prior_knowledge`) on the same port.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const PHONE_NUMBER_ID: &str = "106540352242922";

struct Shared {
    delay: Duration,
    record_arrivals: bool,
    /// Fail the first call of a reminder whose id is 0 modulo this (0: never).
    transient_one_in: u128,
    transient_failures: AtomicU64,
    /// Calls answered 200 per reminder id: sends the provider really made.
    accepted: Mutex<HashMap<u128, u32>>,
    calls: AtomicU64,
    /// Calls per reminder id (parsed as a UUID to keep the map small).
    per_reminder: Mutex<HashMap<u128, u32>>,
    arrivals: Mutex<Vec<Instant>>,
}

pub struct MockCloudApi {
    pub url: String,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    handle: JoinHandle<()>,
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
    pub async fn start(delay: Duration, record_arrivals: bool) -> anyhow::Result<MockCloudApi> {
        Self::start_with(delay, record_arrivals, 0).await
    }

    /// A mock whose first call for one reminder in `one_in` fails with a transient 503.
    #[allow(dead_code)] // used by reminder-soak, which includes this module
    pub async fn start_flaky(delay: Duration, one_in: u32) -> anyhow::Result<MockCloudApi> {
        Self::start_with(delay, false, one_in).await
    }

    async fn start_with(
        delay: Duration,
        record_arrivals: bool,
        one_in: u32,
    ) -> anyhow::Result<MockCloudApi> {
        let shared = Arc::new(Shared {
            delay,
            record_arrivals,
            transient_one_in: one_in as u128,
            transient_failures: AtomicU64::new(0),
            accepted: Mutex::new(HashMap::new()),
            calls: AtomicU64::new(0),
            per_reminder: Mutex::new(HashMap::new()),
            arrivals: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/{version}/{phone_number_id}/messages", post(messages))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the mock Cloud API")?;
        let url = format!("http://{}", listener.local_addr()?);
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let handle = tokio::spawn(serve(listener, app, stop));
        Ok(MockCloudApi {
            url,
            shared,
            shutdown,
            handle,
        })
    }

    pub fn calls(&self) -> u64 {
        self.shared.calls.load(Ordering::Relaxed)
    }

    pub fn counts(&self) -> SendCounts {
        let map = self.shared.per_reminder.lock().expect("lock");
        SendCounts {
            calls: self.calls(),
            distinct_reminders: map.len() as u64,
            max_per_reminder: map.values().copied().max().unwrap_or(0),
        }
    }

    /// Calls answered with a transient error.
    #[allow(dead_code)] // used by reminder-soak, which includes this module
    pub fn transient_failures(&self) -> u64 {
        self.shared.transient_failures.load(Ordering::Relaxed)
    }

    /// (reminders accepted at least once, reminders accepted more than once).
    #[allow(dead_code)] // used by reminder-soak, which includes this module
    pub fn accepted(&self) -> (u64, u64) {
        let map = self.shared.accepted.lock().expect("lock");
        (
            map.len() as u64,
            map.values().filter(|n| **n > 1).count() as u64,
        )
    }

    /// Arrival times of the calls since the last reset, in order.
    pub fn arrivals(&self) -> Vec<Instant> {
        let mut v = self.shared.arrivals.lock().expect("lock").clone();
        v.sort();
        v
    }

    pub fn reset(&self) {
        self.shared.calls.store(0, Ordering::Relaxed);
        self.shared.per_reminder.lock().expect("lock").clear();
        self.shared.accepted.lock().expect("lock").clear();
        self.shared.transient_failures.store(0, Ordering::Relaxed);
        self.shared.arrivals.lock().expect("lock").clear();
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.handle).await;
    }
}

/// Streams one HTTP/2 connection may carry at once: more than any sender's concurrency, so the
/// mock never queues a send the way hyper's default of 200 would.
const MAX_STREAMS: u32 = 16_384;

/// Serves HTTP/1.1 and HTTP/2 (prior knowledge, as a client speaks it to an `http://` address)
/// on each connection until `stop`; then drops the connections.
async fn serve(listener: tokio::net::TcpListener, app: Router, stop: CancellationToken) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http2().max_concurrent_streams(MAX_STREAMS);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let stream = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of file descriptors, say: give the connections a moment to close.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let builder = builder.clone();
        connections.spawn(async move {
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        // Reap finished connections so the set does not grow with every one ever accepted.
        while connections.try_join_next().is_some() {}
    }
    connections.shutdown().await;
}

async fn messages(
    State(shared): State<Arc<Shared>>,
    Path((_version, phone_number_id)): Path<(String, String)>,
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
    let reminder = request["biz_opaque_callback_data"]
        .as_str()
        .and_then(|s| uuid::Uuid::parse_str(s).ok())
        .map(|u| u.as_u128());
    let Some(reminder) = reminder else {
        return error(400, 100, "biz_opaque_callback_data is not a reminder id");
    };
    let n = shared.calls.fetch_add(1, Ordering::Relaxed);
    let first_call = {
        let mut per_reminder = shared.per_reminder.lock().expect("lock");
        let calls = per_reminder.entry(reminder).or_insert(0);
        *calls += 1;
        *calls == 1
    };
    if shared.record_arrivals {
        shared.arrivals.lock().expect("lock").push(arrived);
    }
    tokio::time::sleep(shared.delay).await;
    if first_call && shared.transient_one_in > 0 && reminder % shared.transient_one_in == 0 {
        shared.transient_failures.fetch_add(1, Ordering::Relaxed);
        return error(503, 2, "Service temporarily unavailable");
    }
    *shared
        .accepted
        .lock()
        .expect("lock")
        .entry(reminder)
        .or_insert(0) += 1;
    axum::Json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{ "input": to, "wa_id": to }],
        "messages": [{ "id": format!("wamid.HBgLNjI4MTIzNDU2Nzg5MBUCABEYEj{n:016X}") }]
    }))
    .into_response()
}

fn error(status: u16, code: i64, message: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        axum::Json(json!({
            "error": {
                "message": message,
                "type": "OAuthException",
                "code": code,
                "error_data": { "messaging_product": "whatsapp", "details": message },
                "fbtrace_id": "AbenchTrace"
            }
        })),
    )
        .into_response()
}
