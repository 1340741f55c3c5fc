//! The raw ceilings of this machine, for the message sizes reminder uses, taken with plain
//! clients and no reminder code in the path:
//! - publish with confirms to the sender's quorum queue (through the topic exchange, with a
//!   window of unconfirmed publishes), `maintenance.due`-sized messages;
//! - consume, parse the JSON and ack (prefetch 500, one multiple-ack every 250),
//!   `message.sent`-sized messages, from the tracker's quorum queue;
//! - a batched PostgreSQL write: dedupe insert `ON CONFLICT DO NOTHING RETURNING` plus an
//!   upsert aggregated per pair, 500 events per statement, one transaction each.
//!
//! Each is taken once per invocation, on first use, and shared by every scenario. The
//! scenarios compared with a ceiling also take it again just before each of their rounds
//! (`*_now`), because a shared machine's ceilings swing within minutes: a ratio to the ceiling
//! of the same moment says more than one to a ceiling taken minutes earlier.

use std::time::Instant;

use anyhow::Context as _;
use chrono::Utc;
use futures::StreamExt as _;
use lapin::options::{BasicAckOptions, BasicCancelOptions};
use sqlx::Connection as _;
use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::env::{BenchEnv, guarded};
use crate::opts::Opts;
use crate::report::{Row, Summary, Table, Unit};
use reminder::domain::events::{MAINTENANCE_DUE, MESSAGE_SENT};
use reminder_harness::amqp::Amqp;
use reminder_harness::{events, resources};

pub const CONSUME_PREFETCH: u16 = 500;
pub const ACK_EVERY: u64 = 250;
pub const UPSERT_BATCH: usize = 500;

/// The ceilings as handed from `all` to its children.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct Rates {
    pub publish: Summary,
    pub consume: Summary,
    pub pg_upsert: Summary,
}

pub struct Ceilings {
    opts: Opts,
    publish: OnceCell<Summary>,
    consume: OnceCell<Summary>,
    pg_upsert: OnceCell<Summary>,
}

impl Ceilings {
    pub fn new(opts: Opts) -> Ceilings {
        Ceilings {
            opts,
            publish: OnceCell::new(),
            consume: OnceCell::new(),
            pg_upsert: OnceCell::new(),
        }
    }

    pub fn given(opts: Opts, m: Rates) -> Ceilings {
        Ceilings {
            opts,
            publish: OnceCell::new_with(Some(m.publish)),
            consume: OnceCell::new_with(Some(m.consume)),
            pg_upsert: OnceCell::new_with(Some(m.pg_upsert)),
        }
    }

    pub async fn publish(&self) -> anyhow::Result<Summary> {
        self.publish
            .get_or_try_init(|| measure_publish(&self.opts))
            .await
            .copied()
    }

    pub async fn consume(&self) -> anyhow::Result<Summary> {
        self.consume
            .get_or_try_init(|| measure_consume(&self.opts))
            .await
            .copied()
    }

    pub async fn pg_upsert(&self) -> anyhow::Result<Summary> {
        self.pg_upsert
            .get_or_try_init(|| measure_pg_upsert(&self.opts))
            .await
            .copied()
    }

    /// The publish ceiling, taken now. Like every `*_now`, it works in an exchange, queues
    /// and database of its own, so nothing it publishes reaches the scenario, and a scenario
    /// calls it only while its own work is idle.
    pub async fn publish_now(&self) -> anyhow::Result<f64> {
        Ok(self.publish_now_costed().await?.rate)
    }

    /// `publish_now`, with what a publish cost the machine.
    pub async fn publish_now_costed(&self) -> anyhow::Result<Costed> {
        let publish = publish_rounds(&self.beside_a_round()).await?.costed();
        settle().await;
        Ok(publish)
    }

    /// The consume ceiling taken now, with what a consume cost the machine.
    pub async fn consume_now_costed(&self) -> anyhow::Result<Costed> {
        let consume = consume_rounds(&self.beside_a_round()).await?.costed();
        settle().await;
        Ok(consume)
    }

    /// The lower of the consume and PostgreSQL-upsert ceilings, taken now (the tracker's
    /// ceiling), with the consume ceiling and what a consume cost the machine.
    pub async fn tracker_now_costed(&self) -> anyhow::Result<(f64, Costed)> {
        let consume = consume_rounds(&self.beside_a_round()).await?.costed();
        let pg = measure_pg_upsert(&self.beside_a_round()).await?.median;
        settle().await;
        Ok((consume.rate.min(pg), consume))
    }

    /// Two rounds of a third of the messages, and their mean as the ceiling: a quorum queue's
    /// first round, into a queue just declared, runs faster than the rounds after it, and the
    /// once-per-invocation ceilings are the median of rounds that are mostly not first. A third
    /// of the messages keeps the ceilings beside each round short next to the round itself.
    fn beside_a_round(&self) -> Opts {
        Opts {
            rounds: 2,
            ceiling_messages: self.opts.ceiling_messages.div_ceil(3),
            ..self.opts.clone()
        }
    }

