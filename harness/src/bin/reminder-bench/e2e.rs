//! `e2e`: the whole pipeline in one process. Each round gets a fresh database with 100,000 due
//! vehicles; the sender and tracker run as an `Application` (mock Cloud API answering in
//! 50 ms), and the real producer scan publishes every due reminder.
//!
//! - Burst: from the scan's start until every reminder is counted: throughput against the
//!   publish ceiling.
//! - Paced: then `maintenance.due` events are published at the target rate (a quarter of the
//!   publish ceiling unless `--paced-rate`), each stamped with its publish time; latency is
//!   `message_log.recorded_at` minus that time (the producer stamps a whole scan with one time,
//!   so only paced events give a per-message latency).
//! - Peak RSS of this process (VmHWM) over each round, mock provider included; exact counts:
//!   the sum of frequency equals the reminders and the mock saw each reminder once.
//! - CPU time per reminder over the burst, of the whole machine, of this process and of the
//!   local RabbitMQ and PostgreSQL, and how many cores were busy: what a reminder costs, which
//!   holds better than a rate on a machine whose speed changes from hour to hour.
//! - Statuses: with `--e2e-statuses`, the mock reports `sent`, `delivered` and `read`
//!   for every message by signed webhooks to the webhook role in the same process, as Meta does,
//!   while the burst runs; after the paced part every status must be recorded exactly once and
//!   every message be `read`.
//! - The floor (`floor.rs`), after each round: what the parts every reminder needs cost when
//!   each runs alone, the most this machine's cores would carry at that cost as a ratio to the
//!   round's publish ceiling (the highest the e2e ratio can go here), and the round's
//!   throughput over that most.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use futures::{FutureExt as _, StreamExt as _};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::ceilings::Ceilings;
use crate::cpu::CpuFigures;
use crate::env::{self, BenchEnv, guarded};
use crate::floor::{self, FloorFigures};
use crate::opts::Opts;
use crate::report::{Paired, Row, Table, Target, Unit, quantile};
use reminder::configuration::Secret;
use reminder::domain::events::MAINTENANCE_DUE;
use reminder::producer::{Producer, Trigger};
use reminder::startup::{Application, Role};
use reminder_harness::amqp::{self, Amqp};
use reminder_harness::fixtures::{self, Fleet};
use reminder_harness::mock_provider::{MockCloudApi, StatusWebhooks};
use reminder_harness::{events, resources, tally};

#[derive(Default)]
struct Figures {
    rates: Vec<f64>,
    paired: Paired,
    burst_p50: Vec<f64>,
    burst_max: Vec<f64>,
    paced_rate: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
    max: Vec<f64>,
    rss: Vec<f64>,
    /// What a reminder cost over each burst.
    cpu: CpuFigures,
    floor: FloorFigures,
    miscounted: Vec<f64>,
    calls_per_reminder: Vec<f64>,
    /// Statuses recorded minus three a reminder, and messages not `read`.
    statuses_missing: Vec<f64>,
    unread: Vec<f64>,
}

const APP_SECRET: &str = "bench-app-secret";

/// The burst throughput must be at least this share of what its floor allows this machine.
const FLOOR_TARGET: f64 = 0.6;

