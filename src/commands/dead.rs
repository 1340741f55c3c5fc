//! `reminder dead list | replay`: the dead-letter queue for operators. `list` shows what is there
//! and why; `replay` publishes messages back to their original routing key (after the bug or the
//! data is fixed) and removes them from the dead-letter queue only once the broker confirmed the
//! replay.

use std::time::Duration;

use anyhow::Context as _;
use clap::Subcommand;
use lapin::message::BasicGetMessage;
use lapin::options::{BasicAckOptions, BasicGetOptions};
use lapin::types::AMQPValue;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::broker::delivery::{
    DEAD_AT_HEADER, DeliveryExt, ERROR_CODE_HEADER, ERROR_HEADER, QUEUE_HEADER, ROUTING_KEY_HEADER,
    amqp_text, printable,
};
use crate::broker::publisher::{Outgoing, Publisher, without_headers};
use crate::broker::{Broker, Topology};
use crate::configuration::Settings;
use crate::domain::events::{
    CONSENT_CHANGED, MAINTENANCE_DUE, MESSAGE_FAILED, MESSAGE_SENT, MESSAGE_STATUS, REPLY_RECEIVED,
};

#[derive(Debug, Subcommand)]
pub enum DeadCommand {
    /// List what is in the dead-letter queue, and why (messages stay in the queue).
    List {
        /// Show at most this many.
        #[arg(long, default_value_t = 100, value_name = "N")]
        limit: u32,
    },
    /// Move dead letters back to their original routing key to be processed again.
    Replay {
        /// Replay at most this many (default: all).
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
    },
}

/// One dead letter, as `dead list` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub event_id: String,
    pub routing_key: String,
    pub queue: Option<String>,
    pub reason: String,
    pub dead_at: Option<String>,
}

impl DeadLetter {
    fn from_delivery(d: &lapin::message::Delivery) -> DeadLetter {
        let death = first_death(d);
        let reason = match (d.header(ERROR_HEADER), d.header(ERROR_CODE_HEADER)) {
            (Some(text), Some(code)) => format!("{code}: {text}"),
            (Some(text), None) => text,
            _ => match &death {
                Some((reason, _, _)) if reason == "delivery_limit" => {
                    "delivery_limit: failed on every delivery until the queue's delivery limit"
                        .into()
                }
                Some((reason, _, _)) => reason.clone(),
                None => "unknown".into(),
            },
        };
        let event_id = match d.id_hint() {
            hint if hint != "-" => hint,
            _ => body_field(&d.data, "id").map_or_else(|| "-".into(), |id| printable(&id)),
        };
        DeadLetter {
            event_id,
            routing_key: original_routing_key(d).unwrap_or_else(|| "-".into()),
            queue: d
                .header(QUEUE_HEADER)
                .or_else(|| death.as_ref().map(|(_, q, _)| q.clone())),
            reason,
            dead_at: d.header(DEAD_AT_HEADER),
        }
    }
}

/// `(reason, queue, routing key)` of the first `x-death` entry RabbitMQ added.
fn first_death(d: &lapin::message::Delivery) -> Option<(String, String, String)> {
    let headers = d.properties.headers().as_ref()?;
    let AMQPValue::FieldArray(deaths) = headers.inner().get("x-death")? else {
        return None;
    };
    let AMQPValue::FieldTable(first) = deaths.as_slice().first()? else {
        return None;
    };
    let text = |k: &str| first.inner().get(k).and_then(amqp_text).unwrap_or_default();
    let key = match first.inner().get("routing-keys") {
        Some(AMQPValue::FieldArray(keys)) => keys.as_slice().first().and_then(amqp_text),
        _ => None,
    }
    .unwrap_or_default();
    Some((text("reason"), text("queue"), key))
}

/// The event types reminder's queues are bound to; each is its own routing key.
const ROUTED_TYPES: &[&str] = &[
    MAINTENANCE_DUE,
    MESSAGE_SENT,
    MESSAGE_FAILED,
    MESSAGE_STATUS,
    REPLY_RECEIVED,
    CONSENT_CHANGED,
];

