//! What a provider webhook reported, independent of the provider's wire format.
//!
//! The Meta and Fonnte parsers both produce these reports; the event module turns them into
//! CloudEvents data and ids. Everything here is plain data: no I/O, no clock.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use super::super::events;

/// The provider a report came from, named as in `whatsapp.provider`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    CloudApi,
    Fonnte,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::CloudApi => "cloud_api",
            Provider::Fonnte => "fonnte",
        }
    }
}

/// How far a sent message got, as the provider reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    Sent,
    Delivered,
    Read,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Read => "read",
            DeliveryStatus::Failed => "failed",
        }
    }
}

/// What kind of message a customer sent back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplyType {
    Text,
    /// A template quick-reply button.
    Button,
    /// A reply button or list row of an interactive message.
    Interactive,
    Other,
}

impl ReplyType {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplyType::Text => "text",
            ReplyType::Button => "button",
            ReplyType::Interactive => "interactive",
            ReplyType::Other => "other",
        }
    }
}

/// A delivery status the provider reported for a message it accepted earlier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    pub provider: Provider,
    pub provider_message_id: String,
    pub status: DeliveryStatus,
    /// The reminder id the sender attached to the message, when the provider echoes it back.
    pub reminder_id: Option<String>,
    /// E.164 digits. `None` when the provider names no phone number (Meta leaves it empty for
    /// messages sent to a business-scoped user id; Fonnte's status webhook carries none).
    pub recipient: Option<String>,
    pub at: DateTime<Utc>,
    pub error_code: Option<String>,
    pub error: Option<String>,
    pub billable: Option<bool>,
    pub pricing_category: Option<String>,
}

/// A message a customer sent to the business.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyReport {
    pub provider: Provider,
    pub provider_message_id: String,
    /// The sender, E.164 digits.
    pub phone: String,
    pub reply_type: ReplyType,
    pub text: Option<String>,
    pub button_payload: Option<String>,
    /// The provider id of the message this one answers.
    pub context_message_id: Option<String>,
    pub at: DateTime<Utc>,
}

/// A customer stopped or resumed a category of business messages at the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentReport {
    /// E.164 digits.
    pub phone: String,
    pub opted_out: bool,
    /// The provider's preference category, e.g. `marketing_messages`.
    pub category: String,
    pub at: DateTime<Utc>,
}

/// One thing a webhook body reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    Status(StatusReport),
    Reply(ReplyReport),
    Consent(ConsentReport),
}

impl Report {
    /// The CloudEvents `type` (and routing key) of the event this report becomes.
    pub fn event_type(&self) -> &'static str {
        match self {
            Report::Status(_) => events::MESSAGE_STATUS,
            Report::Reply(_) => events::REPLY_RECEIVED,
            Report::Consent(_) => events::CONSENT_CHANGED,
        }
    }

    /// What makes two reports the same event: the same status of the same message, the same
    /// reply, the same consent change. Event ids are derived from exactly these parts.
    pub fn identity(&self) -> Vec<String> {
        match self {
            Report::Status(s) => vec![
                s.provider.as_str().to_owned(),
                s.provider_message_id.clone(),
                s.status.as_str().to_owned(),
            ],
            Report::Reply(r) => vec![
                r.provider.as_str().to_owned(),
                r.provider_message_id.clone(),
            ],
            Report::Consent(c) => vec![
                c.phone.clone(),
                c.opted_out.to_string(),
                super::event::rfc3339(c.at),
            ],
        }
    }
}

/// The outcome of parsing one webhook body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Reports in body order, each at most once (a repeated item is kept at its first place).
    pub reports: Vec<Report>,
    /// Items the body carried that became no report: unknown statuses or message kinds, other
    /// webhook fields, entries without an id or a usable phone number, repeats. Worth a metric,
    /// never an error: the provider would only retry them forever.
    pub ignored: usize,
    seen: HashSet<(&'static str, Vec<String>)>,
}

impl Parsed {
    /// Appends a report unless one with the same identity is already there.
    pub(crate) fn push(&mut self, report: Report) {
        if self.seen.insert((report.event_type(), report.identity())) {
            self.reports.push(report);
        } else {
            self.ignored += 1;
        }
    }
}

/// Why a webhook body could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("body is not JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    #[error("body is not form-encoded: {0}")]
    NotForm(#[from] serde_urlencoded::de::Error),
}

/// A phone normaliser that keeps the digits of an already-international number: strips spaces,
/// `+`, dashes and brackets and accepts 8 to 15 digits (the E.164 maximum). The product passes
/// its own `PhoneNumber::parse` instead, which also knows the default country code.
pub fn digits_only(raw: &str) -> Option<String> {
    let mut digits = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '+' | '-' | '(' | ')' | '.' => {}
            _ => return None,
        }
    }
    (8..=15).contains(&digits.len()).then_some(digits)
}

/// Reads a provider timestamp given as Unix seconds, either a JSON number or a string of digits.
pub(crate) fn unix_seconds(value: Option<&serde_json::Value>) -> Option<DateTime<Utc>> {
    let secs = match value? {
        serde_json::Value::Number(n) => n.as_i64()?,
        serde_json::Value::String(s) => s.trim().parse::<i64>().ok()?,
        _ => return None,
    };
    DateTime::from_timestamp(secs, 0)
}

/// A non-empty string field of a JSON object, or a number rendered as a string (providers are
/// not consistent about ids and codes).
pub(crate) fn text_field(value: &serde_json::Value, key: &str) -> Option<String> {
    match value.get(key)? {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn digits_only_accepts_international_forms() {
        assert_eq!(
            digits_only("6281234567890").as_deref(),
            Some("6281234567890")
        );
        assert_eq!(
            digits_only("+62 812-3456-7890").as_deref(),
            Some("6281234567890")
        );
        assert_eq!(digits_only(""), None);
        assert_eq!(digits_only("1234"), None);
        assert_eq!(digits_only("1203630@g.us"), None);
        assert_eq!(digits_only("US.13491208655302741918"), None);
    }

    #[test]
    fn unix_seconds_reads_strings_and_numbers() {
        let at = DateTime::from_timestamp(1_750_030_073, 0);
        assert_eq!(unix_seconds(Some(&json!("1750030073"))), at);
        assert_eq!(unix_seconds(Some(&json!(1_750_030_073))), at);
        assert_eq!(unix_seconds(Some(&json!("soon"))), None);
        assert_eq!(unix_seconds(Some(&json!(null))), None);
        assert_eq!(unix_seconds(None), None);
    }

    #[test]
    fn text_field_trims_and_renders_numbers() {
        let v = json!({"a": " x ", "b": "", "c": 131_026, "d": true});
        assert_eq!(text_field(&v, "a").as_deref(), Some("x"));
        assert_eq!(text_field(&v, "b"), None);
        assert_eq!(text_field(&v, "c").as_deref(), Some("131026"));
        assert_eq!(text_field(&v, "d"), None);
        assert_eq!(text_field(&v, "missing"), None);
    }

    #[test]
    fn names_match_the_event_vocabulary() {
        assert_eq!(Provider::CloudApi.as_str(), "cloud_api");
        assert_eq!(Provider::Fonnte.as_str(), "fonnte");
        assert_eq!(DeliveryStatus::Delivered.as_str(), "delivered");
        assert_eq!(ReplyType::Interactive.as_str(), "interactive");
    }
}