pub async fn run(opts: &Opts, ceilings: &Ceilings) -> anyhow::Result<bool> {
    let publish = ceilings.publish().await?;
    // A quarter of the publish ceiling; a round paces at 80 % of its own burst throughput
    // instead when the pipeline cannot sustain that (at a rate above capacity the queue only
    // grows, and the latency measures how long the run lasted).
    let paced_rate = if opts.paced_rate > 0 {
        opts.paced_rate as f64
    } else {
        (publish.median * 0.25).round()
    };
    let adaptive = opts.paced_rate == 0;
    let o = opts.clone();
    let f = guarded("e2e", opts, move |env| async move {
        let mock =
            MockCloudApi::start(Duration::from_millis(o.e2e_provider_delay_ms), false).await?;
        let mut provider_settings = env.settings.clone();
        env::use_mock(&mut provider_settings, &mock, &o);
        let provider = reminder::sender::providers::from_settings(&provider_settings.whatsapp)?;
        let mut f = Figures::default();
        let mut result = Ok(());
        for round in 0..o.rounds {
            let round_done = async {
                let ceiling = ceilings.publish_now_costed().await?;
                one_round(&env, &o, &mock, round, paced_rate, adaptive, &mut f).await?;
                let rate = *f.rates.last().expect("a finished round has its rate");
                f.paired.push(ceiling.rate, rate);
                if let Some(parts) =
                    floor::measure(&env, &o, ceilings, ceiling, &provider, round).await?
                {
                    f.floor.push(parts, ceiling.rate, rate);
                }
                anyhow::Ok(())
            };
            if let Err(e) = round_done.await {
                result = Err(e);
                break;
            }
        }
        mock.stop().await;
        result.map(|()| f)
    })
    .await?;
    let mut t = Table::new(format!(
        "e2e: {} due reminders per round through producer, sender (mock Cloud API {} ms over {}, concurrency {}) and tracker, one process",
        crate::report::thousands(opts.e2e_reminders as f64),
        opts.e2e_provider_delay_ms,
        opts.provider_protocol(),
        opts.e2e_concurrency
    ));
    t.row(
        Row::of(
            "burst throughput, scan start to all counted",
            &f.rates,
            Unit::PerSec,
        )
        .vs("publish", publish, Unit::PerSec),
    );
    for row in f.paired.rows("publish", "burst throughput", None) {
        t.row(row);
    }
    t.row(Row::of(
        "burst: scan start to counted, p50",
        &f.burst_p50,
        Unit::Ms,
    ));
    t.row(Row::of(
        "burst: scan start to counted, max",
        &f.burst_max,
        Unit::Ms,
    ));
    for row in f.cpu.rows("burst", "reminder") {
        t.row(row);
    }
    for row in f.floor.rows(FLOOR_TARGET) {
        t.row(row);
    }
    t.row(
        Row::of("paced: offered rate", &f.paced_rate, Unit::PerSec).vs(
            "publish",
            publish,
            Unit::PerSec,
        ),
    );
    t.row(Row::of("paced: publish to counted p50", &f.p50, Unit::Ms));
    t.row(
        Row::of(
            "paced: publish to counted p99, at the offered rate",
            &f.p99,
            Unit::Ms,
        )
        .target(Target::Below(2000.0)),
    );
    t.row(Row::of("paced: publish to counted max", &f.max, Unit::Ms));
    t.row(Row::of("peak RSS of the process", &f.rss, Unit::MiB).target(Target::MaxAtMost(150.0)));
    t.row(Row::exactly(
        "sum of frequency minus reminders",
        &f.miscounted,
        0.0,
    ));
    t.row(Row::exactly(
        "provider calls per reminder",
        &f.calls_per_reminder,
        1.0,
    ));
    if opts.e2e_statuses {
        t.row(Row::exactly(
            "statuses recorded minus 3 a reminder",
            &f.statuses_missing,
            0.0,
        ));
        t.row(Row::exactly("messages not read", &f.unread, 0.0));
    }
    t.note(format!(
        "paced: {} s per round at {} /s (a quarter of the publish ceiling){}; each event stamped with its publish time; latency = message_log.recorded_at - event time",
        opts.paced_seconds,
        crate::report::thousands(paced_rate),
        if adaptive {
            ", or at 80 % of the round's burst throughput when that is lower"
        } else {
            ""
        }
    ));
    if opts.e2e_statuses {
        t.note("statuses: the mock posts sent, delivered and read for every message (signed, one status a webhook, 64 at once) to the webhook role of the same process while the burst runs; they share the machine with it, the floor leaves them out, and the reports the mock has queued count in the peak RSS");
    }
    t.note("whatsapp.max_per_second = 0 and sender.recipient_interval_ms = 0 (lifted for the benchmark); RSS includes the in-process mock Cloud API and the tool's bookkeeping");
    t.note("CPU per reminder: CPU time over the burst (/proc) divided by the reminders; the whole machine's includes RabbitMQ, PostgreSQL and this process (the pipeline, the mock Cloud API and the polling for counts)");
    t.note(format!(
        "floor: after each round, each part alone ({} claims and records, tracker events of new pairs and provider calls; the publish of the round's ceiling, a consume ceiling taken then), whole-machine CPU per unit; the target is the burst throughput at {FLOOR_TARGET:.2} or more of what its floor allows, the median of the rounds",
        crate::report::thousands(opts.floor_units as f64)
    ));
    t.print();
    Ok(t.all_met())
}