/// The routing key a dead letter is replayed with: the first of what it carries that a queue
/// is bound to. A reminder parked in a delay queue and later dead-lettered by the broker
/// carries only queue names (the default exchange's keys) in its `x-death`, so its event type
/// (the CloudEvents `ce-type` header or the body's `type`) is the last resort; `None` when
/// nothing names a routed type, as replaying it would route it nowhere.
fn original_routing_key(d: &lapin::message::Delivery) -> Option<String> {
    let mut candidates: Vec<String> = Vec::new();
    candidates.extend(d.header(ROUTING_KEY_HEADER));
    candidates.extend(death_routing_keys(d));
    candidates.push(d.routing_key.to_string());
    candidates.extend(d.header("ce-type"));
    candidates.extend(body_type(&d.data));
    pick_routing_key(candidates)
}

fn pick_routing_key(candidates: impl IntoIterator<Item = String>) -> Option<String> {
    candidates
        .into_iter()
        .find(|k| ROUTED_TYPES.contains(&k.as_str()))
}

/// Every routing key of every `x-death` entry, oldest death last as RabbitMQ orders them.
fn death_routing_keys(d: &lapin::message::Delivery) -> Vec<String> {
    let Some(headers) = d.properties.headers().as_ref() else {
        return Vec::new();
    };
    let Some(AMQPValue::FieldArray(deaths)) = headers.inner().get("x-death") else {
        return Vec::new();
    };
    deaths
        .as_slice()
        .iter()
        .filter_map(|death| match death {
            AMQPValue::FieldTable(t) => match t.inner().get("routing-keys") {
                Some(AMQPValue::FieldArray(keys)) => Some(
                    keys.as_slice()
                        .iter()
                        .filter_map(amqp_text)
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            },
            _ => None,
        })
        .flatten()
        .collect()
}

/// The `type` of a structured-mode CloudEvent body.
fn body_type(body: &[u8]) -> Option<String> {
    body_field(body, "type")
}

/// A top-level string field of a JSON body (a structured-mode CloudEvent's `id` or `type`).
fn body_field(body: &[u8], field: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.get(field)?.as_str().map(str::to_string)
}

const BOOKKEEPING_HEADERS: &[&str] = &[
    ERROR_HEADER,
    ERROR_CODE_HEADER,
    QUEUE_HEADER,
    ROUTING_KEY_HEADER,
    DEAD_AT_HEADER,
    crate::broker::delivery::ROLE_HEADER,
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
    "x-delivery-count",
];

/// Reads up to `limit` dead letters without removing them (they return to the queue when the
/// channel closes).
pub async fn list(
    broker: &Broker,
    shutdown: &CancellationToken,
    limit: u32,
) -> anyhow::Result<Vec<DeadLetter>> {
    let channel = connected_channel(broker, shutdown).await?;
    let topology = Topology::new(broker.settings());
    topology.declare(&channel).await?;
    let mut out = Vec::new();
    while out.len() < limit as usize {
        let Some(message) = get(&channel, &topology).await? else {
            break;
        };
        out.push(DeadLetter::from_delivery(&message.delivery));
    }
    channel.close(200, "listed".into()).await.ok();
    Ok(out)
}

/// What one `dead replay` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Replayed {
    /// Published back with their routing key and removed from the dead-letter queue.
    pub replayed: u64,
    /// Left in the dead-letter queue: nothing they carry names an event type a queue is bound to.
    pub unroutable: u64,
}

