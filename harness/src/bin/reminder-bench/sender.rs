//! `sender`: one real sender (`reminder::sender::Sender`) against the mock Cloud API
//! answering after 100 ms.
//!
//! 1. Throughput: each round queues N `maintenance.due`, starts the sender and times it until
//!    N outcome events are in the tracker queue; the ceiling is the provider client alone
//!    (the same HTTP client and request bodies, same concurrency, no database or broker).
//! 2. Rate limit: with `whatsapp.max_per_second = 80` the sender runs a fixed time over a
//!    backlog; the mock's arrival times give the rate it saw and the most sends seen in any
//!    one-second window.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::ceilings::Ceilings;
use crate::env::{self, BenchEnv, guarded};
use crate::floor;
use crate::opts::Opts;
use crate::report::{Row, Summary, Table, Target, Unit};
use reminder::context::AppContext;
use reminder::domain::events::MAINTENANCE_DUE;
use reminder::sender::Sender;
use reminder::sender::providers;
use reminder_harness::amqp::Amqp;
use reminder_harness::mock_provider::MockCloudApi;
use reminder_harness::{events, wait};

struct Figures {
    rates: Vec<f64>,
    provider_alone: Vec<f64>,
    db_alone: Vec<f64>,
    calls_per_reminder: Vec<f64>,
    limited_rates: Vec<f64>,
    max_sliding: Vec<f64>,
    max_fixed: Vec<f64>,
    limited_dupes: Vec<f64>,
}

pub async fn run(opts: &Opts, _ceilings: &Ceilings) -> anyhow::Result<bool> {
    let o = opts.clone();
    let f = guarded("sender", opts, move |env| async move {
        let mock = MockCloudApi::start(Duration::from_millis(o.provider_delay_ms), true).await?;
        let result = measure(&env, &o, &mock).await;
        mock.stop().await;
        result
    })
    .await?;
    let mut t = Table::new(format!(
        "sender: one process, mock Cloud API answering in {} ms over {}, sender.concurrency {}",
        opts.provider_delay_ms,
        opts.provider_protocol(),
        opts.sender_concurrency
    ));
    let provider = Summary::of(&f.provider_alone);
    t.row(
        Row::of(
            format!(
                "sends/s, {} reminders per round, no rate limit",
                crate::report::thousands(opts.sends as f64)
            ),
            &f.rates,
            Unit::PerSec,
        )
        .vs("provider client alone", provider, Unit::PerSec)
        .target(Target::AtLeast(1000.0)),
    );
    t.row(
        Row::of(
            "the sender's per-reminder statements alone (claim, record_sent; group commit)",
            &f.db_alone,
            Unit::PerSec,
        )
        .vs("provider client alone", provider, Unit::PerSec),
    );
    t.row(Row::exactly(
        "provider calls per reminder",
        &f.calls_per_reminder,
        1.0,
    ));
    let limit = opts.rate_limit as f64;
    let configured = Summary::of(&[limit]);
    t.row(
        Row::of(
            format!(
                "sends/s with max_per_second = {}, {} s per round",
                opts.rate_limit, opts.rate_seconds
            ),
            &f.limited_rates,
            Unit::PerSec,
        )
        .vs("configured", configured, Unit::PerSec)
        .target(Target::Within(limit * 0.95, limit * 1.05)),
    );
    t.row(
        Row::of(
            "most sends in any 1 s window (sliding)",
            &f.max_sliding,
            Unit::Count,
        )
        .vs("configured", configured, Unit::Count)
        .target(Target::MaxAtMost(limit)),
    );
    t.row(
        Row::of(
            "most sends in one clock second (fixed buckets)",
            &f.max_fixed,
            Unit::Count,
        )
        .vs("configured", configured, Unit::Count)
        .target(Target::MaxAtMost(limit)),
    );
    t.row(Row::exactly(
        "reminders sent twice (rate-limited rounds)",
        &f.limited_dupes,
        0.0,
    ));
    t.note("throughput is timed from starting the sender on a full queue until every outcome event is confirmed in the tracker queue");
    t.note("sender.recipient_interval_ms = 0 and whatsapp.max_per_second = 0 in the throughput part (every reminder has its own number anyway)");
    t.print();
    Ok(t.all_met())
}

