//! Reading deliveries (headers as text, the raw message for CloudEvents parsing) and
//! dead-lettering one with its reason.
//!
//! RabbitMQ's own dead-lettering (reject, delivery limit) cannot add a header, so a message we
//! know is bad is published to the dead-letter exchange by us, with `x-reminder-error`, and only
//! acked once that publish is confirmed: nothing is dropped if we crash in between.

use lapin::message::Delivery;
use lapin::types::AMQPValue;

use super::publisher::{Outgoing, PublishError, Publisher, with_header};
use super::topology::Topology;
use crate::domain::RawMessage;

pub const ERROR_HEADER: &str = "x-reminder-error";
pub const ERROR_CODE_HEADER: &str = "x-reminder-error-code";
pub const ROLE_HEADER: &str = "x-reminder-role";
pub const QUEUE_HEADER: &str = "x-reminder-queue";
pub const ROUTING_KEY_HEADER: &str = "x-reminder-routing-key";
pub const DEAD_AT_HEADER: &str = "x-reminder-dead-at";

pub trait DeliveryExt {
    /// A header's value as text, whatever AMQP string or number type it came as.
    fn header(&self, name: &str) -> Option<String>;
    /// The id to put on log spans before the event is parsed.
    fn id_hint(&self) -> String;
    fn content_type(&self) -> Option<&str>;
}

impl DeliveryExt for Delivery {
    fn header(&self, name: &str) -> Option<String> {
        self.properties
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get(name))
            .and_then(amqp_text)
    }

    fn id_hint(&self) -> String {
        self.properties
            .message_id()
            .as_ref()
            .map(|s| printable(s.as_str()))
            .or_else(|| self.header("ce-id").map(|s| printable(&s)))
            .unwrap_or_else(|| "-".into())
    }

    fn content_type(&self) -> Option<&str> {
        self.properties.content_type().as_ref().map(|s| s.as_str())
    }
}

/// A publisher's id as it may be shown in a log line or a terminal: control and format
/// characters escaped (a newline or an ANSI escape in an id cannot forge a log line or recolour
/// a terminal) and at most 128 characters.
pub fn printable(id: &str) -> String {
    use unicode_general_category::{GeneralCategory, get_general_category};
    const MAX: usize = 128;
    let mut out = String::with_capacity(id.len().min(MAX));
    for (i, c) in id.chars().enumerate() {
        if i == MAX {
            out.push('…');
            break;
        }
        match get_general_category(c) {
            GeneralCategory::Control | GeneralCategory::Format => out.extend(c.escape_unicode()),
            _ => out.push(c),
        }
    }
    out
}

pub fn amqp_text(value: &AMQPValue) -> Option<String> {
    match value {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        AMQPValue::LongLongInt(n) => Some(n.to_string()),
        AMQPValue::LongInt(n) => Some(n.to_string()),
        AMQPValue::LongUInt(n) => Some(n.to_string()),
        AMQPValue::ShortInt(n) => Some(n.to_string()),
        AMQPValue::ShortUInt(n) => Some(n.to_string()),
        AMQPValue::Timestamp(n) => Some(n.to_string()),
        AMQPValue::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Calls `f` with the delivery seen as a raw CloudEvents message.
pub fn with_raw_message<T>(delivery: &Delivery, f: impl FnOnce(&RawMessage<'_>) -> T) -> T {
    let header = |name: &str| delivery.header(name);
    let raw = RawMessage {
        content_type: delivery.content_type(),
        header: &header,
        body: &delivery.data,
    };
    f(&raw)
}

/// Publishes `delivery` to the dead-letter exchange with the reason, and waits for the confirm.
/// The caller acks the original afterwards.
pub async fn dead_letter(
    publisher: &Publisher,
    topology: &Topology,
    delivery: &Delivery,
    role: &str,
    code: &str,
    reason: &str,
) -> Result<(), PublishError> {
    let mut properties = delivery.properties.clone();
    properties = with_header(properties, ERROR_HEADER, reason);
    properties = with_header(properties, ERROR_CODE_HEADER, code);
    properties = with_header(properties, ROLE_HEADER, role);
    properties = with_header(properties, QUEUE_HEADER, &topology_queue(topology, role));
    properties = with_header(
        properties,
        ROUTING_KEY_HEADER,
        delivery.routing_key.as_str(),
    );
    properties = with_header(properties, DEAD_AT_HEADER, &chrono::Utc::now().to_rfc3339());
    let properties = properties.with_delivery_mode(2);
    publisher
        .publish(Outgoing {
            exchange: topology.dead_letter_exchange.clone(),
            routing_key: delivery.routing_key.to_string(),
            body: delivery.data.clone(),
            properties,
        })
        .await
}

fn topology_queue(topology: &Topology, role: &str) -> String {
    match role {
        "sender" => topology.sender_queue.clone(),
        "tracker" => topology.tracker_queue.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_shown_with_control_characters_escaped_and_cut_short() {
        assert_eq!(printable("evt-1"), "evt-1");
        assert_eq!(
            printable("x\n2026-12-05 INFO forged\u{1b}[31m\u{202e}"),
            "x\\u{a}2026-12-05 INFO forged\\u{1b}[31m\\u{202e}"
        );
        let long = "a".repeat(300);
        assert_eq!(printable(&long).chars().count(), 129);
    }
}