async fn one_round(
    env: &BenchEnv,
    o: &Opts,
    mock: &MockCloudApi,
    round: usize,
    paced_rate: f64,
    adaptive: bool,
    f: &mut Figures,
) -> anyhow::Result<()> {
    mock.reset();
    let mut settings = env.settings.clone();
    settings.database.url = env.extra_database(&format!("e2e{round}"));
    env::use_mock(&mut settings, mock, o);
    settings.sender.concurrency = o.e2e_concurrency;
    settings.whatsapp.max_per_second = 0;
    settings.sender.recipient_interval_ms = 0;
    let statuses = o.e2e_statuses;
    let mut roles = vec![Role::Sender, Role::Tracker];
    if statuses {
        settings.webhook.bind = "127.0.0.1:0".into();
        settings.whatsapp.cloud_api.app_secret = Secret::new(APP_SECRET);
        roles.push(Role::Webhook);
    }
    let n = o.e2e_reminders;
    resources::reset_peak_rss();
    let app = Application::build(settings.clone(), &roles).await?;
    if statuses {
        let port = app.webhook_port().context("the webhook role listens")?;
        mock.report_statuses_to(StatusWebhooks {
            url: format!("http://127.0.0.1:{port}/webhooks/whatsapp"),
            app_secret: APP_SECRET.into(),
            duplicate: false,
            out_of_order: false,
            before_answer: false,
        });
    }
    let ctx = app.context().clone();
    let pool = ctx.pool.clone();
    let producer = Producer::new(ctx.clone())?;
    let run_date = producer.today();
    fixtures::load_fleet(
        &pool,
        &Fleet {
            vehicles: n,
            due: n,
            run_date,
            days_ahead: settings.producer.days_ahead,
        },
    )
    .await?;
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let app_task = tokio::spawn(app.run(shutdown.clone()));
    anyhow::ensure!(
        ctx.broker.connection(&shutdown).await.is_some(),
        "no broker connection"
    );
    // Let the roles declare their queues and start consuming.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Burst: the real scan.
    let scan_start = Utc::now();
    let started = Instant::now();
    let cpu_start = resources::CpuTimes::now();
    let scan_shutdown = shutdown.clone();
    let scan = tokio::spawn(async move {
        producer
            .scan(run_date, Trigger::Manual, None, &scan_shutdown)
            .await
    });
    let every = Duration::from_millis(20);
    let what = "every reminder to be counted";
    tally::wait_for_total(&pool, n as i64, what, Duration::from_secs(900), every).await?;
    let secs = started.elapsed().as_secs_f64();
    f.cpu.push(cpu_start, n);
    let summary = scan.await??;
    anyhow::ensure!(
        summary.events_published == n,
        "the scan published {}, expected {n}",
        summary.events_published
    );
    f.rates.push(n as f64 / secs);
    let (p50, max): (f64, f64) = sqlx::query_as(
        "SELECT (extract(epoch FROM percentile_disc(0.5) WITHIN GROUP (ORDER BY recorded_at) - $1) * 1000)::float8,
                (extract(epoch FROM max(recorded_at) - $1) * 1000)::float8
         FROM message_log",
    )
    .bind(scan_start)
    .fetch_one(&pool)
    .await?;
    f.burst_p50.push(p50);
    f.burst_max.push(max);

    // Paced: upstream publishes at a steady rate.
    let amqp = Amqp::connect(&o.amqp_url).await?;
    let paced_rate = if adaptive {
        paced_rate.min((0.8 * n as f64 / secs).round())
    } else {
        paced_rate
    };
    let count = (paced_rate * o.paced_seconds as f64).round() as u64;
    let (published, offered) = publish_paced(&amqp, env, paced_rate, count).await?;
    f.paced_rate.push(offered);
    amqp.close().await;
    let total = n + count;
    let what = "every paced reminder to be counted";
    tally::wait_for_total(&pool, total as i64, what, Duration::from_secs(600), every).await?;
    let mut latencies = paced_latencies(&pool, &published).await?;
    latencies.sort_by(|a, b| a.total_cmp(b));
    f.p50.push(quantile(&latencies, 0.5));
    f.p99.push(quantile(&latencies, 0.99));
    f.max.push(*latencies.last().unwrap_or(&f64::NAN));

    // Exact counts.
    let counted = tally::tally(&pool).await?;
    f.miscounted.push((counted.frequency - total as i64) as f64);
    anyhow::ensure!(
        counted.messages == total as i64,
        "message_log has {} rows, expected {total}",
        counted.messages
    );
    let counts = mock.counts();
    anyhow::ensure!(
        counts.distinct_reminders == total,
        "the mock saw {} reminders, expected {total}",
        counts.distinct_reminders
    );
    f.calls_per_reminder
        .push(counts.calls as f64 / counts.distinct_reminders as f64);
    if statuses {
        let (missing, unread) = wait_for_statuses(&pool, total).await?;
        f.statuses_missing.push(missing);
        f.unread.push(unread);
        mock.stop_reporting_statuses();
    }

    shutdown.cancel();
    app_task.await??;
    f.rss.push(resources::peak_rss_mb());
    env.drop_database_now(&settings.database.url).await;
    Ok(())
}

