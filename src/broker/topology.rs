//! The exchanges and queues of the reminder pipeline, declared idempotently by every role at
//! start-up so processes can start in any order.
//!
//! ```text
//!  {exchange} (topic) --maintenance.due--> {prefix}sender --(rejected / delivery limit)--+
//!                     --message.sent----> {prefix}tracker --(rejected / delivery limit)--+
//!                     --message.failed--> {prefix}tracker                                |
//!  {exchange}.dead (fanout) <------------- and reminder's own dead-lettering with reason -+
//!        +--> {prefix}dead
//!  {prefix}sender.retry.{ms}ms  (TTL queues; expired messages go back to {prefix}sender)
//! ```
//!
//! Work queues are quorum queues with `x-dead-letter-strategy = at-least-once` (so a message is
//! never lost on its way to the dead-letter queue; it needs `x-overflow = reject-publish`) and a
//! `x-delivery-limit`, so a message that kills its consumer every time ends in the dead-letter
//! queue instead of looping.

use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};

use crate::configuration::{AmqpSettings, QueueType};
use crate::domain::consent::{CONSENT_CHANGED, REPLY_RECEIVED};
use crate::domain::events::{MAINTENANCE_DUE, MESSAGE_FAILED, MESSAGE_SENT};

pub const SENDER: &str = "sender";
pub const TRACKER: &str = "tracker";
pub const DEAD: &str = "dead";

/// Names and arguments derived from the `amqp` settings.
#[derive(Debug, Clone)]
pub struct Topology {
    pub exchange: String,
    pub dead_letter_exchange: String,
    pub sender_queue: String,
    pub tracker_queue: String,
    pub dead_queue: String,
    queue_prefix: String,
    queue_type: QueueType,
    delivery_limit: u32,
}

impl Topology {
    pub fn new(s: &AmqpSettings) -> Topology {
        Topology {
            exchange: s.exchange.clone(),
            dead_letter_exchange: s.dead_letter_exchange(),
            sender_queue: s.queue(SENDER),
            tracker_queue: s.queue(TRACKER),
            dead_queue: s.queue(DEAD),
            queue_prefix: s.queue_prefix.clone(),
            queue_type: s.queue_type,
            delivery_limit: s.delivery_limit,
        }
    }

    /// The queue that holds sender messages for `delay` before they go back to the sender
    /// (declared by the sender when it first parks a message there: `sender::parking`).
    pub fn retry_queue(&self, delay: Duration) -> String {
        format!("{}sender.retry.{}ms", self.queue_prefix, delay.as_millis())
    }

    /// Every queue this topology may have created, for clean-up in tests and tools.
    pub fn queue_names(&self) -> Vec<String> {
        vec![
            self.sender_queue.clone(),
            self.tracker_queue.clone(),
            self.dead_queue.clone(),
        ]
    }

    /// Declares exchanges, work queues, bindings and the dead-letter queue. Idempotent.
    pub async fn declare(&self, channel: &Channel) -> lapin::Result<()> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        channel
            .exchange_declare(
                self.exchange.as_str().into(),
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await?;
        channel
            .exchange_declare(
                self.dead_letter_exchange.as_str().into(),
                ExchangeKind::Fanout,
                durable,
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_declare(
                self.dead_queue.as_str().into(),
                QueueDeclareOptions::durable(),
                self.base_arguments(),
            )
            .await?;
        channel
            .queue_bind(
                self.dead_queue.as_str().into(),
                self.dead_letter_exchange.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        for (queue, keys) in [
            (&self.sender_queue, &[MAINTENANCE_DUE][..]),
            (
                &self.tracker_queue,
                &[
                    MESSAGE_SENT,
                    MESSAGE_FAILED,
                    REPLY_RECEIVED,
                    CONSENT_CHANGED,
                ][..],
            ),
        ] {
            let mut args = self.work_arguments();
            args.insert(
                "x-dead-letter-exchange".into(),
                long_string(&self.dead_letter_exchange),
            );
            channel
                .queue_declare(queue.as_str().into(), QueueDeclareOptions::durable(), args)
                .await?;
            for key in keys {
                channel
                    .queue_bind(
                        queue.as_str().into(),
                        self.exchange.as_str().into(),
                        (*key).into(),
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await?;
            }
        }
        Ok(())
    }

    fn base_arguments(&self) -> FieldTable {
        let mut args = FieldTable::default();
        if self.queue_type == QueueType::Quorum {
            args.insert("x-queue-type".into(), long_string("quorum"));
        }
        args
    }

    /// The arguments every work queue gets (the sender's delay queues too): on quorum queues,
    /// dead-lettering that cannot lose a message, and the delivery limit.
    pub fn work_arguments(&self) -> FieldTable {
        let mut args = self.base_arguments();
        if self.queue_type == QueueType::Quorum {
            args.insert(
                "x-dead-letter-strategy".into(),
                long_string("at-least-once"),
            );
            args.insert("x-overflow".into(), long_string("reject-publish"));
            args.insert(
                "x-delivery-limit".into(),
                AMQPValue::LongLongInt(self.delivery_limit as i64),
            );
        }
        args
    }
}

pub fn long_string(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
}

pub fn short(s: &str) -> ShortString {
    ShortString::from(s)
}
