//! `producer`: a fleet of 1,000,000 vehicles of which 100,000 are due; each round
//! runs the real scan (`Producer::scan`: streaming query, validation, event ids, pipelined
//! confirmed publishing) and reports scan+publish throughput against the raw publish ceiling,
//! and the process's peak resident memory during the scan.

use std::time::Instant;

use crate::ceilings::Ceilings;
use crate::env::{self, guarded};
use crate::opts::Opts;
use crate::report::{Paired, Row, Table, Target, Unit};
use reminder::producer::{Producer, Trigger};
use reminder_harness::fixtures::{self, Fleet};
use reminder_harness::resources;

/// Scan and publish together must reach at least this share of the raw publish ceiling, both
/// the invocation's and each round's own.
const PUBLISH_TARGET: f64 = 0.5;

pub async fn run(opts: &Opts, ceilings: &Ceilings) -> anyhow::Result<bool> {
    let publish = ceilings.publish().await?;
    let o = opts.clone();
    let (rates, peaks, paired, before, load_secs) =
        guarded("producer", opts, move |env| async move {
            let connected = env::connect(&env, &env.settings, "producer").await?;
            let (ctx, amqp, topology, shutdown) = (
                &connected.ctx,
                &connected.amqp,
                &connected.topology,
                &connected.shutdown,
            );
            let producer = Producer::new(ctx.clone())?;
            let run_date = producer.today();
            let loading = Instant::now();
            fixtures::load_fleet(
                &ctx.pool,
                &Fleet {
                    vehicles: o.vehicles,
                    due: o.due,
                    run_date,
                    days_ahead: env.settings.producer.days_ahead,
                },
            )
            .await?;
            let load_secs = loading.elapsed().as_secs_f64();
            let before = resources::rss_mb();
            let mut rates = Vec::new();
            let mut peaks = Vec::new();
            let mut paired = Paired::default();
            for round in 0..o.rounds {
                amqp.purge(&topology.sender_queue).await?;
                let ceiling = ceilings.publish_now().await?;
                resources::reset_peak_rss();
                let started = Instant::now();
                let summary = producer
                    .scan(run_date, Trigger::Manual, None, shutdown)
                    .await?;
                let secs = started.elapsed().as_secs_f64();
                peaks.push(resources::peak_rss_mb());
                anyhow::ensure!(
                    summary.events_published == o.due,
                    "round {round}: published {} events, expected {}",
                    summary.events_published,
                    o.due
                );
                rates.push(summary.events_published as f64 / secs);
                paired.push(ceiling, summary.events_published as f64 / secs);
            }
            let queued = amqp.depth(&topology.sender_queue).await?;
            anyhow::ensure!(
                queued == o.due,
                "the sender queue holds {queued} events after a scan, expected {}",
                o.due
            );
            amqp.purge(&topology.sender_queue).await?;
            amqp.close().await;
            Ok((rates, peaks, paired, before, load_secs))
        })
        .await?;
    let mut t = Table::new(format!(
        "producer: scan of {} vehicles, {} due, pipelined publish (window {})",
        crate::report::thousands(opts.vehicles as f64),
        crate::report::thousands(opts.due as f64),
        opts.publish_window
    ));
    t.row(
        Row::of("scan + publish throughput", &rates, Unit::PerSec)
            .vs("publish", publish, Unit::PerSec)
            .target(Target::RatioAtLeast(PUBLISH_TARGET)),
    );
    for row in paired.rows("publish", "scan + publish throughput", Some(PUBLISH_TARGET)) {
        t.row(row);
    }
    t.row(Row::of(
        "peak RSS of the process during a scan",
        &peaks,
        Unit::MiB,
    ));
    t.note(format!(
        "RSS before the first scan: {before:.1} MiB (VmHWM reset before each scan); fleet loaded in {load_secs:.0} s"
    ));
    t.print();
    Ok(t.all_met())
}