/// Waits (up to ten minutes) until `message_statuses` holds three statuses a reminder, then
/// says how many are missing (negative: recorded twice) and how many messages are not `read`.
async fn wait_for_statuses(pool: &PgPool, reminders: u64) -> anyhow::Result<(f64, f64)> {
    let expected = 3 * reminders as i64;
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM message_statuses")
            .fetch_one(pool)
            .await
    };
    let deadline = Instant::now() + Duration::from_secs(600);
    while count().await? < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Anything still in flight would show here as an excess.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let recorded = count().await?;
    let unread: i64 =
        sqlx::query_scalar("SELECT count(*) FROM message_log WHERE status = 'sent' AND delivery IS DISTINCT FROM 'read'")
            .fetch_one(pool)
            .await?;
    Ok(((expected - recorded) as f64, unread as f64))
}

/// Publishes `count` `maintenance.due` at `rate` per second, each with its own recipient and
/// stamped with its publish time. Returns (reminder id, publish time) and the rate achieved.
async fn publish_paced(
    amqp: &Amqp,
    env: &BenchEnv,
    rate: f64,
    count: u64,
) -> anyhow::Result<(Vec<(Uuid, DateTime<Utc>)>, f64)> {
    let exchange = env.topology().exchange;
    let due = Utc::now().date_naive() + chrono::Days::new(1);
    let mut published = Vec::with_capacity(count as usize);
    let mut in_flight = futures::stream::FuturesUnordered::new();
    let started = Instant::now();
    let mut sent = 0u64;
    while sent < count {
        let due_now = ((started.elapsed().as_secs_f64() * rate) as u64 + 1).min(count);
        while sent < due_now {
            while in_flight.len() >= 2000 {
                if let Some(c) = in_flight.next().await {
                    amqp::check_confirm(c)?;
                }
            }
            let id = Uuid::new_v4();
            let at = Utc::now();
            // Numbers 10,000,000 and up: not used by the fleet.
            let body = events::due_event(&id.to_string(), 10_000_000 + sent, at, due);
            in_flight.push(
                amqp.publish(&exchange, MAINTENANCE_DUE, &id.to_string(), &body)
                    .await?,
            );
            published.push((id, at));
            sent += 1;
        }
        while let Some(Some(c)) = in_flight.next().now_or_never() {
            amqp::check_confirm(c)?;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let offered = count as f64 / started.elapsed().as_secs_f64();
    while let Some(c) = in_flight.next().await {
        amqp::check_confirm(c)?;
    }
    Ok((published, offered))
}

/// Milliseconds from each paced event's publish time to its `message_log.recorded_at`.
async fn paced_latencies(
    pool: &PgPool,
    published: &[(Uuid, DateTime<Utc>)],
) -> anyhow::Result<Vec<f64>> {
    let mut out = Vec::with_capacity(published.len());
    for chunk in published.chunks(10_000) {
        let ids: Vec<String> = chunk.iter().map(|(id, _)| id.to_string()).collect();
        let rows: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT reminder_id, recorded_at FROM message_log WHERE reminder_id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(pool)
        .await?;
        anyhow::ensure!(
            rows.len() == chunk.len(),
            "{} of {} paced reminders are in message_log",
            rows.len(),
            chunk.len()
        );
        let sent: std::collections::HashMap<String, DateTime<Utc>> = ids
            .into_iter()
            .zip(chunk.iter().map(|(_, at)| *at))
            .collect();
        for (id, recorded) in rows {
            let at = sent[&id];
            out.push((recorded - at).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0);
        }
    }
    Ok(out)
}
