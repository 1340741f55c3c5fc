//! `tracker`: 200,000 `message.sent` over 10,000 (customer, vehicle) pairs queued for
//! the real tracker (`reminder::tracker::Tracker`), timed from its start until every event is
//! counted; compared with the lower of the consume and PostgreSQL-upsert ceilings. The per-message
//! baseline (per message: one transaction that selects the pair, then updates or inserts it, then
//! one ack; prefetch 1, as a pika worker does) is timed in the same run on its own queue and
//! table. Every round checks the counts are exact, and prints what an event cost in CPU time
//! (the whole machine's, this process's, RabbitMQ's and PostgreSQL's) while the tracker drained
//! the queue.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use futures::StreamExt as _;
use lapin::options::{BasicAckOptions, BasicCancelOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::ceilings::Ceilings;
use crate::cpu::CpuFigures;
use crate::env::{self, BenchEnv, guarded};
use crate::floor;
use crate::opts::Opts;
use crate::report::{Paired, Row, Summary, Table, Unit};
use reminder::broker::delivery::with_raw_message;
use reminder::domain::events::MESSAGE_SENT;
use reminder::domain::{IncomingEvent, MessageOutcome};
use reminder::tracker::Tracker;
use reminder_harness::amqp::Amqp;
use reminder_harness::{events, resources, tally};

struct Figures {
    rates: Vec<f64>,
    paired: Paired,
    statement: Vec<f64>,
    baseline: Vec<f64>,
    miscounted: Vec<f64>,
    /// What an event cost over each timed drain.
    cpu: CpuFigures,
    /// A consume at the ceiling's cost plus the statement alone, against each round.
    floor: floor::Bound,
}

/// The tracker's rate must be at least this share of what its floor allows this machine.
const FLOOR_TARGET: f64 = 0.85;

pub async fn run(opts: &Opts, ceilings: &Ceilings) -> anyhow::Result<bool> {
    let pg = ceilings.pg_upsert().await?;
    let consume = ceilings.consume().await?;
    let (ceiling_name, ceiling) = if pg.median <= consume.median {
        ("PG upsert", pg)
    } else {
        ("consume", consume)
    };
    let o = opts.clone();
    let f = guarded("tracker", opts, move |env| async move {
        measure(&env, &o, ceilings).await
    })
    .await?;
    let mut s = reminder::configuration::Settings::defaults().tracker;
    if opts.tracker_batch > 0 {
        s.batch_size = opts.tracker_batch;
    }
    if opts.tracker_in_flight > 0 {
        s.batches_in_flight = opts.tracker_in_flight;
    }
    let mut t = Table::new(format!(
        "tracker: {} message.sent over {} pairs per round (tracker.batch_size {}, batch_linger_ms {}, batches_in_flight {})",
        crate::report::thousands(opts.tracker_events as f64),
        crate::report::thousands(opts.tracker_pairs as f64),
        s.batch_size,
        s.batch_linger_ms,
        s.batches_in_flight
    ));
    let rates = Summary::of(&f.rates);
    let baseline = Summary::of(&f.baseline);
    t.row(Row::new("tracker events/s", rates, Unit::PerSec).vs(
        ceiling_name,
        ceiling,
        Unit::PerSec,
    ));
    for row in f
        .paired
        .rows("min(PG upsert, consume)", "tracker events/s", None)
    {
        t.row(row);
    }
    for row in f.cpu.rows("tracker", "event") {
        t.row(row);
    }
    for row in f.floor.rows(
        "floor: CPU per event of a consume and ack and the statement, each alone",
        "min(PG upsert, consume) of its round",
        "tracker events/s",
        FLOOR_TARGET,
    ) {
        t.row(row);
    }
    t.row(
        Row::of(
            format!(
                "the tracker's statement alone (apply_batch, {} per call, {} at once)",
                s.batch_size, s.batches_in_flight
            ),
            &f.statement,
            Unit::PerSec,
        )
        .vs(ceiling_name, ceiling, Unit::PerSec),
    );
    t.row(
        Row::new(
            format!(
                "per-message baseline events/s ({} per round)",
                crate::report::thousands(opts.baseline_events as f64)
            ),
            baseline,
            Unit::PerSec,
        )
        .vs(ceiling_name, ceiling, Unit::PerSec),
    );
    t.row(Row::exactly(
        "sum of frequency minus events (per round)",
        &f.miscounted,
        0.0,
    ));
    t.note(format!(
        "ceilings: PG upsert {} /s, consume {} /s; the tracker is {:.1}x the per-message baseline",
        crate::report::thousands(pg.median),
        crate::report::thousands(consume.median),
        rates.median / baseline.median
    ));
    t.note("timed from starting the tracker on a full queue until the report's sum of frequency reaches the events queued");
    t.note(format!("floor: a consume and ack at the whole-machine cost taken with the ceiling before each round, plus the statement alone (its round of the same number); the target is the tracker's rate at {FLOOR_TARGET:.2} or more of what its floor allows, the median of the rounds"));
    t.print();
    Ok(t.all_met())
}

async fn measure(env: &BenchEnv, o: &Opts, ceilings: &Ceilings) -> anyhow::Result<Figures> {
    let mut settings = env.settings.clone();
    if o.tracker_batch > 0 {
        settings.tracker.batch_size = o.tracker_batch;
    }
    if o.tracker_in_flight > 0 {
        settings.tracker.batches_in_flight = o.tracker_in_flight;
    }
    let connected = env::connect(env, &settings, "tracker").await?;
    let (ctx, amqp, topology) = (&connected.ctx, &connected.amqp, &connected.topology);
    let namespace = Uuid::new_v4();
    let pool = ctx.pool.clone();
    let mut f = Figures {
        rates: vec![],
        paired: Paired::default(),
        statement: vec![],
        baseline: vec![],
        miscounted: vec![],
        cpu: CpuFigures::default(),
        floor: floor::Bound::default(),
    };
    // Per round: its ceiling, what a consume cost the machine then, and the tracker's rate;
    // the statement's rounds, which run after the tracker's, complete each round's floor.
    let mut rounds: Vec<(f64, Option<f64>, f64)> = Vec::new();
    let n = o.tracker_events;
    for round in 1..=o.rounds as u64 {
        let (ceiling, consume) = ceilings.tracker_now_costed().await?;
        queue_sent_events(amqp, &topology.exchange, MESSAGE_SENT, namespace, o, n).await?;
        let before = tally::total_messages(&pool).await?;
        let tracker = Arc::new(Tracker::new(ctx.clone()));
        let stop = CancellationToken::new();
        let started = Instant::now();
        let cpu_start = resources::CpuTimes::now();
        let handle = tokio::spawn(tracker.run(stop.clone()));
        let what = "the tracker to count every event";
        let (timeout, every) = (Duration::from_secs(600), Duration::from_millis(10));
        tally::wait_for_total(&pool, before + n as i64, what, timeout, every).await?;
        let secs = started.elapsed().as_secs_f64();
        f.cpu.push(cpu_start, n);
        stop.cancel();
        handle.await??;
        f.rates.push(n as f64 / secs);
        f.paired.push(ceiling, n as f64 / secs);
        rounds.push((ceiling, consume.machine_us, n as f64 / secs));
        let counted = tally::tally(&pool).await?;
        f.miscounted
            .push((counted.frequency - (round * n) as i64) as f64);
        anyhow::ensure!(
            counted.messages == (round * n) as i64,
            "message_log has {} rows after round {round}, expected {}",
            counted.messages,
            round * n
        );
        anyhow::ensure!(
            counted.reports == o.tracker_pairs.min(n) as i64,
            "{} report rows, expected {}",
            counted.reports,
            o.tracker_pairs.min(n)
        );
        anyhow::ensure!(
            amqp.depth(&topology.dead_queue).await? == 0,
            "events were dead-lettered"
        );
    }

    // The tracker's statement alone, on a database of its own: where the time goes.
    let mut db = settings.database.clone();
    db.url = env.extra_database("statement");
    let statement_pool = reminder::db::migrate(&db).await?;
    for &(ceiling, consume_us, rate) in &rounds {
        let outcomes = floor::sent_outcomes(n, o.tracker_pairs, |p| events::pair(namespace, p));
        // As the tracker runs it: `batches_in_flight` batches at once, each on its own connection.
        let alone = floor::tracker_statement(
            &statement_pool,
            &outcomes,
            settings.tracker.batch_size,
            settings.tracker.batches_in_flight,
        )
        .await?;
        f.statement.push(alone.rate);
        if let (Some(consume), Some(statement)) = (consume_us, alone.machine_us) {
            f.floor.push(consume + statement, ceiling, rate);
        }
    }
    statement_pool.close().await;

    // The per-message baseline, on its own queue and table.
    let queue = env.extra_queue("baseline");
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        reminder::broker::topology::long_string("quorum"),
    );
    amqp.channel
        .queue_declare(queue.as_str().into(), QueueDeclareOptions::durable(), args)
        .await?;
    sqlx::raw_sql(BASELINE_SCHEMA).execute(&pool).await?;
    let b = o.baseline_events;
    for round in 1..=o.rounds as u64 {
        queue_sent_events(amqp, "", &queue, namespace, o, b).await?;
        let started = Instant::now();
        baseline_consumer(amqp, &queue, &pool, b).await?;
        f.baseline.push(b as f64 / started.elapsed().as_secs_f64());
        let sum: i64 =
            sqlx::query_scalar("SELECT coalesce(sum(frequency), 0)::bigint FROM baseline_report")
                .fetch_one(&pool)
                .await?;
        anyhow::ensure!(
            sum == (round * b) as i64,
            "the per-message baseline counted {sum}, expected {}",
            round * b
        );
    }
    amqp.close().await;
    pool.close().await;
    Ok(f)
}

