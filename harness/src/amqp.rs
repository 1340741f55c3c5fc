//! A plain lapin client playing an upstream system or an operator: publishing with confirms
//! (one at a time, or many with a window in flight), queue depths, purges and draining a queue.
//! `Amqp` returns errors, for the benchmark and the soak; `TestAmqp` declares a test's topology
//! and panics instead, for tests.

use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, PublisherConfirm,
};
use reminder::broker::Topology;
use reminder::configuration::Settings;
use serde_json::Value;

/// A connection with one confirm-mode channel.
pub struct Amqp {
    pub conn: Connection,
    pub channel: Channel,
}

/// A connection to the first node of `urls` (one URL, or a cluster's comma-separated, as
/// `amqp.url` takes them) that answers.
pub async fn connect_any(urls: &str) -> anyhow::Result<Connection> {
    let mut last = None;
    for url in urls.split(',').map(str::trim).filter(|u| !u.is_empty()) {
        match Connection::connect(
            url,
            ConnectionProperties::default().with_connection_name("reminder-harness".into()),
        )
        .await
        {
            Ok(conn) => return Ok(conn),
            Err(e) => last = Some(e),
        }
    }
    Err(last.map_or_else(|| anyhow::anyhow!("no RabbitMQ URL"), anyhow::Error::from))
        .context("connecting to RabbitMQ")
}

impl Amqp {
    pub async fn connect(url: &str) -> anyhow::Result<Amqp> {
        let conn = connect_any(url).await?;
        let channel = conn.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Amqp { conn, channel })
    }

    pub async fn close(&self) {
        let _ = self.channel.close(200, "".into()).await;
        let _ = self.conn.close(200, "".into()).await;
    }

    /// Publishes a persistent, mandatory message; the returned confirm resolves when the
    /// broker has it.
    pub async fn publish_with(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> anyhow::Result<PublisherConfirm> {
        Ok(self
            .channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                body,
                properties.with_delivery_mode(2),
            )
            .await?)
    }

    /// Publishes a structured-mode CloudEvent with its id as the message id.
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        id: &str,
        body: &[u8],
    ) -> anyhow::Result<PublisherConfirm> {
        self.publish_with(exchange, routing_key, body, event_properties(id))
            .await
    }

    /// Publishes `(id, body)` events with a window of unconfirmed ones in flight; fails on any
    /// nack or return. Returns how many were confirmed.
    pub async fn publish_many<I>(
        &self,
        exchange: &str,
        routing_key: &str,
        messages: I,
        window: usize,
    ) -> anyhow::Result<u64>
    where
        I: IntoIterator<Item = (String, Vec<u8>)>,
    {
        let mut in_flight = futures::stream::FuturesUnordered::new();
        let mut confirmed = 0u64;
        for (id, body) in messages {
            while in_flight.len() >= window.max(1) {
                if let Some(c) = in_flight.next().await {
                    check_confirm(c)?;
                    confirmed += 1;
                }
            }
            in_flight.push(self.publish(exchange, routing_key, &id, &body).await?);
        }
        while let Some(c) = in_flight.next().await {
            check_confirm(c)?;
            confirmed += 1;
        }
        Ok(confirmed)
    }

    /// Messages ready in a queue.
    pub async fn depth(&self, queue: &str) -> anyhow::Result<u64> {
        let q = self
            .channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("inspecting queue {queue}"))?;
        Ok(q.message_count() as u64)
    }

    pub async fn purge(&self, queue: &str) -> anyhow::Result<()> {
        self.channel
            .queue_purge(queue.into(), QueuePurgeOptions::default())
            .await
            .with_context(|| format!("purging queue {queue}"))?;
        Ok(())
    }

    /// A consumer of `queue` on a channel of its own, with at most `prefetch` messages unacked;
    /// close the channel when done.
    pub async fn consume(
        &self,
        queue: &str,
        prefetch: u16,
    ) -> anyhow::Result<(Channel, lapin::Consumer)> {
        let channel = self.conn.create_channel().await?;
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await?;
        let consumer = channel
            .basic_consume(
                queue.into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("consuming from {queue}"))?;
        Ok((channel, consumer))
    }

    /// Takes everything currently in `queue`, acking it.
    pub async fn take_all(&self, queue: &str) -> anyhow::Result<Vec<Delivery>> {
        let mut out = Vec::new();
        while let Some(m) = self
            .channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: false })
            .await
            .with_context(|| format!("basic.get from {queue}"))?
        {
            m.delivery.acker.ack(BasicAckOptions::default()).await?;
            out.push(m.delivery);
        }
        Ok(out)
    }
}

/// What reminder's own events carry: the CloudEvents content type, persistence and the id.
pub fn event_properties(id: &str) -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/cloudevents+json".into())
        .with_delivery_mode(2)
        .with_message_id(id.into())
}

/// Ok for a plain ack; an error for a nack or a returned (unroutable) message.
pub fn check_confirm(c: lapin::Result<Confirmation>) -> anyhow::Result<()> {
    match c? {
        Confirmation::Ack(None) => Ok(()),
        other => bail!("the broker did not confirm a publish: {other:?}"),
    }
}

/// A text header of a delivery (long or short string), if present.
pub fn header_text(d: &Delivery, name: &str) -> Option<String> {
    d.properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(name))
        .and_then(|v| match v {
            AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
            AMQPValue::ShortString(s) => Some(s.to_string()),
            _ => None,
        })
}

pub fn long_string(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
}

/// A test's client: `Amqp` on the test's topology (declared on connect), panicking on errors.
pub struct TestAmqp {
    pub channel: Channel,
    pub topology: Topology,
    client: Amqp,
}

impl TestAmqp {
    pub async fn connect(settings: &Settings) -> TestAmqp {
        let client = Amqp::connect(&settings.amqp.url)
            .await
            .expect("RabbitMQ is up");
        let topology = Topology::new(&settings.amqp);
        topology
            .declare(&client.channel)
            .await
            .expect("the topology declares");
        TestAmqp {
            channel: client.channel.clone(),
            topology,
            client,
        }
    }

    /// Publishes raw bytes to the events exchange and waits for the confirm.
    pub async fn publish(&self, routing_key: &str, body: &[u8], properties: BasicProperties) {
        let confirm = self
            .client
            .publish_with(&self.topology.exchange, routing_key, body, properties)
            .await
            .expect("publish")
            .await
            .expect("confirm");
        assert!(confirm.is_ack());
    }

    /// Publishes a structured-mode CloudEvent, routed by its type.
    pub async fn publish_event(&self, event: &Value) {
        let ty = event["type"].as_str().expect("type");
        self.publish(
            ty,
            &serde_json::to_vec(event).expect("an event serializes"),
            BasicProperties::default().with_content_type("application/cloudevents+json".into()),
        )
        .await;
    }

    /// Takes everything currently in `queue` (acking it).
    pub async fn take_all(&self, queue: &str) -> Vec<Delivery> {
        self.client
            .take_all(queue)
            .await
            .unwrap_or_else(|e| panic!("draining {queue}: {e:#}"))
    }

    /// Takes everything currently in the dead-letter queue (acking it).
    pub async fn drain_dead(&self) -> Vec<Delivery> {
        self.take_all(&self.topology.dead_queue).await
    }

    /// Messages waiting in a queue (0 when it does not exist).
    pub async fn depth(&self, queue: &str) -> u32 {
        self.client.depth(queue).await.map_or(0, |n| n as u32)
    }
}
