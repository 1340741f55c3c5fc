//! The CloudEvents 1.0 envelope: structured JSON mode, which reminder publishes, and binary
//! mode (`ce-*` headers, data as the body), which it also accepts from upstream.
//! Parsing checks the envelope only; `reminder` payloads are checked in `domain::events`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

pub const SPEC_VERSION: &str = "1.0";
pub const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json";

/// Why an incoming message can never be processed. `Display` is the human reason that goes into
/// the `x-reminder-error` header; `code()` is the short label for metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("message body is {size} bytes, over the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("body is not a JSON object")]
    NotAnObject,
    #[error("unsupported specversion {0:?} (expected \"1.0\")")]
    BadSpecVersion(String),
    #[error("event type {got:?} is not handled here (expected {expected})")]
    WrongType { got: String, expected: String },
    #[error("missing required field `{0}`")]
    MissingField(&'static str),
    #[error("field `{field}` is malformed: {reason}")]
    InvalidField { field: &'static str, reason: String },
}

impl EventError {
    pub fn code(&self) -> &'static str {
        match self {
            EventError::TooLarge { .. } => "too_large",
            EventError::InvalidJson(_) => "invalid_json",
            EventError::NotAnObject => "invalid_json",
            EventError::BadSpecVersion(_) => "bad_specversion",
            EventError::WrongType { .. } => "wrong_type",
            EventError::MissingField(_) => "missing_field",
            EventError::InvalidField { .. } => "invalid_field",
        }
    }
}

/// An envelope that passed validation, its `data` still untyped.
#[derive(Debug, Clone)]
pub struct IncomingEvent {
    pub id: String,
    pub source: String,
    pub ty: String,
    pub time: Option<DateTime<Utc>>,
    pub data: Map<String, Value>,
}

/// What a transport hands over: enough to tell the two modes apart.
pub struct RawMessage<'a> {
    pub content_type: Option<&'a str>,
    /// Looks up a message header (`ce-id`, ...) as text.
    pub header: &'a dyn Fn(&str) -> Option<String>,
    pub body: &'a [u8],
}

/// Longest `id` or `source` accepted; ids end up as database keys.
const MAX_ATTRIBUTE_LEN: usize = 256;

impl IncomingEvent {
    pub fn parse(raw: &RawMessage<'_>, max_bytes: usize) -> Result<IncomingEvent, EventError> {
        if raw.body.len() > max_bytes {
            return Err(EventError::TooLarge {
                size: raw.body.len(),
                limit: max_bytes,
            });
        }
        let structured = raw
            .content_type
            .is_some_and(|ct| ct.trim().starts_with("application/cloudevents"));
        let value: Value =
            serde_json::from_slice(raw.body).map_err(|e| EventError::InvalidJson(e.to_string()))?;
        let Value::Object(mut object) = value else {
            return Err(EventError::NotAnObject);
        };
        if structured {
            let attr = |object: &Map<String, Value>, name: &'static str| match object.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(EventError::InvalidField {
                    field: name,
                    reason: "must be a string".into(),
                }),
            };
            let specversion = attr(&object, "specversion")?;
            let id = attr(&object, "id")?;
            let source = attr(&object, "source")?;
            let ty = attr(&object, "type")?;
            let time = attr(&object, "time")?;
            let data = match object.remove("data") {
                Some(Value::Object(data)) => data,
                None | Some(Value::Null) => return Err(EventError::MissingField("data")),
                Some(_) => {
                    return Err(EventError::InvalidField {
                        field: "data",
                        reason: "must be a JSON object".into(),
                    });
                }
            };
            Self::assemble(specversion, id, source, ty, time, data)
        } else {
            let h = |name: &str| (raw.header)(name);
            Self::assemble(
                h("ce-specversion"),
                h("ce-id"),
                h("ce-source"),
                h("ce-type"),
                h("ce-time"),
                object,
            )
        }
    }

    fn assemble(
        specversion: Option<String>,
        id: Option<String>,
        source: Option<String>,
        ty: Option<String>,
        time: Option<String>,
        data: Map<String, Value>,
    ) -> Result<IncomingEvent, EventError> {
        let specversion = specversion.ok_or(EventError::MissingField("specversion"))?;
        if specversion != SPEC_VERSION {
            return Err(EventError::BadSpecVersion(specversion));
        }
        let id = non_empty_attribute("id", id)?;
        let source = non_empty_attribute("source", source)?;
        let ty = non_empty_attribute("type", ty)?;
        let time = time
            .map(|t| {
                DateTime::parse_from_rfc3339(&t)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| EventError::InvalidField {
                        field: "time",
                        reason: format!("not an RFC 3339 time: {e}"),
                    })
            })
            .transpose()?;
        Ok(IncomingEvent {
            id,
            source,
            ty,
            time,
            data,
        })
    }

    pub fn expect_type(&self, expected: &[&str]) -> Result<(), EventError> {
        if expected.contains(&self.ty.as_str()) {
            Ok(())
        } else {
            Err(EventError::WrongType {
                got: self.ty.clone(),
                expected: expected.join(" or "),
            })
        }
    }
}

