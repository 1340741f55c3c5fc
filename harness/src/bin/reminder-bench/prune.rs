//! `prune`: the tracker's rate while the retention job deletes 1,000,000 history rows, against
//! its rate without a prune in the same round. Each round loads the old rows (400 days back),
//! drains a queue of `message.sent` with the tracker alone, then drains another as large while
//! `retention::prune` deletes the old rows in its small batches (the rate taken over the
//! prune's duration), and checks that every event was counted and exactly the old rows went.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::env::{self, guarded};
use crate::opts::Opts;
use crate::report::{Paired, Row, Table, Unit};
use crate::tracker::queue_sent_events;
use reminder::domain::events::MESSAGE_SENT;
use reminder::reporting::retention;
use reminder::tracker::Tracker;
use reminder_harness::tally;

/// History rows deleted by the prune of each round.
const OLD_ROWS: i64 = 1_000_000;
/// The tracker must keep at least this share of its rate while a prune runs.
const TARGET: f64 = 0.5;

#[derive(Default)]
struct Figures {
    paired: Paired,
    prune_rates: Vec<f64>,
    prune_ms: Vec<f64>,
    load_secs: Vec<f64>,
}

pub async fn run(opts: &Opts) -> anyhow::Result<bool> {
    let o = opts.clone();
    let f = guarded("prune", opts, move |env| async move {
        let connected = env::connect(&env, &env.settings, "tracker").await?;
        let (ctx, amqp, topology) = (&connected.ctx, &connected.amqp, &connected.topology);
        let pool = ctx.pool.clone();
        let namespace = Uuid::new_v4();
        let n = o.tracker_events;
        let mut f = Figures::default();
        for round in 0..o.rounds {
            let loading = Instant::now();
            load_old_history(&pool, round).await?;
            f.load_secs.push(loading.elapsed().as_secs_f64());

            let o = &o;
            let drain = |pruning: bool| {
                let (ctx, pool) = (ctx.clone(), pool.clone());
                async move {
                    queue_sent_events(amqp, &topology.exchange, MESSAGE_SENT, namespace, o, n)
                        .await?;
                    let before = tally::total_messages(&pool).await?;
                    let stop = CancellationToken::new();
                    let started = Instant::now();
                    let tracker = tokio::spawn(Arc::new(Tracker::new(ctx)).run(stop.clone()));
                    // While the prune runs: events counted over its duration.
                    let pruned = if pruning {
                        let cutoff = retention::cutoff(365, Utc::now()).expect("retention on");
                        let at_start = tally::total_messages(&pool).await?;
                        let prune_started = Instant::now();
                        let report = retention::prune(&pool, cutoff, false, &stop).await?;
                        let took = prune_started.elapsed();
                        let counted = tally::total_messages(&pool).await? - at_start;
                        anyhow::ensure!(
                            counted < n as i64,
                            "the tracker finished before the prune did: the round says nothing"
                        );
                        Some((report, took, counted as f64 / took.as_secs_f64()))
                    } else {
                        None
                    };
                    let what = "the tracker to count every event";
                    let (timeout, every) = (Duration::from_secs(600), Duration::from_millis(10));
                    tally::wait_for_total(&pool, before + n as i64, what, timeout, every).await?;
                    let rate = n as f64 / started.elapsed().as_secs_f64();
                    stop.cancel();
                    tracker.await??;
                    anyhow::Ok((rate, pruned))
                }
            };
            let (alone, _) = drain(false).await?;
            let (_, pruned) = drain(true).await?;
            let (report, took, during) = pruned.expect("a prune ran");
            let deleted = report
                .tables
                .iter()
                .find(|(t, _)| *t == "message_log")
                .map_or(0, |(_, n)| *n);
            anyhow::ensure!(
                deleted == OLD_ROWS as u64,
                "the prune deleted {deleted} history rows, expected {OLD_ROWS}"
            );
            f.paired.push(alone, during);
            f.prune_rates.push(OLD_ROWS as f64 / took.as_secs_f64());
            f.prune_ms.push(took.as_secs_f64() * 1000.0);
            let counted = tally::tally(&pool).await?;
            anyhow::ensure!(
                counted.messages == 2 * n as i64 * (round as i64 + 1),
                "message_log has {} of the tracker's rows, expected {}",
                counted.messages,
                2 * n as i64 * (round as i64 + 1)
            );
        }
        anyhow::Ok(f)
    })
    .await?;

    let mut t = Table::new(format!(
        "prune: the tracker draining {} message.sent while {} history rows are pruned",
        crate::report::thousands(opts.tracker_events as f64),
        crate::report::thousands(OLD_ROWS as f64)
    ));
    for row in f.paired.rows(
        "the tracker alone, events/s,",
        "tracker events/s during the prune",
        Some(TARGET),
    ) {
        t.row(row);
    }
    t.row(Row::of(
        "prune rows/s (message_log, in batches of 5,000)",
        &f.prune_rates,
        Unit::PerSec,
    ));
    t.row(Row::of(
        "prune duration (the window the rate during it is taken over)",
        &f.prune_ms,
        Unit::Ms,
    ));
    t.note(format!(
        "each round loads the old rows first ({:.0} s median), then drains the queue alone (its rate over the whole drain), then again with the prune started beside it (its rate over the prune's duration, the queue still full when the prune ends); the target is the tracker keeping {TARGET:.2} or more of its rate alone",
        crate::report::Summary::of(&f.load_secs).median
    ));
    t.print();
    Ok(t.all_met())
}

/// `OLD_ROWS` sent messages 400 days and more in the past, in slices so each statement's
/// trigger input stays moderate.
async fn load_old_history(pool: &PgPool, round: usize) -> anyhow::Result<()> {
    const SLICE: i64 = 200_000;
    let mut start = 0;
    while start < OLD_ROWS {
        sqlx::query(
            "INSERT INTO message_log (event_id, reminder_id, id_customer, id_vehicle, status,
                                      provider, provider_message_id, attempts, at)
             SELECT 'old-' || $3 || '-' || i, 'old-' || $3 || '-' || i, gen_random_uuid(),
                    gen_random_uuid(), 'sent', 'bench', 'wamid.old' || i, 1,
                    now() - interval '400 days' - i * interval '1 second'
             FROM generate_series($1::bigint, $2::bigint - 1) i",
        )
        .bind(start)
        .bind((start + SLICE).min(OLD_ROWS))
        .bind(round as i64)
        .execute(pool)
        .await?;
        start += SLICE;
    }
    sqlx::query("ANALYZE message_log").execute(pool).await?;
    Ok(())
}
