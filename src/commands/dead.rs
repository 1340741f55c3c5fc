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
    amqp_text,
};
use crate::broker::publisher::{Outgoing, Publisher, without_headers};
use crate::broker::{Broker, Topology};
use crate::configuration::Settings;

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
        DeadLetter {
            event_id: d.id_hint(),
            routing_key: original_routing_key(d),
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

fn original_routing_key(d: &lapin::message::Delivery) -> String {
    d.header(ROUTING_KEY_HEADER)
        .or_else(|| first_death(d).map(|(_, _, k)| k).filter(|k| !k.is_empty()))
        .unwrap_or_else(|| d.routing_key.to_string())
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

/// Publishes up to `limit` dead letters back to the events exchange with their original
/// routing key, acking each only after its replay is confirmed. Returns how many.
pub async fn replay(
    broker: &Broker,
    shutdown: &CancellationToken,
    limit: Option<u32>,
) -> anyhow::Result<u64> {
    let channel = connected_channel(broker, shutdown).await?;
    let topology = Topology::new(broker.settings());
    topology.declare(&channel).await?;
    let publisher = Publisher::open(broker, shutdown).await?;
    let mut replayed = 0u64;
    while limit.is_none_or(|l| replayed < l as u64) {
        let Some(message) = get(&channel, &topology).await? else {
            break;
        };
        let d = &message.delivery;
        let routing_key = original_routing_key(d);
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
        replayed += 1;
    }
    publisher.close().await;
    channel.close(200, "replayed".into()).await.ok();
    Ok(replayed)
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
            let n = replay(&broker, &shutdown, limit).await?;
            println!("replayed {n} dead letter(s)");
            Ok(())
        }
    };
    shutdown.cancel();
    result
}
