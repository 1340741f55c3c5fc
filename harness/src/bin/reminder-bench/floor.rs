//! The least CPU one reminder's required work costs this machine: each part every reminder
//! needs, timed alone at its own best, as the whole machine's CPU time
//! (`/proc/stat`) over the units done. e2e prints the sum beside its own cost per reminder,
//! and the rate that sum would allow on all of this machine's cores as a ratio to the publish
//! ceiling: how high this machine lets that ratio go, whatever the code does.
//!
//! The parts: two publishes with confirms (`maintenance.due`, then `message.sent`) and two
//! consumes with acks, at the raw ceilings' own cost; the sender's claim and recorded send
//! through its group commits; the tracker's statement for one event of a new pair (as every
//! e2e reminder is); one provider call, with the mock Cloud API in this process answering it.
//! Left out, so the sum stays a floor: the producer's scan, parsing and rendering events, the
//! runtime's scheduling, logging.
//!
//! The sender and tracker scenarios use the same parts for their "alone" rows.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt as _;
use uuid::Uuid;

use crate::ceilings::{Ceilings, Costed};
use crate::env::BenchEnv;
use crate::opts::Opts;
use crate::report::{Row, Target, Unit};
use reminder::db::dispatch::DispatchWrites;
use reminder::domain::events::{MESSAGE_SENT, outcome_id};
use reminder::domain::webhook::DeliveryStatus;
use reminder::domain::{
    CountryCode, MaintenanceDue, MessageOutcome, MessageStatus, OutcomeStatus, PhoneNumber,
};
use reminder::sender::providers::{OutboundMessage, WhatsappProvider};
use reminder_harness::resources::{self, CpuTimes};

/// A part timed alone: its rate, and the whole machine's CPU microseconds per unit.
pub type Part = Costed;

fn part(n: u64, started: Instant, cpu: Option<CpuTimes>) -> Part {
    let rate = n as f64 / started.elapsed().as_secs_f64();
    Part {
        rate,
        machine_us: resources::machine_us_per_unit(cpu, n),
    }
}

/// `n` provider calls, `concurrency` at once: the same client and request bodies the sender
/// uses, no database or broker.
pub async fn provider_calls(
    provider: &Arc<dyn WhatsappProvider>,
    n: u64,
    concurrency: usize,
) -> anyhow::Result<Part> {
    let country = CountryCode::parse("62")?;
    let messages: Vec<OutboundMessage> = (0..n).map(|i| outbound(i, &country)).collect();
    let cpu = CpuTimes::now();
    let started = Instant::now();
    let refused = futures::stream::iter(messages)
        .map(|message| {
            let provider = provider.clone();
            async move { provider.send(&message).await.is_err() }
        })
        .buffer_unordered(concurrency)
        .filter(|refused| std::future::ready(*refused))
        .count()
        .await;
    let p = part(n, started, cpu);
    anyhow::ensure!(refused == 0, "the mock refused {refused} provider calls");
    Ok(p)
}

