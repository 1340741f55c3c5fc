//! Reads Fonnte's webhooks (message status updates and incoming messages) into reports.
//!
//! Fonnte posts one flat object per event, as JSON or form-encoded. Field names follow Fonnte's
//! webhook documentation: the status webhook sends `device`, `id`, `stateid`, `status` and
//! `state`; the incoming-message webhook sends `device`, `sender`, `message`, `text` (button
//! text), `member` (the member, when the chat is a group), `name`, `location`, `pollname`,
//! `choices`, `timestamp` and, with the inbox feature on, `inboxid`. `status` is Fonnte's
//! processing outcome (`sent`, `invalid`, `expired`, `pending`, ...) and `state` the WhatsApp
//! acknowledgement (`sent`, `delivered`, `read`). Fonnte signs nothing; the caller authenticates
//! the request by the secret token in its URL.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::report::{
    DeliveryStatus, ParseError, Parsed, Provider, ReplyReport, ReplyType, Report, StatusReport,
    text_field, unix_seconds,
};

/// Parses one Fonnte webhook body.
///
/// `content_type` picks the decoding (`application/json` or
/// `application/x-www-form-urlencoded`); without one, a body starting with `{` is JSON and
/// anything else a form. `received_at` stands in for the time Fonnte does not send (status
/// updates carry none). `normalise` turns a phone number into the product's E.164 form or
/// rejects it; a reply whose sender it rejects is ignored.
pub fn parse<N>(
    body: &[u8],
    content_type: Option<&str>,
    received_at: DateTime<Utc>,
    normalise: N,
) -> Result<Parsed, ParseError>
where
    N: Fn(&str) -> Option<String>,
{
    let mut out = Parsed::default();
    let Some(fields) = fields(body, content_type)? else {
        out.ignored += 1;
        return Ok(out);
    };
    let fields = Value::Object(fields);
    let at = unix_seconds(fields.get("timestamp")).unwrap_or(received_at);
    let report = if text_field(&fields, "id").is_some()
        && (text_field(&fields, "status").is_some() || text_field(&fields, "state").is_some())
    {
        status(&fields, at, &normalise).map(Report::Status)
    } else if text_field(&fields, "sender").is_some() && fields.get("message").is_some() {
        reply(&fields, at, &normalise).map(Report::Reply)
    } else {
        None
    };
    match report {
        Some(report) => out.push(report),
        None => out.ignored += 1,
    }
    Ok(out)
}

/// The body's fields, or `None` when it is JSON but not an object.
fn fields(
    body: &[u8],
    content_type: Option<&str>,
) -> Result<Option<Map<String, Value>>, ParseError> {
    let media_type = content_type
        .and_then(|c| c.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase());
    let json = match media_type.as_deref() {
        Some(m) if m == "application/json" || m.ends_with("+json") => true,
        Some("application/x-www-form-urlencoded") => false,
        _ => body.trim_ascii_start().first() == Some(&b'{'),
    };
    if json {
        return Ok(match serde_json::from_slice(body)? {
            Value::Object(map) => Some(map),
            _ => None,
        });
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)?;
    Ok(Some(
        pairs
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
    ))
}

/// What a Fonnte `status` or `state` word says about delivery, if anything.
fn delivery(word: Option<String>) -> Option<DeliveryStatus> {
    match word?.to_ascii_lowercase().as_str() {
        "sent" => Some(DeliveryStatus::Sent),
        "delivered" => Some(DeliveryStatus::Delivered),
        "read" => Some(DeliveryStatus::Read),
        "failed" | "invalid" | "expired" => Some(DeliveryStatus::Failed),
        // `pending`, `waiting`, `processing` and the like: nothing has happened yet.
        _ => None,
    }
}

fn rank(status: DeliveryStatus) -> u8 {
    match status {
        DeliveryStatus::Sent => 1,
        DeliveryStatus::Delivered => 2,
        DeliveryStatus::Read => 3,
        DeliveryStatus::Failed => 4,
    }
}

fn status(
    fields: &Value,
    at: DateTime<Utc>,
    normalise: &dyn Fn(&str) -> Option<String>,
) -> Option<StatusReport> {
    let processing = text_field(fields, "status");
    let acknowledgement = text_field(fields, "state");
    // A failure in either word wins (a message Fonnte gave up on has no later acknowledgement);
    // otherwise the further of the two.
    let (status, word) = [processing, acknowledgement]
        .into_iter()
        .filter_map(|word| Some((delivery(word.clone())?, word?)))
        .max_by_key(|(status, _)| rank(*status))?;
    let failed = status == DeliveryStatus::Failed;
    Some(StatusReport {
        provider: Provider::Fonnte,
        provider_message_id: text_field(fields, "id")?,
        status,
        reminder_id: None,
        // Not among the documented fields; used when a body carries it.
        recipient: text_field(fields, "target").and_then(|t| normalise(&t)),
        at,
        error_code: failed.then(|| word.to_ascii_lowercase()),
        error: if failed {
            text_field(fields, "reason")
        } else {
            None
        },
        billable: None,
        pricing_category: None,
    })
}

fn reply(
    fields: &Value,
    at: DateTime<Utc>,
    normalise: &dyn Fn(&str) -> Option<String>,
) -> Option<ReplyReport> {
    // A group chat message: the group wrote it, not a customer answering a reminder.
    if text_field(fields, "member").is_some() {
        return None;
    }
    let sender = text_field(fields, "sender")?;
    let phone = normalise(&sender)?;
    let message = fields
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let text = (!message.trim().is_empty()).then(|| message.to_owned());
    let provider_message_id = text_field(fields, "inboxid")
        .unwrap_or_else(|| synthetic_id(&phone, text_field(fields, "timestamp"), message));
    Some(ReplyReport {
        provider: Provider::Fonnte,
        provider_message_id,
        phone,
        reply_type: ReplyType::Text,
        text,
        button_payload: None,
        context_message_id: None,
        at,
    })
}

/// An id for a reply Fonnte gave none (the inbox feature is off): the same delivery retried gives
/// the same id. Two identical texts from one sender in the same second are one reply.
fn synthetic_id(phone: &str, timestamp: Option<String>, message: &str) -> String {
    let mut hash = Sha256::new();
    for part in [phone, timestamp.as_deref().unwrap_or_default(), message] {
        hash.update(part.len().to_string().as_bytes());
        hash.update(b":");
        hash.update(part.as_bytes());
    }
    format!("fonnte-{}", &hex::encode(hash.finalize())[..32])
}

#[cfg(test)]
mod tests;
