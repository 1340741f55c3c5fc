//! Coalesced acks for a consumer whose deliveries finish out of order (the sender).
//!
//! A quorum queue settles each `basic.ack` as a command in its log, so acking every delivery on
//! its own costs RabbitMQ far more than the message itself, and one multiple-ack for many
//! deliveries costs about as much as one ack. The sender's handlers
//! finish in any order, so a handler does not ack: it hands its finished delivery to the
//! `AckWindow`, which acks, a few milliseconds later, the longest run of finished deliveries
//! from the oldest one still open with one multiple-ack.
//!
//! A multiple-ack covers every delivery up to its tag, so the window must know every delivery
//! the consumer took (`taken`, in delivery order) and never acks past one whose handler is still
//! running. A finished delivery stuck behind such a one (a handler waiting for another's lease,
//! or for the database) is acked on its own once it has waited `HOLD`, so one slow handler does
//! not keep the prefetch full of finished work.
//!
//! What a crash costs: the deliveries finished but not yet acked come back. Each had already
//! published its outcome (or dead-lettered or parked its message) with a confirm, and a
//! redelivery of a finished reminder re-publishes the same outcome, which the tracker counts
//! once, so the window adds redeliveries, never sends or counts.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lapin::Acker;
use lapin::message::Delivery;
use lapin::options::BasicAckOptions;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::answered;

/// How long a finished delivery waits for later ones to finish and share its ack.
pub const LINGER: Duration = Duration::from_millis(5);
/// How long a finished delivery waits behind an earlier one still being handled before it is
/// acked on its own.
pub const HOLD: Duration = Duration::from_millis(100);

#[derive(Default)]
pub struct AckWindow {
    open: Mutex<BTreeMap<u64, Option<Finished>>>,
    finished: Notify,
}

struct Finished {
    acker: Acker,
    at: Instant,
}

/// What one pass settled (`run` looks again while `waiting` is not 0).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Flushed {
    /// Deliveries covered by the pass's multiple-ack.
    pub in_run: usize,
    /// Deliveries acked on their own.
    pub alone: usize,
    /// Finished deliveries still waiting.
    pub waiting: usize,
}

impl AckWindow {
    /// Registers a delivery the consumer handed out, before its handler starts. Deliveries
    /// must be registered in the order the consumer yields them.
    pub fn taken(&self, delivery: &Delivery) {
        self.open
            .lock()
            .expect("lock")
            .insert(delivery.delivery_tag, None);
    }

    /// The handler is done with `delivery`: it is to be acked.
    pub fn finished(&self, delivery: &Delivery) {
        self.open.lock().expect("lock").insert(
            delivery.delivery_tag,
            Some(Finished {
                acker: delivery.acker.clone(),
                at: Instant::now(),
            }),
        );
        self.finished.notify_one();
    }

    /// The handler settled `delivery` itself (a nack, already answered by the broker): the
    /// window must no longer wait for it.
    pub fn settled_elsewhere(&self, delivery: &Delivery) {
        self.open
            .lock()
            .expect("lock")
            .remove(&delivery.delivery_tag);
        self.finished.notify_one();
    }

    /// Acks what is finished until `stop`, then once more for everything finished (the
    /// deliveries of handlers that never finished stay unacked and come back).
    pub async fn run(&self, stop: &CancellationToken) -> Result<(), lapin::Error> {
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = self.finished.notified() => {}
            }
            // Gather for a moment, then ack; while finished deliveries wait behind a running
            // handler, look again every `LINGER` until they are acked one way or the other.
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(LINGER) => {}
                }
                if self.flush(Instant::now(), HOLD).await?.waiting == 0 {
                    break;
                }
            }
        }
        self.flush(Instant::now(), Duration::ZERO).await.map(|_| ())
    }

    /// Acks the finished run from the oldest open delivery with one multiple-ack, and each
    /// finished delivery behind a running one that has waited at least `hold`.
    pub async fn flush(&self, now: Instant, hold: Duration) -> Result<Flushed, lapin::Error> {
        let (run, alone, waiting) = {
            let mut open = self.open.lock().expect("lock");
            let mut run = Vec::new();
            while let Some(entry) = open.first_entry() {
                if entry.get().is_none() {
                    break;
                }
                run.push(entry.remove().expect("checked above"));
            }
            let alone: Vec<Finished> = open
                .extract_if(.., |_, f| {
                    f.as_ref()
                        .is_some_and(|f| now.saturating_duration_since(f.at) >= hold)
                })
                .filter_map(|(_, f)| f)
                .collect();
            let waiting = open.values().filter(|f| f.is_some()).count();
            (run, alone, waiting)
        };
        if let Some(last) = run.last() {
            answered(
                "acking finished deliveries",
                last.acker.ack(BasicAckOptions {
                    multiple: run.len() > 1,
                }),
            )
            .await?;
        }
        for f in &alone {
            answered(
                "acking a finished delivery",
                f.acker.ack(BasicAckOptions::default()),
            )
            .await?;
        }
        Ok(Flushed {
            in_run: run.len(),
            alone: alone.len(),
            waiting,
        })
    }
}