async fn measure(env: &BenchEnv, o: &Opts, mock: &MockCloudApi) -> anyhow::Result<Figures> {
    let mut settings = env.settings.clone();
    env::use_mock(&mut settings, mock, o);
    settings.sender.concurrency = o.sender_concurrency;
    settings.whatsapp.max_per_second = 0;
    settings.sender.recipient_interval_ms = 0;
    let connected = env::connect(env, &settings, "sender").await?;
    let (ctx, amqp, topology) = (&connected.ctx, &connected.amqp, &connected.topology);
    let mut f = Figures {
        rates: vec![],
        provider_alone: vec![],
        db_alone: vec![],
        calls_per_reminder: vec![],
        limited_rates: vec![],
        max_sliding: vec![],
        max_fixed: vec![],
        limited_dupes: vec![],
    };
    let provider = providers::from_settings(&settings.whatsapp)?;
    for _ in 0..o.rounds {
        // The ceiling: the provider client alone at the same concurrency.
        mock.reset();
        let n = o.sends;
        let alone = floor::provider_calls(&provider, n, o.sender_concurrency).await?;
        f.provider_alone.push(alone.rate);

        // The sender's database path alone: the same statements per reminder, shared the
        // same way, same pool.
        let alone = floor::sender_statements(&ctx.pool, n, o.sender_concurrency).await?;
        f.db_alone.push(alone.rate);

        // The sender.
        mock.reset();
        queue_reminders(amqp, env, n).await?;
        let sender = Arc::new(Sender::new(ctx.clone(), provider.clone())?);
        let stop = CancellationToken::new();
        let started = Instant::now();
        let handle = tokio::spawn(sender.run(stop.clone()));
        let tracker_queue = topology.tracker_queue.clone();
        wait::poll(
            "every outcome event",
            Duration::from_secs(600),
            Duration::from_millis(20),
            || async { Ok((amqp.depth(&tracker_queue).await? >= n).then_some(())) },
        )
        .await?;
        let secs = started.elapsed().as_secs_f64();
        stop.cancel();
        handle.await??;
        f.rates.push(n as f64 / secs);
        let counts = mock.counts();
        anyhow::ensure!(
            counts.distinct_reminders == n,
            "the mock saw {} distinct reminders, expected {n}",
            counts.distinct_reminders
        );
        f.calls_per_reminder
            .push(counts.calls as f64 / counts.distinct_reminders as f64);
        amqp.purge(&topology.tracker_queue).await?;
    }

    // Rate-limited: same process settings but max_per_second.
    let mut limited = settings.clone();
    limited.whatsapp.max_per_second = o.rate_limit;
    let limited_ctx = AppContext {
        settings: Arc::new(limited),
        ..ctx.clone()
    };
    for _ in 0..o.rounds {
        amqp.purge(&topology.sender_queue).await?;
        amqp.purge(&topology.tracker_queue).await?;
        mock.reset();
        let backlog = o.rate_limit as u64 * o.rate_seconds * 3 / 2 + o.sender_concurrency as u64;
        queue_reminders(amqp, env, backlog).await?;
        let sender = Arc::new(Sender::new(limited_ctx.clone(), provider.clone())?);
        let stop = CancellationToken::new();
        let handle = tokio::spawn(sender.run(stop.clone()));
        tokio::time::sleep(Duration::from_secs(o.rate_seconds)).await;
        stop.cancel();
        handle.await??;
        let arrivals = mock.arrivals();
        anyhow::ensure!(arrivals.len() > 10, "too few sends to measure a rate");
        let span = (*arrivals.last().expect("non-empty") - arrivals[0]).as_secs_f64();
        f.limited_rates.push((arrivals.len() - 1) as f64 / span);
        f.max_sliding
            .push(max_in_window(&arrivals, Duration::from_secs(1)) as f64);
        f.max_fixed.push(max_per_clock_second(&arrivals) as f64);
        let counts = mock.counts();
        f.limited_dupes
            .push((counts.calls - counts.distinct_reminders) as f64);
    }
    amqp.purge(&topology.sender_queue).await?;
    amqp.purge(&topology.tracker_queue).await?;
    amqp.close().await;
    ctx.pool.close().await;
    Ok(f)
}

/// Publishes `n` fresh `maintenance.due` events, each for its own customer and number.
async fn queue_reminders(amqp: &Amqp, env: &BenchEnv, n: u64) -> anyhow::Result<()> {
    let now = Utc::now();
    let due = now.date_naive() + chrono::Days::new(2);
    let exchange = env.topology().exchange;
    amqp.publish_many(
        &exchange,
        MAINTENANCE_DUE,
        (0..n).map(|i| {
            let id = Uuid::new_v4().to_string();
            let body = events::due_event(&id, i, now, due);
            (id, body)
        }),
        1000,
    )
    .await?;
    Ok(())
}

/// The most arrivals within any window of length `w` (sliding, starting at an arrival).
fn max_in_window(sorted: &[Instant], w: Duration) -> usize {
    let mut best = 0;
    let mut j = 0;
    for i in 0..sorted.len() {
        if j < i {
            j = i;
        }
        while j < sorted.len() && sorted[j] - sorted[i] < w {
            j += 1;
        }
        best = best.max(j - i);
    }
    best
}

/// The most arrivals within one second counted from the first arrival (fixed buckets).
fn max_per_clock_second(sorted: &[Instant]) -> usize {
    let Some(first) = sorted.first() else {
        return 0;
    };
    let mut counts = std::collections::HashMap::new();
    for t in sorted {
        *counts.entry((*t - *first).as_secs()).or_insert(0usize) += 1;
    }
    counts.values().copied().max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sliding_window_finds_the_densest_second() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let v = vec![
            at(0),
            at(100),
            at(900),
            at(950),
            at(1000),
            at(1050),
            at(2500),
        ];
        // [100, 1100) holds 100, 900, 950, 1000 and 1050; no clock second holds more than 4.
        assert_eq!(max_in_window(&v, Duration::from_secs(1)), 5);
        assert_eq!(max_per_clock_second(&v), 4);
    }
}
