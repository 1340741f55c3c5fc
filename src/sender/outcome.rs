//! The outcome event of a reminder: `message.sent` or `message.failed`, built from its final
//! dispatch record. Its id is derived from the reminder id, so every re-publication of the same
//! outcome (a redelivery, a duplicate) is the same event and the tracker counts it once.

use chrono::Utc;

use crate::db::dispatch::DispatchRecord;
use crate::domain::events::outcome_id;
use crate::domain::{MessageFailed, MessageSent, OutcomeStatus, OutgoingEvent};

/// CloudEvents `source` of the outcome events.
pub const SOURCE: &str = "reminder/sender";

/// `error_code` of a reminder not sent because its phone is opted out.
pub const OPTED_OUT: &str = "opted_out";

/// An outcome event ready to publish.
pub struct OutcomeEvent {
    pub status: OutcomeStatus,
    pub id: String,
    pub body: Vec<u8>,
}

impl OutcomeEvent {
    /// The event of a final record; `None` while the reminder has no outcome yet.
    pub fn of(record: &DispatchRecord) -> Option<OutcomeEvent> {
        let status = record.status.outcome()?;
        let event_type = status.event_type();
        let at = record.outcome_at.unwrap_or_else(Utc::now);
        let id = outcome_id(event_type, &record.reminder_id);
        // A reminder refused before any attempt (its phone is opted out) reports none.
        let attempts = if record.error_code.as_deref() == Some(OPTED_OUT) {
            0
        } else {
            record.attempts.max(1) as u32
        };
        let body = match status {
            OutcomeStatus::Sent => OutgoingEvent::new(
                id.clone(),
                SOURCE,
                event_type,
                at,
                MessageSent {
                    reminder_id: record.reminder_id.clone(),
                    customer_id: record.id_customer,
                    vehicle_id: record.id_vehicle,
                    phone: record.phone.clone(),
                    provider: record.provider.clone(),
                    provider_message_id: record.provider_message_id.clone().unwrap_or_default(),
                    sent_at: at,
                    attempts,
                    customer_name: record.customer_name.clone(),
                    plate_number: record.plate_number.clone(),
                },
            )
            .to_bytes(),
            OutcomeStatus::Failed => OutgoingEvent::new(
                id.clone(),
                SOURCE,
                event_type,
                at,
                MessageFailed {
                    reminder_id: record.reminder_id.clone(),
                    customer_id: record.id_customer,
                    vehicle_id: record.id_vehicle,
                    provider: record.provider.clone(),
                    error_code: record
                        .error_code
                        .clone()
                        .unwrap_or_else(|| "unknown".into()),
                    error: record.error.clone().unwrap_or_default(),
                    attempts,
                    failed_at: at,
                    phone: Some(record.phone.clone()),
                    customer_name: record.customer_name.clone(),
                    plate_number: record.plate_number.clone(),
                },
            )
            .to_bytes(),
        };
        Some(OutcomeEvent { status, id, body })
    }

    pub fn event_type(&self) -> &'static str {
        self.status.event_type()
    }
}
