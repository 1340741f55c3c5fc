//! `webhook`: N signed Meta status webhooks (one status each, as Meta sends them) POSTed to the
//! real webhook role by a client keeping `--webhook-connections` requests in flight, published
//! with confirms and recorded by the real tracker; timed from the first POST until every status
//! is in `message_statuses`. Beside it, two ceilings taken in the same run: the same client and
//! bodies against a bare server that only checks the signature and answers 200 (what HTTP and
//! the HMAC cost this machine), and the lower of the broker's publish and consume ceilings.
//!
//! And its floor, measured as e2e's is (`floor.rs`): after each round, the CPU each part a status
//! needs costs the whole machine when it runs alone (a signed request answered, from the bare
//! server's round; a publish with confirm; a consume with ack; the tracker's statement for a
//! status), the most this machine's cores would carry at their sum, and the round's rate over
//! that most, which must be at least 0.6.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use futures::StreamExt as _;
use reminder::configuration::Secret;
use reminder::startup::{Application, Role};
use reminder::webhook::signature::{SIGNATURE_HEADER, sign, verify_signature};
use reminder_harness::resources;
use serde_json::json;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::ceilings::Ceilings;
use crate::env::{BenchEnv, guarded};
use crate::floor::{self, Bound};
use crate::opts::Opts;
use crate::report::{Row, Summary, Table, Unit};

const APP_SECRET: &str = "bench-app-secret";

#[derive(Default)]
struct Figures {
    rates: Vec<f64>,
    http: Vec<f64>,
    missing: Vec<f64>,
    parts: Vec<Parts>,
    bound: Bound,
}

/// One round's floor, part by part: the whole machine's CPU microseconds per status.
#[derive(Debug, Clone, Copy)]
struct Parts {
    http: f64,
    publish: f64,
    consume: f64,
    tracker: f64,
}

impl Parts {
    fn per_status(&self) -> f64 {
        self.http + self.publish + self.consume + self.tracker
    }
}

/// The rate must be at least this share of what its floor allows this machine.
const FLOOR_TARGET: f64 = 0.6;

pub async fn run(opts: &Opts, ceilings: &Ceilings) -> anyhow::Result<bool> {
    let publish = ceilings.publish().await?;
    let consume = ceilings.consume().await?;
    let (broker_name, broker) = if publish.median <= consume.median {
        ("publish", publish)
    } else {
        ("consume", consume)
    };
    let o = opts.clone();
    let f = guarded("webhook", opts, move |env| async move {
        measure(&env, &o, ceilings).await
    })
    .await?;
    let mut t = Table::new(format!(
        "webhook: {} signed status webhooks per round, {} in flight, through the webhook role into the tracker",
        crate::report::thousands(opts.webhook_statuses as f64),
        opts.webhook_connections
    ));
    let http = Summary::of(&f.http);
    t.row(
        Row::of("webhook → tracker statuses/s", &f.rates, Unit::PerSec).vs(
            "HTTP + signature alone",
            http,
            Unit::PerSec,
        ),
    );
    t.row(
        Row::of("webhook → tracker statuses/s", &f.rates, Unit::PerSec).vs(
            broker_name,
            broker,
            Unit::PerSec,
        ),
    );
    for row in floor_rows(&f) {
        t.row(row);
    }
    t.row(Row::exactly(
        "statuses posted minus recorded (per round)",
        &f.missing,
        0.0,
    ));
    t.note("timed from the first POST until message_statuses holds every status of the round; each request is answered only after the broker confirmed its event");
    t.note("HTTP + signature alone: the same client, bodies and concurrency against a server that checks the signature and answers 200, taken before each round");
    t.note(format!("floor: after each round, each part alone (the bare server's round; a publish ceiling and a consume ceiling taken then; {} statuses through the tracker's statement on a database of their own), whole-machine CPU per unit; the target is the rate at {FLOOR_TARGET:.2} or more of what its floor allows, the median of the rounds", crate::report::thousands(opts.floor_units as f64)));
    t.print();
    Ok(t.all_met())
}

/// One status of message `i` of `round`, as Meta posts it.
fn body(round: usize, i: u64) -> Vec<u8> {
    let status = json!({
        "id": format!("wamid.bench-{round}-{i}"),
        "status": "delivered",
        "timestamp": (1_800_000_000 + i).to_string(),
        "recipient_id": "6281234567890",
        "biz_opaque_callback_data": format!("bench-{round}-{i}"),
        "pricing": {"billable": true, "pricing_model": "PMP", "category": "utility"}
    });
    serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
            "statuses": [status]
        }}]}]
    }))
    .expect("JSON")
}

/// POSTs every body to `url`, `connections` at a time, each until it is answered 200.
async fn post_all(
    client: &reqwest::Client,
    url: &str,
    bodies: &[(Vec<u8>, String)],
    connections: usize,
) -> anyhow::Result<()> {
    let refused = AtomicU64::new(0);
    futures::stream::iter(bodies)
        .for_each_concurrent(connections, |(body, signature)| {
            let refused = &refused;
            async move {
                loop {
                    let answer = client
                        .post(url)
                        .header("content-type", "application/json")
                        .header(SIGNATURE_HEADER, signature)
                        .body(body.clone())
                        .send()
                        .await;
                    if matches!(&answer, Ok(r) if r.status() == StatusCode::OK) {
                        return;
                    }
                    refused.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        })
        .await;
    let refused = refused.load(Ordering::Relaxed);
    anyhow::ensure!(
        refused < bodies.len() as u64,
        "{refused} webhooks were refused"
    );
    Ok(())
}

/// A server that only checks the signature: what HTTP and the HMAC cost, without the broker.
async fn bare_server() -> anyhow::Result<(String, CancellationToken)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/webhooks/whatsapp", listener.local_addr()?);
    let app = Router::new().route(
        "/webhooks/whatsapp",
        post(|headers: HeaderMap, body: Bytes| async move {
            let header = headers.get(SIGNATURE_HEADER).map(|v| v.as_bytes());
            match verify_signature(APP_SECRET.as_bytes(), header, &body) {
                Ok(()) => StatusCode::OK,
                Err(_) => StatusCode::UNAUTHORIZED,
            }
        }),
    );
    let stop = CancellationToken::new();
    let stopping = stop.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(stopping.cancelled_owned())
            .await;
    });
    Ok((url, stop))
}

