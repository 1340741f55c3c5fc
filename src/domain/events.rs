//! The reminder events (`maintenance.due`, `message.sent`, `message.failed`) as typed payloads,
//! validated at the boundary, the routing keys of every event (the hearing-back events' data is
//! in `hearing`), and the deterministic event ids that make every stage idempotent.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::cloud_event::{EventError, IncomingEvent};
use super::fields::{error_text, opt_text, req_date, req_str, req_text, req_time, req_uuid};
use super::phone_number::{CountryCode, PhoneNumber};

pub const MAINTENANCE_DUE: &str = "maintenance.due";
pub const MESSAGE_SENT: &str = "message.sent";
pub const MESSAGE_FAILED: &str = "message.failed";
/// What the provider reported about a sent message (the webhook role publishes it).
pub const MESSAGE_STATUS: &str = "message.status";
/// A customer's message to the business (the webhook role publishes it).
pub const REPLY_RECEIVED: &str = "reply.received";
/// A phone number opted out or back in.
pub const CONSENT_CHANGED: &str = "consent.changed";

/// Namespace of every id reminder derives (UUID v5), so the same inputs give the same id on
/// any replica, on any day the scan is repeated, and after any crash.
pub(crate) const ID_NAMESPACE: Uuid = Uuid::from_u128(0x6c1f_0b9e_52a4_4d6e_9a57_3e0f_c3d2_7a10);

/// The `maintenance.due` id for one vehicle, due date and scan date: a second scan on the same
/// day, or a second producer replica, publishes the same id.
pub fn maintenance_due_id(vehicle_id: Uuid, due_date: NaiveDate, run_date: NaiveDate) -> String {
    Uuid::new_v5(
        &ID_NAMESPACE,
        format!("{MAINTENANCE_DUE}/{vehicle_id}/{due_date}/{run_date}").as_bytes(),
    )
    .to_string()
}

/// The id of the outcome event (`message.sent` or `message.failed`) of one reminder.
pub fn outcome_id(outcome_type: &str, reminder_id: &str) -> String {
    Uuid::new_v5(
        &ID_NAMESPACE,
        format!("{outcome_type}/{reminder_id}").as_bytes(),
    )
    .to_string()
}
/// A vehicle whose maintenance is due: what the sender needs to remind its owner.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MaintenanceDue {
    pub customer_id: Uuid,
    pub vehicle_id: Uuid,
    pub customer_name: String,
    pub phone: PhoneNumber,
    pub plate_number: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vehicle: Option<String>,
    pub due_date: NaiveDate,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
}

impl MaintenanceDue {
    pub fn from_event(event: &IncomingEvent, country: &CountryCode) -> Result<Self, EventError> {
        event.expect_type(&[MAINTENANCE_DUE])?;
        let d = &event.data;
        let phone_raw = req_str(d, "data.phone")?;
        let phone =
            PhoneNumber::parse(&phone_raw, country).map_err(|e| EventError::InvalidField {
                field: "data.phone",
                reason: e.to_string(),
            })?;
        Ok(MaintenanceDue {
            customer_id: req_uuid(d, "data.customer_id")?,
            vehicle_id: req_uuid(d, "data.vehicle_id")?,
            customer_name: req_text(d, "data.customer_name")?,
            phone,
            plate_number: req_text(d, "data.plate_number")?,
            vehicle: opt_text(d, "data.vehicle")?,
            due_date: req_date(d, "data.due_date")?,
            locale: opt_text(d, "data.locale")?,
        })
    }
}

/// Sent or failed: the two outcomes of a reminder, as the tracker records them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeStatus {
    Sent,
    Failed,
}

impl OutcomeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeStatus::Sent => "sent",
            OutcomeStatus::Failed => "failed",
        }
    }
    pub fn event_type(self) -> &'static str {
        match self {
            OutcomeStatus::Sent => MESSAGE_SENT,
            OutcomeStatus::Failed => MESSAGE_FAILED,
        }
    }
}

/// `message.sent` data, plus what the sender knew about the recipient so the
/// report can show a name and plate even when the master data lacks them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageSent {
    pub reminder_id: String,
    pub customer_id: Uuid,
    pub vehicle_id: Uuid,
    pub phone: String,
    pub provider: String,
    pub provider_message_id: String,
    pub sent_at: DateTime<Utc>,
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plate_number: Option<String>,
}

