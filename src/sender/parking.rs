//! Parking a message until its reminder's next attempt is due: the retry delays (exponential,
//! jittered, never shorter than the provider asks) and the delay queues they park in, one per
//! level of a fixed ladder, each expiring its messages back into the sender queue.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use lapin::Channel;
use lapin::message::Delivery;
use lapin::options::QueueDeclareOptions;
use lapin::types::AMQPValue;

use super::Sender;
use crate::broker::publisher::Outgoing;
use crate::broker::topology::long_string;
use crate::broker::{PublishError, Publisher, Topology, answered};

/// The delay queues declared on the current session's channels (declared again on a new one
/// when first used).
#[derive(Default)]
pub(super) struct DeclaredDelays(Mutex<HashSet<u128>>);

impl DeclaredDelays {
    pub(super) fn clear(&self) {
        self.0.lock().expect("lock").clear();
    }
    fn contains(&self, level: Duration) -> bool {
        self.0.lock().expect("lock").contains(&level.as_millis())
    }
    fn insert(&self, level: Duration) {
        self.0.lock().expect("lock").insert(level.as_millis());
    }
}

/// Declares the delay queue for `delay` (`Topology::retry_queue`): a work queue whose messages
/// expire after `delay` and are dead-lettered back into the sender queue.
pub async fn declare_retry_queue(
    topology: &Topology,
    channel: &Channel,
    delay: Duration,
) -> lapin::Result<String> {
    let name = topology.retry_queue(delay);
    let mut args = topology.work_arguments();
    args.insert(
        "x-message-ttl".into(),
        AMQPValue::LongLongInt(delay.as_millis() as i64),
    );
    args.insert("x-dead-letter-exchange".into(), long_string(""));
    args.insert(
        "x-dead-letter-routing-key".into(),
        long_string(&topology.sender_queue),
    );
    channel
        .queue_declare(name.as_str().into(), QueueDeclareOptions::durable(), args)
        .await?;
    Ok(name)
}

impl Sender {
    /// The wait before retry number `retry`: exponential (`sender.retry_initial_ms` doubling up
    /// to `sender.retry_max_ms`) with jitter (75–100 %) so a burst of failures does not come
    /// back as a burst, and never shorter than the provider's `Retry-After`.
    pub(super) fn backoff(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let level = self.ctx.settings.sender.retry_delay(retry);
        let jittered = level.mul_f64(rand::random_range(0.75..=1.0));
        retry_after.map_or(jittered, |wanted| jittered.max(wanted))
    }

    /// The delay queue a wait of `wait` parks in: the shortest level of the fixed ladder
    /// (`retry_initial_ms` doubling up to `retry_max_ms`) that covers it, so the number of delay
    /// queues stays small whatever the provider asks. A wait beyond the top level comes back
    /// early and is parked again for the rest (see `defer`).
    fn level_for(&self, wait: Duration) -> Duration {
        let s = &self.ctx.settings.sender;
        let top = Duration::from_millis(s.retry_max_ms);
        (1..=64)
            .map(|n| s.retry_delay(n))
            .find(|level| *level >= wait || *level >= top)
            .unwrap_or(top)
    }

    /// Publishes the message to the delay queue covering `wait`, with a per-message expiration
    /// of exactly `wait` (at most the level); the queue dead-letters it back to the sender queue
    /// when it expires. Expiry happens at the head of a queue only, so a message can wait behind
    /// a longer one of its level, never behind one of a longer level.
    pub(super) async fn park(
        &self,
        publisher: &Publisher,
        delivery: &Delivery,
        wait: Duration,
    ) -> Result<(), PublishError> {
        let level = self.level_for(wait);
        let queue = self.topology.retry_queue(level);
        let needs_declare = !self.declared_delays.contains(level);
        if needs_declare {
            answered(
                "declaring a retry queue",
                declare_retry_queue(&self.topology, publisher.channel(), level),
            )
            .await?;
            self.declared_delays.insert(level);
        }
        let expire = wait.min(level);
        let properties = delivery
            .properties
            .clone()
            .with_expiration(expire.as_millis().to_string().into())
            .with_delivery_mode(2);
        publisher
            .publish(Outgoing {
                exchange: String::new(),
                routing_key: queue,
                body: delivery.data.clone(),
                properties,
            })
            .await
    }
}
