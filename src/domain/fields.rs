//! Reading the fields of an event's `data`: required and optional strings, text cleaned of
//! control characters and capped, ids, dates and times, each refusal naming its field.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::cloud_event::EventError;

const MAX_TEXT: usize = 200;

fn key(field: &'static str) -> &'static str {
    field.strip_prefix("data.").unwrap_or(field)
}

pub(super) fn get<'a>(d: &'a Map<String, Value>, field: &'static str) -> Option<&'a Value> {
    d.get(key(field)).filter(|v| !v.is_null())
}

pub(super) fn req_str(d: &Map<String, Value>, field: &'static str) -> Result<String, EventError> {
    match get(d, field) {
        None => Err(EventError::MissingField(field)),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(EventError::InvalidField {
            field,
            reason: "must be a string".into(),
        }),
    }
}

pub(super) fn req_text(d: &Map<String, Value>, field: &'static str) -> Result<String, EventError> {
    opt_text(d, field)?.ok_or(EventError::MissingField(field))
}

pub(super) fn opt_text(
    d: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<String>, EventError> {
    let text = opt_long_text(d, field)?;
    if let Some(t) = &text
        && t.chars().count() > MAX_TEXT
    {
        return Err(EventError::InvalidField {
            field,
            reason: format!("longer than {MAX_TEXT} characters"),
        });
    }
    Ok(text)
}

/// A string that may be long (error texts are cut, not rejected).
pub(super) fn opt_long_text(
    d: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<String>, EventError> {
    match get(d, field) {
        None => Ok(None),
        Some(Value::String(s)) => {
            let s = clean_text(s);
            let s = s.trim();
            if s.is_empty() {
                Err(EventError::InvalidField {
                    field,
                    reason: "must not be empty".into(),
                })
            } else {
                Ok(Some(s.chars().take(2000).collect()))
            }
        }
        Some(_) => Err(EventError::InvalidField {
            field,
            reason: "must be a string".into(),
        }),
    }
}

/// Event text without control and format characters (Unicode Cc and Cf): they would reach the
/// customer's WhatsApp message and the CSV verbatim, where a newline breaks the layout and a
/// right-to-left override (U+202E) makes a name or plate read as something else. Line breaks
/// and tabs become a space, so "Budi\nSantoso" stays two words.
pub fn clean_text(s: &str) -> std::borrow::Cow<'_, str> {
    use unicode_general_category::{GeneralCategory, get_general_category};
    let unwanted = |c: char| {
        matches!(
            get_general_category(c),
            GeneralCategory::Control | GeneralCategory::Format
        )
    };
    if !s.chars().any(unwanted) {
        return std::borrow::Cow::Borrowed(s);
    }
    std::borrow::Cow::Owned(
        s.chars()
            .filter_map(|c| match c {
                '\n' | '\r' | '\t' => Some(' '),
                c if unwanted(c) => None,
                c => Some(c),
            })
            .collect(),
    )
}

/// `data.error` may be absent or empty (some providers give a code and nothing else).
pub(super) fn error_text(d: &Map<String, Value>) -> Result<String, EventError> {
    match get(d, "data.error") {
        None => Ok(String::new()),
        Some(Value::String(s)) => Ok(clean_text(s).trim().chars().take(2000).collect()),
        Some(_) => Err(EventError::InvalidField {
            field: "data.error",
            reason: "must be a string".into(),
        }),
    }
}

pub(super) fn req_uuid(d: &Map<String, Value>, field: &'static str) -> Result<Uuid, EventError> {
    let s = req_str(d, field)?;
    Uuid::parse_str(s.trim()).map_err(|_| EventError::InvalidField {
        field,
        reason: format!("not a UUID: {s:?}"),
    })
}

pub(super) fn req_date(
    d: &Map<String, Value>,
    field: &'static str,
) -> Result<NaiveDate, EventError> {
    let s = req_str(d, field)?;
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| EventError::InvalidField {
        field,
        reason: format!("not a date YYYY-MM-DD: {s:?}"),
    })
}

pub(super) fn req_time(
    d: &Map<String, Value>,
    field: &'static str,
) -> Result<DateTime<Utc>, EventError> {
    let s = req_str(d, field)?;
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| EventError::InvalidField {
            field,
            reason: format!("not an RFC 3339 time: {s:?}"),
        })
}