/// `message.failed` data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageFailed {
    pub reminder_id: String,
    pub customer_id: Uuid,
    pub vehicle_id: Uuid,
    pub provider: String,
    pub error_code: String,
    pub error: String,
    pub attempts: u32,
    pub failed_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plate_number: Option<String>,
}

/// Either outcome, flattened the way the tracker stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageOutcome {
    pub event_id: String,
    pub reminder_id: String,
    pub customer_id: Uuid,
    pub vehicle_id: Uuid,
    pub status: OutcomeStatus,
    pub provider: String,
    pub provider_message_id: Option<String>,
    pub error_code: Option<String>,
    pub error: Option<String>,
    pub attempts: i32,
    pub at: DateTime<Utc>,
    pub phone: Option<String>,
    pub customer_name: Option<String>,
    pub plate_number: Option<String>,
}

impl MessageOutcome {
    pub fn from_event(event: &IncomingEvent) -> Result<Self, EventError> {
        event.expect_type(&[MESSAGE_SENT, MESSAGE_FAILED])?;
        let d = &event.data;
        let status = if event.ty == MESSAGE_SENT {
            OutcomeStatus::Sent
        } else {
            OutcomeStatus::Failed
        };
        let attempts = match d.get("attempts") {
            None | Some(Value::Null) => return Err(EventError::MissingField("data.attempts")),
            Some(v) => v
                .as_u64()
                // A failure may have made no attempt (the phone is opted out); a send made one.
                .filter(|n| *n >= u64::from(status == OutcomeStatus::Sent) && *n <= i32::MAX as u64)
                .ok_or(EventError::InvalidField {
                    field: "data.attempts",
                    reason: "must be a non-negative integer (positive when sent)".into(),
                })? as i32,
        };
        let phone = opt_text(d, "data.phone")?
            .map(|p| {
                PhoneNumber::from_normalised(&p)
                    .map(|p| p.as_str().to_string())
                    .map_err(|_| EventError::InvalidField {
                        field: "data.phone",
                        reason: "must be E.164 digits".into(),
                    })
            })
            .transpose()?;
        let (provider_message_id, error_code, error, at) = match status {
            OutcomeStatus::Sent => (
                Some(req_text(d, "data.provider_message_id")?),
                None,
                None,
                req_time(d, "data.sent_at")?,
            ),
            OutcomeStatus::Failed => (
                None,
                Some(req_text(d, "data.error_code")?),
                Some(error_text(d)?),
                req_time(d, "data.failed_at")?,
            ),
        };
        Ok(MessageOutcome {
            event_id: event.id.clone(),
            reminder_id: req_text(d, "data.reminder_id")?,
            customer_id: req_uuid(d, "data.customer_id")?,
            vehicle_id: req_uuid(d, "data.vehicle_id")?,
            status,
            provider: req_text(d, "data.provider")?,
            provider_message_id,
            error_code,
            error,
            attempts,
            at,
            phone,
            customer_name: opt_text(d, "data.customer_name")?,
            plate_number: opt_text(d, "data.plate_number")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(ty: &str, data: Value) -> IncomingEvent {
        IncomingEvent {
            id: "e-1".into(),
            source: "test".into(),
            ty: ty.into(),
            time: None,
            data: data.as_object().unwrap().clone(),
        }
    }

    fn due_data() -> Value {
        json!({
            "customer_id": "0b6f1c1e-5d57-4c55-9d59-3f1b0d2a7c11",
            "vehicle_id": "1b6f1c1e-5d57-4c55-9d59-3f1b0d2a7c11",
            "customer_name": "Budi Santoso",
            "phone": "0812-3456-7890",
            "plate_number": "B 1234 XYZ",
            "vehicle": "Honda Vario 125",
            "due_date": "2026-11-26"
        })
    }

    fn cc() -> CountryCode {
        CountryCode::parse("62").unwrap()
    }

    #[test]
    fn a_maintenance_due_payload_is_validated_and_normalised() {
        let due = MaintenanceDue::from_event(&event(MAINTENANCE_DUE, due_data()), &cc()).unwrap();
        assert_eq!(due.phone.as_str(), "6281234567890");
        assert_eq!(due.due_date, NaiveDate::from_ymd_opt(2026, 11, 26).unwrap());
        assert_eq!(due.locale, None);
    }

    #[test]
    fn control_and_format_characters_never_reach_the_message_or_the_report() {
        let mut data = due_data();
        data["customer_name"] = json!("Budi\nSantoso\u{0007}");
        data["plate_number"] = json!("B 1234 \u{202E}ZYX\u{202C}");
        data["vehicle"] = json!("\u{FEFF}Honda\tVario\u{200B} 125\r\n");
        let due = MaintenanceDue::from_event(&event(MAINTENANCE_DUE, data), &cc()).unwrap();
        assert_eq!(due.customer_name, "Budi Santoso");
        assert_eq!(due.plate_number, "B 1234 ZYX");
        assert_eq!(due.vehicle.as_deref(), Some("Honda Vario 125"));

        // A name of nothing but such characters is as empty as a blank one.
        let mut data = due_data();
        data["customer_name"] = json!("\u{202E}\u{200B}\n");
        let err = MaintenanceDue::from_event(&event(MAINTENANCE_DUE, data), &cc()).unwrap_err();
        assert!(err.to_string().contains("data.customer_name"), "{err}");
    }

    #[test]
    fn each_missing_or_malformed_field_is_named() {
        for (field, value, expected) in [
            (
                "customer_id",
                json!(null),
                "missing required field `data.customer_id`",
            ),
            ("customer_id", json!("nope"), "data.customer_id"),
            ("customer_name", json!("  "), "data.customer_name"),
            ("phone", json!("12"), "data.phone"),
            ("due_date", json!("26/11/2026"), "data.due_date"),
            ("plate_number", json!(7), "data.plate_number"),
        ] {
            let mut data = due_data();
            data[field] = value;
            let err = MaintenanceDue::from_event(&event(MAINTENANCE_DUE, data), &cc())
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{field}: {err}");
        }
    }

    #[test]
    fn the_wrong_type_is_refused() {
        let err =
            MaintenanceDue::from_event(&event("message.sent", due_data()), &cc()).unwrap_err();
        assert_eq!(err.code(), "wrong_type");
    }

    #[test]
    fn ids_are_deterministic() {
        let v = Uuid::new_v4();
        let d = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
        let r = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
        assert_eq!(maintenance_due_id(v, d, r), maintenance_due_id(v, d, r));
        assert_ne!(maintenance_due_id(v, d, r), maintenance_due_id(v, d, d));
        assert_eq!(outcome_id(MESSAGE_SENT, "a"), outcome_id(MESSAGE_SENT, "a"));
        assert_ne!(
            outcome_id(MESSAGE_SENT, "a"),
            outcome_id(MESSAGE_FAILED, "a")
        );
    }

    #[test]
    fn outcomes_parse_both_kinds() {
        let sent = MessageOutcome::from_event(&event(
            MESSAGE_SENT,
            json!({"reminder_id": "r1", "customer_id": "0b6f1c1e-5d57-4c55-9d59-3f1b0d2a7c11",
                   "vehicle_id": "1b6f1c1e-5d57-4c55-9d59-3f1b0d2a7c11", "phone": "6281234567890",
                   "provider": "log", "provider_message_id": "wamid.1",
                   "sent_at": "2026-11-24T01:00:00Z", "attempts": 1}),
        ))
        .unwrap();
        assert_eq!(sent.status, OutcomeStatus::Sent);
        assert_eq!(sent.provider_message_id.as_deref(), Some("wamid.1"));
        let failed = MessageOutcome::from_event(&event(
            MESSAGE_FAILED,
            json!({"reminder_id": "r1", "customer_id": "0b6f1c1e-5d57-4c55-9d59-3f1b0d2a7c11",
                   "vehicle_id": "1b6f1c1e-5d57-4c55-9d59-3f1b0d2a7c11",
                   "provider": "cloud_api", "error_code": "131026", "error": "undeliverable",
                   "failed_at": "2026-11-24T01:00:00Z", "attempts": 1}),
        ))
        .unwrap();
        assert_eq!(failed.status, OutcomeStatus::Failed);
        assert_eq!(failed.error_code.as_deref(), Some("131026"));
        let bad = MessageOutcome::from_event(&event(
            MESSAGE_SENT,
            json!({"reminder_id": "r1", "customer_id": "0b6f1c1e-5d57-4c55-9d59-3f1b0d2a7c11",
                   "vehicle_id": "1b6f1c1e-5d57-4c55-9d59-3f1b0d2a7c11",
                   "provider": "log", "provider_message_id": "x", "sent_at": "yesterday",
                   "attempts": 1}),
        ))
        .unwrap_err();
        assert!(bad.to_string().contains("data.sent_at"));
    }
}