/// Publishes up to `limit` dead letters back to the events exchange with their original
/// routing key, acking each only after its replay is confirmed.
///
/// Each dead letter is replayed at most once per invocation: only as many messages as the
/// queue held when the replay began are taken from its head, so a message that fails again
/// and returns to the tail is not picked up a second time (without this, a still-invalid
/// message would be replayed forever). Unroutable ones are held unsettled until the end, so
/// the next one can be read, and then go back to the queue untouched.
pub async fn replay(
    broker: &Broker,
    shutdown: &CancellationToken,
    limit: Option<u32>,
) -> anyhow::Result<Replayed> {
    let channel = connected_channel(broker, shutdown).await?;
    let topology = Topology::new(broker.settings());
    topology.declare(&channel).await?;
    let publisher = Publisher::open(broker, shutdown).await?;
    let mut done = Replayed::default();
    let mut held = Vec::new();
    let mut remaining: Option<u64> = None;
    while limit.is_none_or(|l| done.replayed < l as u64) && remaining != Some(0) {
        let Some(message) = get(&channel, &topology).await? else {
            break;
        };
        // The broker says how many messages follow this one: on the first read, that fixes
        // how many this replay may take.
        let left = remaining.get_or_insert(u64::from(message.message_count) + 1);
        *left -= 1;
        let d = &message.delivery;
        let Some(routing_key) = original_routing_key(d) else {
            tracing::warn!(event_id = %d.id_hint(), "a dead letter names no routed event type; left in the queue");
            done.unroutable += 1;
            held.push(message);
            continue;
        };
        publisher
            .publish(Outgoing {
                exchange: topology.exchange.clone(),
                routing_key: routing_key.clone(),
                body: d.data.clone(),
                properties: without_headers(d.properties.clone(), BOOKKEEPING_HEADERS),
            })
            .await
            .with_context(|| format!("replaying {} to {routing_key}", d.id_hint()))?;
        d.acker.ack(BasicAckOptions::default()).await?;
        done.replayed += 1;
    }
    publisher.close().await;
    // Closing the channel returns the held (unroutable) messages to the queue.
    channel.close(200, "replayed".into()).await.ok();
    drop(held);
    Ok(done)
}

async fn get(
    channel: &lapin::Channel,
    topology: &Topology,
) -> anyhow::Result<Option<BasicGetMessage>> {
    Ok(channel
        .basic_get(
            topology.dead_queue.as_str().into(),
            BasicGetOptions { no_ack: false },
        )
        .await?)
}

async fn connected_channel(
    broker: &Broker,
    shutdown: &CancellationToken,
) -> anyhow::Result<lapin::Channel> {
    tokio::select! {
        c = broker.channel(shutdown) => c.context("shutting down"),
        _ = tokio::time::sleep(Duration::from_secs(30)) => anyhow::bail!("cannot reach RabbitMQ (amqp.url)"),
    }
}

pub async fn run(settings: Settings, command: DeadCommand) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let broker = Broker::start(&settings.amqp, "reminder dead", shutdown.clone());
    let result = match command {
        DeadCommand::List { limit } => {
            let letters = list(&broker, &shutdown, limit).await?;
            if letters.is_empty() {
                println!("the dead-letter queue is empty");
            }
            for l in &letters {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    l.event_id,
                    l.routing_key,
                    l.queue.as_deref().unwrap_or("-"),
                    l.dead_at.as_deref().unwrap_or("-"),
                    l.reason
                );
            }
            Ok(())
        }
        DeadCommand::Replay { limit } => {
            let done = replay(&broker, &shutdown, limit).await?;
            println!("replayed {} dead letter(s)", done.replayed);
            if done.unroutable > 0 {
                println!(
                    "left {} in the queue: they name no event type reminder routes",
                    done.unroutable
                );
            }
            Ok(())
        }
    };
    shutdown.cancel();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parked_reminder_dead_lettered_later_is_replayed_under_its_event_type() {
        // Parked in a delay queue, then dead-lettered by the broker: only queue names as keys.
        let keys = [
            "rem.sender".to_string(),
            "rem.sender.retry.1000ms".to_string(),
            "rem.sender".to_string(),
            "maintenance.due".to_string(),
        ];
        assert_eq!(pick_routing_key(keys).as_deref(), Some("maintenance.due"));
        assert_eq!(
            body_type(br#"{"specversion":"1.0","type":"message.sent","id":"x"}"#).as_deref(),
            Some("message.sent")
        );
        assert_eq!(pick_routing_key(["rem.sender".to_string()]), None);
    }
}