/// Publishes `n` `message.sent` spread over the pairs, each for a fresh reminder.
pub(crate) async fn queue_sent_events(
    amqp: &Amqp,
    exchange: &str,
    routing_key: &str,
    namespace: Uuid,
    o: &Opts,
    n: u64,
) -> anyhow::Result<()> {
    let now = Utc::now();
    let pairs = o.tracker_pairs;
    amqp.publish_many(
        exchange,
        routing_key,
        (0..n).map(|i| {
            let (c, v) = events::pair(namespace, i % pairs);
            let at = now - chrono::Duration::milliseconds((n - i) as i64);
            events::sent_event(&Uuid::new_v4().to_string(), c, v, i % pairs, at)
        }),
        1000,
    )
    .await?;
    Ok(())
}

const BASELINE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS baseline_report (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    id_customer uuid NOT NULL,
    id_vehicle uuid NOT NULL,
    last_message_date timestamptz NOT NULL,
    frequency integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id_customer, id_vehicle)
)";

/// The per-message baseline's consumer: prefetch 1; per message parse, select the pair, update or insert,
/// commit, ack.
async fn baseline_consumer(amqp: &Amqp, queue: &str, pool: &PgPool, n: u64) -> anyhow::Result<()> {
    let (channel, mut consumer) = amqp.consume(queue, 1).await?;
    let mut conn = pool.acquire().await?;
    let mut done = 0;
    while done < n {
        let delivery = consumer
            .next()
            .await
            .context("the baseline consumer ended early")??;
        let outcome = with_raw_message(&delivery, |raw| {
            IncomingEvent::parse(raw, 65536).and_then(|e| MessageOutcome::from_event(&e))
        })?;
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        let existing: Option<Uuid> = sqlx::query_scalar(
            "SELECT id FROM baseline_report WHERE id_customer = $1 AND id_vehicle = $2",
        )
        .bind(outcome.customer_id)
        .bind(outcome.vehicle_id)
        .fetch_optional(&mut *tx)
        .await?;
        match existing {
            Some(id) => {
                sqlx::query(
                    "UPDATE baseline_report SET frequency = frequency + 1,
                         last_message_date = $2, updated_at = now() WHERE id = $1",
                )
                .bind(id)
                .bind(outcome.at)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query(
                    "INSERT INTO baseline_report (id_customer, id_vehicle, last_message_date, frequency)
                     VALUES ($1, $2, $3, 1)",
                )
                .bind(outcome.customer_id)
                .bind(outcome.vehicle_id)
                .bind(outcome.at)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        delivery.acker.ack(BasicAckOptions::default()).await?;
        done += 1;
    }
    let _ = channel
        .basic_cancel(consumer.tag(), BasicCancelOptions::default())
        .await;
    let _ = channel.close(200, "".into()).await;
    Ok(())
}