    pub async fn all_rates(&self) -> anyhow::Result<Rates> {
        Ok(Rates {
            publish: self.publish().await?,
            consume: self.consume().await?,
            pg_upsert: self.pg_upsert().await?,
        })
    }
}

/// A ceiling's rate, and the whole machine's CPU time per message while it was taken
/// (`None` where `/proc` cannot be read): the raw cost of a publish or a consume.
#[derive(Debug, Clone, Copy)]
pub struct Costed {
    pub rate: f64,
    pub machine_us: Option<f64>,
}

/// Each round's rate and the machine's CPU microseconds per message in it.
#[derive(Default)]
struct Rounds {
    rates: Vec<f64>,
    machine_us: Vec<f64>,
}

impl Rounds {
    fn push(&mut self, n: u64, started: Instant, cpu: Option<resources::CpuTimes>) {
        self.rates.push(n as f64 / started.elapsed().as_secs_f64());
        if let Some(us) = resources::machine_us_per_unit(cpu, n) {
            self.machine_us.push(us);
        }
    }

    fn rate(&self) -> Summary {
        Summary::of(&self.rates)
    }

    fn costed(&self) -> Costed {
        Costed {
            rate: self.rate().median,
            machine_us: (!self.machine_us.is_empty()).then(|| Summary::of(&self.machine_us).median),
        }
    }
}

/// After a ceiling taken beside a round, before the round starts: its connections and
/// buffers are gone and jemalloc has handed their pages back (`dirty_decay_ms` 1000), so they
/// count in neither the round's time nor its peak RSS.
async fn settle() {
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
}

/// Sizes of the messages the ceilings use: what the producer and the sender publish.
pub fn due_body() -> Vec<u8> {
    let today = Utc::now().date_naive();
    events::due_event(&Uuid::new_v4().to_string(), 12_345_678, Utc::now(), today)
}

