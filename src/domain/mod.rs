//! Domain types: values that are valid by construction (a `PhoneNumber` is always E.164), the
//! CloudEvents envelope, the reminder events with their deterministic ids, and the reminder
//! text's template, and what provider webhooks report (`webhook`, `hearing`).

pub mod cloud_event;
pub mod consent;
pub mod events;
pub mod fields;
pub mod hearing;
pub mod message_template;
pub mod phone_number;
pub mod webhook;

pub use cloud_event::{EventError, IncomingEvent, OutgoingEvent, RawMessage};
pub use events::{MaintenanceDue, MessageFailed, MessageOutcome, MessageSent, OutcomeStatus};
pub use hearing::{MessageStatus, ReplyReceived};
pub use message_template::MessageTemplate;
pub use phone_number::{CountryCode, PhoneError, PhoneNumber, mask_phone};