async fn recorded(pool: &PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM message_statuses")
        .fetch_one(pool)
        .await?)
}

/// The floor, its parts, and the two ratios; a missed row where `/proc` could not be read.
fn floor_rows(f: &Figures) -> Vec<Row> {
    let throughput = "webhook → tracker statuses/s";
    if f.bound.is_empty() {
        return vec![floor::unjudged(throughput, FLOOR_TARGET)];
    }
    let mut rows = vec![
        f.bound
            .floor_row("floor: CPU per status of its required parts, each alone"),
    ];
    let part = |name: &str, g: fn(&Parts) -> f64| {
        let samples: Vec<f64> = f.parts.iter().map(g).collect();
        Row::of(format!("  floor part: {name}"), &samples, Unit::Us)
    };
    rows.extend([
        part("a signed request answered", |p| p.http),
        part("a publish with confirm", |p| p.publish),
        part("a consume and ack", |p| p.consume),
        part("the tracker's statement, one status", |p| p.tracker),
    ]);
    rows.extend(
        f.bound
            .ratio_rows("the publish ceiling of its round", throughput, FLOOR_TARGET),
    );
    rows
}

/// The parts other than the signed request (the bare server's round timed it), while the
/// roles are idle: the publish and consume ceilings, then the tracker's statement for statuses
/// on a database of its own. `None` where `/proc` cannot be read.
async fn floor_parts(
    env: &BenchEnv,
    o: &Opts,
    ceilings: &Ceilings,
    http: Option<f64>,
    round: usize,
) -> anyhow::Result<(f64, Option<Parts>)> {
    let publish = ceilings.publish_now_costed().await?;
    let consume = ceilings.consume_now_costed().await?;
    let mut db = env.settings.database.clone();
    let url = env.extra_database(&format!("whfloor{round}"));
    db.url = url.clone();
    let pool = reminder::db::migrate(&db).await?;
    let tracker = floor::status_statement(
        &pool,
        &floor::delivered_statuses(o.floor_units),
        env.settings.tracker.batch_size,
        env.settings.tracker.batches_in_flight,
    )
    .await?;
    pool.close().await;
    env.drop_database_now(&url).await;
    let parts = match (
        http,
        publish.machine_us,
        consume.machine_us,
        tracker.machine_us,
    ) {
        (Some(http), Some(publish), Some(consume), Some(tracker)) => Some(Parts {
            http,
            publish,
            consume,
            tracker,
        }),
        _ => None,
    };
    Ok((publish.rate, parts))
}

async fn measure(env: &BenchEnv, o: &Opts, ceilings: &Ceilings) -> anyhow::Result<Figures> {
    let mut settings = env.settings.clone();
    settings.webhook.bind = "127.0.0.1:0".into();
    settings.whatsapp.cloud_api.app_secret = Secret::new(APP_SECRET);
    let app = Application::build(settings, &[Role::Webhook, Role::Tracker])
        .await
        .context("starting the webhook and tracker roles")?;
    let port = app.webhook_port().context("the webhook role listens")?;
    let pool = app.context().pool.clone();
    let stop = CancellationToken::new();
    let running = tokio::spawn(app.run(stop.clone()));
    let url = format!("http://127.0.0.1:{port}/webhooks/whatsapp");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(o.webhook_connections)
        .build()?;
    let (bare_url, bare_stop) = bare_server().await?;
    let n = o.webhook_statuses;
    let mut f = Figures::default();
    // Let the roles connect and declare before the first round is timed.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for round in 1..=o.rounds {
        let bodies: Vec<(Vec<u8>, String)> = (0..n)
            .map(|i| {
                let b = body(round, i);
                let s = sign(APP_SECRET.as_bytes(), &b);
                (b, s)
            })
            .collect();
        let cpu = resources::CpuTimes::now();
        let started = Instant::now();
        post_all(&client, &bare_url, &bodies, o.webhook_connections).await?;
        f.http.push(n as f64 / started.elapsed().as_secs_f64());
        let http_us = resources::machine_us_per_unit(cpu, n);

        let before = recorded(&pool).await?;
        let started = Instant::now();
        post_all(&client, &url, &bodies, o.webhook_connections).await?;
        let target = before + n as i64;
        let deadline = Instant::now() + Duration::from_secs(600);
        while recorded(&pool).await? < target {
            anyhow::ensure!(Instant::now() < deadline, "the tracker fell behind");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        f.rates.push(n as f64 / started.elapsed().as_secs_f64());
        // Anything still in flight would show here as an excess.
        tokio::time::sleep(Duration::from_millis(500)).await;
        f.missing.push((target - recorded(&pool).await?) as f64);
        let rate = *f.rates.last().expect("the round's rate");
        let (ceiling, parts) = floor_parts(env, o, ceilings, http_us, round).await?;
        if let Some(parts) = parts {
            f.parts.push(parts);
            f.bound.push(parts.per_status(), ceiling, rate);
        }
    }
    bare_stop.cancel();
    stop.cancel();
    running.await??;
    Ok(f)
}