pub fn sent_body() -> Vec<u8> {
    events::sent_event(
        &Uuid::new_v4().to_string(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        12_345_678,
        Utc::now(),
    )
    .1
}

/// The `ceilings` scenario: measures and prints the three.
pub async fn run(ceilings: &Ceilings) -> anyhow::Result<bool> {
    let m = ceilings.all_rates().await?;
    let opts = &ceilings.opts;
    let mut t = Table::new(format!(
        "ceilings: raw RabbitMQ 3.10 and PostgreSQL 15 rates of this machine ({} messages per round)",
        crate::report::thousands(opts.ceiling_messages as f64)
    ));
    t.row(Row::new(
        format!(
            "publish with confirms, quorum queue, window {}",
            opts.publish_window
        ),
        m.publish,
        Unit::PerSec,
    ));
    t.row(Row::new(
        format!(
            "consume + parse + ack, prefetch {CONSUME_PREFETCH}, multiple-ack every {ACK_EVERY}"
        ),
        m.consume,
        Unit::PerSec,
    ));
    t.row(Row::new(
        format!("PG dedupe insert + aggregated upsert, batches of {UPSERT_BATCH}, 1 tx each"),
        m.pg_upsert,
        Unit::PerSec,
    ));
    t.note(format!(
        "message sizes: maintenance.due {} bytes (publish), message.sent {} bytes (consume); persistent, mandatory",
        due_body().len(),
        sent_body().len()
    ));
    t.print();
    Ok(true)
}

async fn measure_publish(opts: &Opts) -> anyhow::Result<Summary> {
    Ok(publish_rounds(opts).await?.rate())
}

async fn publish_rounds(opts: &Opts) -> anyhow::Result<Rounds> {
    let opts = opts.clone();
    guarded("ceiling_publish", &opts.clone(), move |env| async move {
        let amqp = Amqp::connect(&opts.amqp_url).await?;
        let topology = env.topology();
        topology.declare(&amqp.channel).await?;
        let body = due_body();
        let n = opts.ceiling_messages as u64;
        let mut rounds = Rounds::default();
        for _ in 0..opts.rounds {
            amqp.purge(&topology.sender_queue).await?;
            // Read first: reading /proc takes a few milliseconds that are not the ceiling's.
            let cpu = resources::CpuTimes::now();
            let started = Instant::now();
            let confirmed = amqp
                .publish_many(
                    &topology.exchange,
                    MAINTENANCE_DUE,
                    (0..n).map(|i| (format!("ceiling-{i}"), body.clone())),
                    opts.publish_window,
                )
                .await?;
            rounds.push(confirmed, started, cpu);
        }
        amqp.purge(&topology.sender_queue).await?;
        amqp.close().await;
        Ok(rounds)
    })
    .await
}

async fn measure_consume(opts: &Opts) -> anyhow::Result<Summary> {
    Ok(consume_rounds(opts).await?.rate())
}

async fn consume_rounds(opts: &Opts) -> anyhow::Result<Rounds> {
    let opts = opts.clone();
    guarded("ceiling_consume", &opts.clone(), move |env| async move {
        let amqp = Amqp::connect(&opts.amqp_url).await?;
        let topology = env.topology();
        topology.declare(&amqp.channel).await?;
        let body = sent_body();
        let n = opts.ceiling_messages as u64;
        let mut rounds = Rounds::default();
        for _ in 0..opts.rounds {
            amqp.purge(&topology.tracker_queue).await?;
            amqp.publish_many(
                &topology.exchange,
                MESSAGE_SENT,
                (0..n).map(|i| (format!("ceiling-{i}"), body.clone())),
                opts.publish_window,
            )
            .await?;
            consume_all(&amqp, &topology.tracker_queue, n, &mut rounds).await?;
        }
        amqp.close().await;
        Ok(rounds)
    })
    .await
}

/// Consumes `n` messages (parsing each as JSON), acking every `ACK_EVERY`, and records the
/// round from the consume request to the last ack.
async fn consume_all(amqp: &Amqp, queue: &str, n: u64, rounds: &mut Rounds) -> anyhow::Result<()> {
    let cpu = resources::CpuTimes::now();
    let started = Instant::now();
    let (channel, mut consumer) = amqp.consume(queue, CONSUME_PREFETCH).await?;
    let mut count = 0u64;
    while count < n {
        let delivery = consumer
            .next()
            .await
            .context("the consumer ended early")??;
        let _: serde_json::Value =
            serde_json::from_slice(&delivery.data).context("a ceiling message is not JSON")?;
        count += 1;
        if count.is_multiple_of(ACK_EVERY) || count == n {
            delivery
                .acker
                .ack(BasicAckOptions { multiple: true })
                .await?;
        }
    }
    rounds.push(n, started, cpu);
    let _ = channel
        .basic_cancel(consumer.tag(), BasicCancelOptions::default())
        .await;
    let _ = channel.close(200, "".into()).await;
    Ok(())
}

const PG_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS ceiling_inbox (event_id text PRIMARY KEY);
CREATE TABLE IF NOT EXISTS ceiling_report (
    id_customer uuid NOT NULL,
    id_vehicle uuid NOT NULL,
    frequency integer NOT NULL,
    last_message_date timestamptz NOT NULL,
    PRIMARY KEY (id_customer, id_vehicle)
)";

const PG_BATCH: &str = "
WITH input AS (
    SELECT * FROM UNNEST($1::text[], $2::uuid[], $3::uuid[], $4::timestamptz[])
        AS t(event_id, id_customer, id_vehicle, at)
), fresh AS (
    INSERT INTO ceiling_inbox (event_id) SELECT event_id FROM input
    ON CONFLICT DO NOTHING RETURNING event_id
)
INSERT INTO ceiling_report AS r (id_customer, id_vehicle, frequency, last_message_date)
SELECT i.id_customer, i.id_vehicle, count(*), max(i.at)
FROM input i JOIN fresh f USING (event_id)
GROUP BY i.id_customer, i.id_vehicle ORDER BY i.id_customer, i.id_vehicle
ON CONFLICT (id_customer, id_vehicle) DO UPDATE SET
    frequency = r.frequency + excluded.frequency,
    last_message_date = greatest(r.last_message_date, excluded.last_message_date)";

async fn measure_pg_upsert(opts: &Opts) -> anyhow::Result<Summary> {
    let opts = opts.clone();
    guarded(
        "ceiling_pg",
        &opts.clone(),
        move |env: std::sync::Arc<BenchEnv>| async move {
            let url = env.settings.database.url.clone();
            reminder::db::create_database_if_missing(&url).await?;
            let mut conn = sqlx::PgConnection::connect_with(&reminder::db::connect_options(&url)?)
                .await
                .context("connecting to the ceiling database")?;
            sqlx::raw_sql(PG_SCHEMA).execute(&mut conn).await?;
            let namespace = Uuid::new_v4();
            let n = opts.ceiling_messages as u64;
            let mut rates = Vec::new();
            for _ in 0..opts.rounds {
                sqlx::raw_sql("TRUNCATE ceiling_inbox, ceiling_report")
                    .execute(&mut conn)
                    .await?;
                let now = Utc::now();
                let events: Vec<(String, Uuid, Uuid)> = (0..n)
                    .map(|i| {
                        let (c, v) = events::pair(namespace, i % opts.tracker_pairs);
                        (Uuid::new_v4().to_string(), c, v)
                    })
                    .collect();
                let started = Instant::now();
                for chunk in events.chunks(UPSERT_BATCH) {
                    sqlx::query(PG_BATCH)
                        .bind(chunk.iter().map(|e| e.0.clone()).collect::<Vec<_>>())
                        .bind(chunk.iter().map(|e| e.1).collect::<Vec<_>>())
                        .bind(chunk.iter().map(|e| e.2).collect::<Vec<_>>())
                        .bind(vec![now; chunk.len()])
                        .execute(&mut conn)
                        .await?;
                }
                rates.push(n as f64 / started.elapsed().as_secs_f64());
                let total: i64 = sqlx::query_scalar(
                    "SELECT coalesce(sum(frequency), 0)::bigint FROM ceiling_report",
                )
                .fetch_one(&mut conn)
                .await?;
                anyhow::ensure!(
                    total as u64 == n,
                    "the ceiling upsert counted {total}, not {n}"
                );
            }
            conn.close().await?;
            Ok(Summary::of(&rates))
        },
    )
    .await
}
