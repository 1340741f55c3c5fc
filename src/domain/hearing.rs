//! The events of hearing back from the provider, `message.status` and `reply.received`, as the
//! tracker reads them: typed, validated at the boundary, whoever published them.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::cloud_event::{EventError, IncomingEvent};
use super::events::{MESSAGE_STATUS, REPLY_RECEIVED};
use super::fields::{opt_long_text, opt_text, req_text, req_time};
use super::phone_number::PhoneNumber;
use super::webhook::{DeliveryStatus, ReplyType};

/// `message.status` data.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageStatus {
    pub event_id: String,
    pub provider: String,
    pub provider_message_id: String,
    pub status: DeliveryStatus,
    pub reminder_id: Option<String>,
    /// E.164 digits.
    pub recipient: Option<String>,
    pub at: DateTime<Utc>,
    pub error_code: Option<String>,
    pub error: Option<String>,
    pub billable: Option<bool>,
    pub pricing_category: Option<String>,
}

/// `reply.received` data.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplyReceived {
    pub event_id: String,
    pub provider: String,
    pub provider_message_id: String,
    /// The sender, E.164 digits.
    pub phone: String,
    pub reply_type: ReplyType,
    pub text: Option<String>,
    pub button_payload: Option<String>,
    pub context_message_id: Option<String>,
    pub at: DateTime<Utc>,
}

impl MessageStatus {
    pub fn from_event(event: &IncomingEvent) -> Result<Self, EventError> {
        event.expect_type(&[MESSAGE_STATUS])?;
        let d = &event.data;
        let status = match req_text(d, "data.status")?.to_ascii_lowercase().as_str() {
            "sent" => DeliveryStatus::Sent,
            "delivered" => DeliveryStatus::Delivered,
            "read" => DeliveryStatus::Read,
            "failed" => DeliveryStatus::Failed,
            other => {
                return Err(EventError::InvalidField {
                    field: "data.status",
                    reason: format!("not sent, delivered, read or failed: {other:?}"),
                });
            }
        };
        let billable = match d.get("billable") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                return Err(EventError::InvalidField {
                    field: "data.billable",
                    reason: "must be a boolean".into(),
                });
            }
        };
        Ok(MessageStatus {
            event_id: event.id.clone(),
            provider: req_text(d, "data.provider")?,
            provider_message_id: req_text(d, "data.provider_message_id")?,
            status,
            reminder_id: opt_text(d, "data.reminder_id")?,
            recipient: phone(d, "data.recipient")?,
            at: req_time(d, "data.at")?,
            error_code: opt_text(d, "data.error_code")?,
            error: opt_long_text(d, "data.error")?,
            billable,
            pricing_category: opt_text(d, "data.pricing_category")?,
        })
    }
}

impl ReplyReceived {
    pub fn from_event(event: &IncomingEvent) -> Result<Self, EventError> {
        event.expect_type(&[REPLY_RECEIVED])?;
        let d = &event.data;
        let reply_type = match req_text(d, "data.type")?.as_str() {
            "text" => ReplyType::Text,
            "button" => ReplyType::Button,
            "interactive" => ReplyType::Interactive,
            _ => ReplyType::Other,
        };
        Ok(ReplyReceived {
            event_id: event.id.clone(),
            provider: req_text(d, "data.provider")?,
            provider_message_id: req_text(d, "data.provider_message_id")?,
            phone: phone(d, "data.phone")?.ok_or(EventError::MissingField("data.phone"))?,
            reply_type,
            // What a customer wrote is kept as written, only cut to a sane length.
            text: loose_text(d, "data.text")?,
            button_payload: opt_long_text(d, "data.button_payload")?,
            context_message_id: opt_text(d, "data.context_message_id")?,
            at: req_time(d, "data.at")?,
        })
    }
}

/// An E.164 phone number field (the webhook role normalises before publishing).
fn phone(d: &Map<String, Value>, field: &'static str) -> Result<Option<String>, EventError> {
    opt_text(d, field)?
        .map(|p| {
            PhoneNumber::from_normalised(&p)
                .map(|p| p.as_str().to_string())
                .map_err(|_| EventError::InvalidField {
                    field,
                    reason: "must be E.164 digits".into(),
                })
        })
        .transpose()
}

/// Optional text where blank counts as absent.
fn loose_text(d: &Map<String, Value>, field: &'static str) -> Result<Option<String>, EventError> {
    match d.get(field.trim_start_matches("data.")) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.chars().take(4000).collect())),
        Some(_) => Err(EventError::InvalidField {
            field,
            reason: "must be a string".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::webhook::{self, Provider, Report, StatusReport};

    fn incoming(ty: &str, id: String, data: Value) -> IncomingEvent {
        IncomingEvent {
            id,
            source: "test".into(),
            ty: ty.into(),
            time: None,
            data: data.as_object().unwrap().clone(),
        }
    }

    #[test]
    fn a_published_status_reads_back_the_same() {
        let report = Report::Status(StatusReport {
            provider: Provider::CloudApi,
            provider_message_id: "wamid.A".into(),
            status: DeliveryStatus::Failed,
            reminder_id: Some("r-1".into()),
            recipient: Some("6281234567890".into()),
            at: DateTime::from_timestamp(1_750_000_000, 0).unwrap(),
            error_code: Some("131026".into()),
            error: Some("Message undeliverable".into()),
            billable: Some(false),
            pricing_category: None,
        });
        let event = incoming(
            MESSAGE_STATUS,
            webhook::event::id(&report),
            webhook::event::event_data(&report),
        );
        let s = MessageStatus::from_event(&event).unwrap();
        assert_eq!(s.status, DeliveryStatus::Failed);
        assert_eq!(s.reminder_id.as_deref(), Some("r-1"));
        assert_eq!(s.error_code.as_deref(), Some("131026"));
        assert_eq!(s.billable, Some(false));
        assert_eq!(s.pricing_category, None);
    }

    #[test]
    fn a_reply_needs_a_phone_and_keeps_blank_text_as_none() {
        let data = serde_json::json!({"provider": "cloud_api", "provider_message_id": "wamid.R",
            "phone": "6281234567890", "type": "text", "text": "  ", "at": "2026-01-01T00:00:00Z"});
        let r =
            ReplyReceived::from_event(&incoming(REPLY_RECEIVED, "e".into(), data.clone())).unwrap();
        assert_eq!(r.text, None);
        assert_eq!(r.reply_type, ReplyType::Text);
        let mut bad = data;
        bad["phone"] = Value::String("0812".into());
        assert!(ReplyReceived::from_event(&incoming(REPLY_RECEIVED, "e".into(), bad)).is_err());
    }

    #[test]
    fn an_unknown_status_is_refused() {
        let data = serde_json::json!({"provider": "x", "provider_message_id": "m",
            "status": "deleted", "at": "2026-01-01T00:00:00Z"});
        assert!(MessageStatus::from_event(&incoming(MESSAGE_STATUS, "e".into(), data)).is_err());
    }
}