/// What the sender asks PostgreSQL for `n` reminders that go out (no rate limit, so no look-up
/// first): claim the attempt, record the answer, both through the shared statements, with
/// `concurrency` reminders at once.
pub async fn sender_statements(
    pool: &sqlx::PgPool,
    n: u64,
    concurrency: usize,
) -> anyhow::Result<Part> {
    let country = CountryCode::parse("62")?;
    let writes = DispatchWrites::start(pool, "cloud_api", Duration::from_secs(40), 5);
    let reminders: Vec<(String, MaintenanceDue)> =
        (0..n).map(|i| due_reminder(i, &country)).collect();
    let cpu = CpuTimes::now();
    let started = Instant::now();
    let results: Vec<Result<(), sqlx::Error>> = futures::stream::iter(&reminders)
        .map(|(id, due)| {
            let writes = &writes;
            async move {
                writes.claim(id, due).await?;
                writes.record_sent(id, "wamid.bench", Utc::now()).await?;
                Ok(())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let p = part(n, started, cpu);
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    Ok(p)
}

/// The tracker's statement over `outcomes`, `batch_size` per call and `in_flight` calls at
/// once, each on its own connection, as the tracker runs it.
pub async fn tracker_statement(
    pool: &sqlx::PgPool,
    outcomes: &[MessageOutcome],
    batch_size: usize,
    in_flight: usize,
) -> anyhow::Result<Part> {
    in_batches(outcomes, batch_size, in_flight, |chunk| async move {
        reminder::db::tracking::apply_batch(pool, chunk)
            .await
            .map(drop)
    })
    .await
}

/// The tracker's statement for `statuses`, batched as [`tracker_statement`]'s, as the tracker
/// runs it for `message.status` events.
pub async fn status_statement(
    pool: &sqlx::PgPool,
    statuses: &[MessageStatus],
    batch_size: usize,
    in_flight: usize,
) -> anyhow::Result<Part> {
    in_batches(statuses, batch_size, in_flight, |chunk| async move {
        reminder::db::hearing::record_statuses(pool, chunk)
            .await
            .map(drop)
    })
    .await
}

/// Runs `statement` over `items`, `batch_size` per call and `in_flight` calls at once, timed.
async fn in_batches<'a, T, F, Fut>(
    items: &'a [T],
    batch_size: usize,
    in_flight: usize,
    statement: F,
) -> anyhow::Result<Part>
where
    F: Fn(&'a [T]) -> Fut,
    Fut: std::future::Future<Output = Result<(), sqlx::Error>>,
{
    let chunks: Vec<&[T]> = items.chunks(batch_size).collect();
    let next = AtomicUsize::new(0);
    let cpu = CpuTimes::now();
    let started = Instant::now();
    futures::future::try_join_all((0..in_flight).map(|_| async {
        while let Some(chunk) = chunks.get(next.fetch_add(1, Ordering::Relaxed)) {
            statement(chunk).await?;
        }
        Ok::<_, sqlx::Error>(())
    }))
    .await?;
    Ok(part(items.len() as u64, started, cpu))
}

/// `n` fresh `delivered` statuses, each of its own message, as the webhook role publishes them.
pub fn delivered_statuses(n: u64) -> Vec<MessageStatus> {
    let now = Utc::now();
    (0..n)
        .map(|i| {
            let reminder_id = Uuid::new_v4().to_string();
            MessageStatus {
                event_id: Uuid::new_v4().to_string(),
                provider: "cloud_api".into(),
                provider_message_id: format!("wamid.floor-{reminder_id}"),
                status: DeliveryStatus::Delivered,
                reminder_id: Some(reminder_id),
                recipient: Some(format!("62812{:08}", i % 100_000_000)),
                at: now,
                error_code: None,
                error: None,
                billable: Some(true),
                pricing_category: Some("utility".into()),
            }
        })
        .collect()
}

/// `n` fresh `message.sent` outcomes over `pairs` recipients: event `i` is for recipient
/// `i % pairs`, whose (customer, vehicle) is `pair(i % pairs)`.
pub fn sent_outcomes(
    n: u64,
    pairs: u64,
    pair: impl Fn(u64) -> (Uuid, Uuid),
) -> Vec<MessageOutcome> {
    let now = Utc::now();
    (0..n)
        .map(|i| {
            let p = i % pairs;
            let (c, v) = pair(p);
            let reminder_id = Uuid::new_v4().to_string();
            MessageOutcome {
                event_id: outcome_id(MESSAGE_SENT, &reminder_id),
                reminder_id,
                customer_id: c,
                vehicle_id: v,
                status: OutcomeStatus::Sent,
                provider: "cloud_api".into(),
                provider_message_id: Some(format!("wamid.bench{i}")),
                error_code: None,
                error: None,
                attempts: 1,
                at: now,
                phone: Some(format!("62812{:08}", p % 100_000_000)),
                customer_name: Some(format!("Customer {p}")),
                plate_number: Some(format!("B {} XY", p % 10_000)),
            }
        })
        .collect()
}

/// The message the sender would send for reminder `i`.
pub fn outbound(i: u64, country: &CountryCode) -> OutboundMessage {
    let due = Utc::now().date_naive();
    OutboundMessage {
        reminder_id: Uuid::new_v4().to_string(),
        to: PhoneNumber::parse(&format!("0812{:08}", i % 100_000_000), country)
            .expect("a valid number"),
        customer_name: format!("Customer {i}"),
        plate_number: format!("B {} XY", i % 10_000),
        vehicle: Some("Honda Vario 125".into()),
        due_date: due,
        due_date_text: due.to_string(),
        locale: "id".into(),
        text: "Halo".into(),
    }
}

fn due_reminder(i: u64, country: &CountryCode) -> (String, MaintenanceDue) {
    let due = MaintenanceDue {
        customer_id: Uuid::new_v4(),
        vehicle_id: Uuid::new_v4(),
        customer_name: format!("Customer {i}"),
        phone: PhoneNumber::parse(&format!("0812{:08}", i % 100_000_000), country)
            .expect("a valid number"),
        plate_number: format!("B {} XY", i % 10_000),
        vehicle: None,
        due_date: Utc::now().date_naive(),
        locale: None,
    };
    (Uuid::new_v4().to_string(), due)
}

/// One round's floor: each part's CPU per unit, in microseconds of the whole machine.
#[derive(Debug, Clone, Copy)]
pub struct Floor {
    pub publish: f64,
    pub consume: f64,
    pub sender: f64,
    pub tracker: f64,
    pub provider: f64,
}

impl Floor {
    /// Per reminder: two publishes, two consumes, and one of each other part.
    pub fn per_reminder(&self) -> f64 {
        2.0 * self.publish + 2.0 * self.consume + self.sender + self.tracker + self.provider
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Times the parts other than the publish (which the round's ceiling already timed),
/// while the scenario's own work is idle: the consume ceiling, then the database parts on a
/// database of their own, then the provider calls. `None` where `/proc` cannot be read.
pub async fn measure(
    env: &BenchEnv,
    o: &Opts,
    ceilings: &Ceilings,
    publish: Costed,
    provider: &Arc<dyn WhatsappProvider>,
    round: usize,
) -> anyhow::Result<Option<Floor>> {
    let consume = ceilings.consume_now_costed().await?;
    let mut db = env.settings.database.clone();
    let url = env.extra_database(&format!("floor{round}"));
    db.url = url.clone();
    let pool = reminder::db::migrate(&db).await?;
    let n = o.floor_units;
    let sender = sender_statements(&pool, n, o.e2e_concurrency).await?;
    let tracker_settings = &env.settings.tracker;
    let outcomes = sent_outcomes(n, n, |_| (Uuid::new_v4(), Uuid::new_v4()));
    let tracker = tracker_statement(
        &pool,
        &outcomes,
        tracker_settings.batch_size,
        tracker_settings.batches_in_flight,
    )
    .await?;
    pool.close().await;
    env.drop_database_now(&url).await;
    let calls = provider_calls(provider, n, o.e2e_concurrency).await?;
    let (Some(publish), Some(consume), Some(sender), Some(tracker), Some(provider)) = (
        publish.machine_us,
        consume.machine_us,
        sender.machine_us,
        tracker.machine_us,
        calls.machine_us,
    ) else {
        return Ok(None);
    };
    Ok(Some(Floor {
        publish,
        consume,
        sender,
        tracker,
        provider,
    }))
}

/// What a floor allows, round by round: the floor in CPU microseconds per unit, the most this
/// machine's cores carry at that cost over the ceiling of the round, and the round's
/// throughput over that most.
#[derive(Debug, Default)]
pub struct Bound {
    floor_us: Vec<f64>,
    allowed: Vec<f64>,
    efficiency: Vec<f64>,
}

impl Bound {
    pub fn push(&mut self, floor_us: f64, ceiling: f64, throughput: f64) {
        let most = cores() as f64 * 1e6 / floor_us;
        self.floor_us.push(floor_us);
        self.allowed.push(most / ceiling);
        self.efficiency.push(throughput / most);
    }

    pub fn is_empty(&self) -> bool {
        self.floor_us.is_empty()
    }

    /// The floor itself, named `name`. Call only when not empty.
    pub fn floor_row(&self, name: &str) -> Row {
        Row::of(name, &self.floor_us, Unit::Us)
    }

    /// What the floor allows over `ceiling`, and `throughput` over that, the median of the
    /// rounds judged against `target`. Call only when not empty.
    pub fn ratio_rows(&self, ceiling: &str, throughput: &str, target: f64) -> [Row; 2] {
        [
            Row::of(
                format!("floor: the most {} cores allow / {ceiling}", cores()),
                &self.allowed,
                Unit::Ratio,
            ),
            Row::of(
                format!("{throughput} / the most its floor allows"),
                &self.efficiency,
                Unit::Ratio,
            )
            .target(Target::AtLeast(target)),
        ]
    }

    /// The floor's row, then the two ratios; without samples, a row saying the target could
    /// not be judged, which counts as missed.
    pub fn rows(&self, floor: &str, ceiling: &str, throughput: &str, target: f64) -> Vec<Row> {
        if self.is_empty() {
            return vec![unjudged(throughput, target)];
        }
        let mut rows = vec![self.floor_row(floor)];
        rows.extend(self.ratio_rows(ceiling, throughput, target));
        rows
    }
}

/// e2e's floors, part by part, and what they allow.
#[derive(Debug, Default)]
pub struct FloorFigures {
    floors: Vec<Floor>,
    bound: Bound,
}

impl FloorFigures {
    pub fn push(&mut self, floor: Floor, publish_ceiling: f64, throughput: f64) {
        self.floors.push(floor);
        self.bound
            .push(floor.per_reminder(), publish_ceiling, throughput);
    }

    /// The floor, its parts, then the two ratios, the last judged against `target`; without
    /// samples, a row that counts as missed.
    pub fn rows(&self, target: f64) -> Vec<Row> {
        if self.bound.is_empty() {
            return vec![unjudged("burst throughput", target)];
        }
        let mut rows = vec![
            self.bound
                .floor_row("floor: CPU per reminder of its required parts, each alone"),
        ];
        let part = |name: &str, f: fn(&Floor) -> f64| {
            let samples: Vec<f64> = self.floors.iter().map(f).collect();
            Row::of(format!("  floor part: {name}"), &samples, Unit::Us)
        };
        rows.extend([
            part("a publish with confirm (2 a reminder)", |f| f.publish),
            part("a consume and ack (2 a reminder)", |f| f.consume),
            part("the sender's claim and recorded send", |f| f.sender),
            part("the tracker's statement, one new pair", |f| f.tracker),
            part("a provider call, mock Cloud API answering", |f| f.provider),
        ]);
        rows.extend(self.bound.ratio_rows(
            "the publish ceiling of its round",
            "burst throughput",
            target,
        ));
        rows
    }
}

/// Where `/proc` cannot be read there is no floor and no ratio to judge: a row that says so
/// and is missed.
pub fn unjudged(throughput: &str, target: f64) -> Row {
    Row::of(
        format!("{throughput} / the most its floor allows (no floor: /proc unreadable)"),
        &[f64::NAN],
        Unit::Ratio,
    )
    .target(Target::AtLeast(target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_floor_counts_two_publishes_and_two_consumes_a_reminder_and_bounds_the_ratio() {
        let floor = Floor {
            publish: 40.0,
            consume: 15.0,
            sender: 28.0,
            tracker: 26.0,
            provider: 47.0,
        };
        assert_eq!(floor.per_reminder(), 211.0);
        // What 211 us a reminder lets this machine's cores carry.
        let most = cores() as f64 * 1e6 / 211.0;

        let mut figures = FloorFigures::default();
        figures.push(floor, most * 4.0, most / 2.0);
        assert_eq!(figures.bound.floor_us, vec![211.0]);
        assert_eq!(figures.bound.allowed, vec![0.25]);
        assert_eq!(figures.bound.efficiency, vec![0.5]);
    }

    #[test]
    fn the_throughput_is_judged_against_what_its_floor_allows_and_no_floor_is_a_miss() {
        let most = cores() as f64 * 1e6 / 100.0;
        let mut bound = Bound::default();
        bound.push(100.0, most, most * 0.9);

        let judged = |target| bound.rows("floor", "ceiling", "events/s", target);
        assert_eq!(judged(0.85).last().and_then(Row::met), Some(true));
        assert_eq!(judged(0.95).last().and_then(Row::met), Some(false));
        let without = Bound::default().rows("floor", "ceiling", "events/s", 0.85);
        assert_eq!(without.len(), 1);
        assert_eq!(without[0].met(), Some(false));
    }
}
