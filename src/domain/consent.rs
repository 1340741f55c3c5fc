//! Consent: the `consent.changed` event, its sources, and the keyword rule that turns a reply's
//! whole text into an opt-out or an opt-in.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::cloud_event::{EventError, IncomingEvent};
use super::phone_number::{CountryCode, PhoneNumber};

pub use crate::domain::events::{CONSENT_CHANGED, REPLY_RECEIVED};

/// Where a consent change came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentSource {
    /// A reply whose whole text is a stop or start keyword.
    Keyword,
    /// Meta's marketing-messages preference, relayed by the webhook role.
    UserPreferences,
    /// The provider refused a send because the user stopped business messages.
    ProviderError,
    /// The workshop's own systems.
    Upstream,
    /// `reminder consent opt-out|opt-in`.
    Cli,
}

impl ConsentSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentSource::Keyword => "keyword",
            ConsentSource::UserPreferences => "user_preferences",
            ConsentSource::ProviderError => "provider_error",
            ConsentSource::Upstream => "upstream",
            ConsentSource::Cli => "cli",
        }
    }
}

/// One consent change for a phone number: what the `consent` table applies in `at` order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsentChanged {
    pub phone: PhoneNumber,
    pub opted_out: bool,
    pub source: ConsentSource,
    pub at: DateTime<Utc>,
}

#[derive(Deserialize)]
struct RawConsent {
    phone: String,
    opted_out: bool,
    source: ConsentSource,
    at: DateTime<Utc>,
}

impl ConsentChanged {
    /// Parses a `consent.changed` event; the phone may be in any form `maintenance.due` accepts.
    pub fn from_event(event: &IncomingEvent, country: &CountryCode) -> Result<Self, EventError> {
        event.expect_type(&[CONSENT_CHANGED])?;
        let raw: RawConsent = serde_json::from_value(serde_json::Value::Object(event.data.clone()))
            .map_err(|e| EventError::InvalidField {
                field: "data",
                reason: e.to_string(),
            })?;
        let phone =
            PhoneNumber::parse(&raw.phone, country).map_err(|e| EventError::InvalidField {
                field: "data.phone",
                reason: e.to_string(),
            })?;
        Ok(ConsentChanged {
            phone,
            opted_out: raw.opted_out,
            source: raw.source,
            at: raw.at,
        })
    }
}

/// The fields of `reply.received` the keyword rule needs.
#[derive(Deserialize)]
struct RawReply {
    phone: String,
    #[serde(default)]
    text: Option<String>,
    at: DateTime<Utc>,
}

/// The stop and start keywords (`consent.stop_keywords`, `consent.start_keywords`).
#[derive(Debug, Clone)]
pub struct Keywords {
    pub stop: Vec<String>,
    pub start: Vec<String>,
}

impl Keywords {
    /// Opt-out (`Some(true)`), opt-in (`Some(false)`) or nothing: only a whole text, trimmed and
    /// compared without case, counts, so "jangan stop dulu" changes nothing.
    pub fn classify(&self, text: &str) -> Option<bool> {
        let t = text.trim();
        let matches = |list: &[String]| list.iter().any(|k| k.trim().eq_ignore_ascii_case(t));
        if t.is_empty() {
            None
        } else if matches(&self.stop) {
            Some(true)
        } else if matches(&self.start) {
            Some(false)
        } else {
            None
        }
    }

    /// The consent change a `reply.received` makes, if its text is a keyword.
    pub fn from_reply(
        &self,
        event: &IncomingEvent,
        country: &CountryCode,
    ) -> Result<Option<ConsentChanged>, EventError> {
        event.expect_type(&[REPLY_RECEIVED])?;
        let raw: RawReply = serde_json::from_value(serde_json::Value::Object(event.data.clone()))
            .map_err(|e| EventError::InvalidField {
            field: "data",
            reason: e.to_string(),
        })?;
        let Some(opted_out) = raw.text.as_deref().and_then(|t| self.classify(t)) else {
            return Ok(None);
        };
        let phone =
            PhoneNumber::parse(&raw.phone, country).map_err(|e| EventError::InvalidField {
                field: "data.phone",
                reason: e.to_string(),
            })?;
        Ok(Some(ConsentChanged {
            phone,
            opted_out,
            source: ConsentSource::Keyword,
            at: raw.at,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keywords() -> Keywords {
        Keywords {
            stop: vec!["STOP".into(), "BERHENTI".into(), "UNSUBSCRIBE".into()],
            start: vec!["START".into(), "MULAI".into(), "LANJUT".into()],
        }
    }

    #[test]
    fn only_whole_texts_are_keywords() {
        let k = keywords();
        assert_eq!(k.classify("STOP"), Some(true));
        assert_eq!(k.classify("berhenti "), Some(true));
        assert_eq!(k.classify(" Mulai"), Some(false));
        assert_eq!(k.classify("jangan stop dulu"), None);
        assert_eq!(k.classify("BATAL"), None);
        assert_eq!(k.classify("  "), None);
    }
}