fn non_empty_attribute(name: &'static str, value: Option<String>) -> Result<String, EventError> {
    let value = value.ok_or(EventError::MissingField(name))?;
    if value.trim().is_empty() {
        return Err(EventError::InvalidField {
            field: name,
            reason: "must not be empty".into(),
        });
    }
    if value.len() > MAX_ATTRIBUTE_LEN {
        return Err(EventError::InvalidField {
            field: name,
            reason: format!("longer than {MAX_ATTRIBUTE_LEN} bytes"),
        });
    }
    Ok(value)
}

/// An event on its way out, always in structured mode.
#[derive(Debug, Clone, Serialize)]
pub struct OutgoingEvent<T: Serialize> {
    pub specversion: &'static str,
    pub id: String,
    pub source: String,
    #[serde(rename = "type")]
    pub ty: &'static str,
    pub time: DateTime<Utc>,
    pub datacontenttype: &'static str,
    pub data: T,
}

impl<T: Serialize> OutgoingEvent<T> {
    pub fn new(
        id: String,
        source: impl Into<String>,
        ty: &'static str,
        time: DateTime<Utc>,
        data: T,
    ) -> Self {
        OutgoingEvent {
            specversion: SPEC_VERSION,
            id,
            source: source.into(),
            ty,
            time,
            datacontenttype: "application/json",
            data,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("events serialise to JSON")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_headers(_: &str) -> Option<String> {
        None
    }

    fn structured(body: &str) -> Result<IncomingEvent, EventError> {
        IncomingEvent::parse(
            &RawMessage {
                content_type: Some(STRUCTURED_CONTENT_TYPE),
                header: &no_headers,
                body: body.as_bytes(),
            },
            65536,
        )
    }

    #[test]
    fn a_structured_event_parses() {
        let e = structured(
            r#"{"specversion":"1.0","id":"abc","source":"s","type":"maintenance.due",
                "time":"2026-11-24T01:00:00Z","data":{"x":1}}"#,
        )
        .unwrap();
        assert_eq!(e.id, "abc");
        assert_eq!(e.ty, "maintenance.due");
        assert_eq!(e.data["x"], 1);
        assert!(e.time.is_some());
    }

    #[test]
    fn a_binary_event_takes_its_attributes_from_headers() {
        let headers = |name: &str| match name {
            "ce-specversion" => Some("1.0".to_string()),
            "ce-id" => Some("id-1".to_string()),
            "ce-source" => Some("knative".to_string()),
            "ce-type" => Some("maintenance.due".to_string()),
            _ => None,
        };
        let e = IncomingEvent::parse(
            &RawMessage {
                content_type: Some("application/json"),
                header: &headers,
                body: br#"{"customer_id":"x"}"#,
            },
            65536,
        )
        .unwrap();
        assert_eq!(e.id, "id-1");
        assert_eq!(e.source, "knative");
        assert_eq!(e.data["customer_id"], "x");
    }

    #[test]
    fn envelope_errors_say_what_is_wrong() {
        assert_eq!(structured("not json").unwrap_err().code(), "invalid_json");
        assert_eq!(structured("[1]").unwrap_err(), EventError::NotAnObject);
        assert_eq!(
            structured(r#"{"specversion":"0.3","id":"a","source":"s","type":"t","data":{}}"#)
                .unwrap_err(),
            EventError::BadSpecVersion("0.3".into())
        );
        assert_eq!(
            structured(r#"{"specversion":"1.0","source":"s","type":"t","data":{}}"#).unwrap_err(),
            EventError::MissingField("id")
        );
        assert_eq!(
            structured(r#"{"specversion":"1.0","id":"a","source":"s","type":"t"}"#).unwrap_err(),
            EventError::MissingField("data")
        );
        let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(70_000));
        assert_eq!(structured(&big).unwrap_err().code(), "too_large");
    }
}
