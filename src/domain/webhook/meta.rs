//! Reads Meta's WhatsApp Cloud API webhook body into reports.
//!
//! The body is `{"object": "whatsapp_business_account", "entry": [{"changes": [{"field": ..,
//! "value": {..}}]}]}`. A `messages` change carries `statuses[]` (what happened to messages the
//! business sent) and `messages[]` (what customers sent); a `user_preferences` change carries
//! marketing opt-outs and opt-ins. Meta adds fields and webhook kinds over time, so anything not
//! understood is counted in [`Parsed::ignored`] and skipped; only a body that is not JSON at all
//! is an error. The body must already be authenticated (see the signature module).

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::report::{
    ConsentReport, DeliveryStatus, ParseError, Parsed, Provider, ReplyReport, ReplyType, Report,
    StatusReport, text_field, unix_seconds,
};

/// The `object` of every WhatsApp Business Account webhook.
pub const OBJECT: &str = "whatsapp_business_account";

/// The only preference category whose stop/resume is a consent change.
pub const MARKETING_CATEGORY: &str = "marketing_messages";

/// Parses a signed webhook body.
///
/// `received_at` stands in for an item's time when Meta gave none (it always does in practice).
/// `normalise` turns a phone number as Meta writes it (digits, country code first) into the
/// product's E.164 form, or rejects it; an item whose phone is required and rejected is ignored.
pub fn parse<N>(body: &[u8], received_at: DateTime<Utc>, normalise: N) -> Result<Parsed, ParseError>
where
    N: Fn(&str) -> Option<String>,
{
    let root: Value = serde_json::from_slice(body)?;
    let mut out = Parsed::default();
    if root.get("object").and_then(Value::as_str) != Some(OBJECT) {
        out.ignored += 1;
        return Ok(out);
    }
    let ctx = Context {
        received_at,
        normalise: &normalise,
    };
    for entry in array(root.get("entry")) {
        for change in array(entry.get("changes")) {
            ctx.change(change, &mut out);
        }
    }
    Ok(out)
}

struct Context<'a> {
    received_at: DateTime<Utc>,
    normalise: &'a dyn Fn(&str) -> Option<String>,
}

impl Context<'_> {
    fn change(&self, change: &Value, out: &mut Parsed) {
        let Some(value) = change.get("value").filter(|v| v.is_object()) else {
            out.ignored += 1;
            return;
        };
        match change.get("field").and_then(Value::as_str) {
            // Hand-built test bodies often leave `field` out; Meta always sends it.
            Some("messages") | None => {
                let statuses = array(value.get("statuses"));
                let messages = array(value.get("messages"));
                if statuses.is_empty() && messages.is_empty() {
                    out.ignored += 1;
                }
                for s in statuses {
                    self.keep(self.status(s).map(Report::Status), out);
                }
                for m in messages {
                    self.keep(self.reply(m).map(Report::Reply), out);
                }
            }
            Some("user_preferences") => {
                let preferences = array(value.get("user_preferences"));
                if preferences.is_empty() {
                    out.ignored += 1;
                }
                for p in preferences {
                    self.keep(self.consent(p).map(Report::Consent), out);
                }
            }
            // Template updates, account alerts, message echoes and the like: not ours to report.
            Some(_) => out.ignored += 1,
        }
    }

    fn keep(&self, report: Option<Report>, out: &mut Parsed) {
        match report {
            Some(report) => out.push(report),
            None => out.ignored += 1,
        }
    }

    fn at(&self, item: &Value) -> DateTime<Utc> {
        unix_seconds(item.get("timestamp")).unwrap_or(self.received_at)
    }

    fn phone(&self, item: &Value, key: &str) -> Option<String> {
        text_field(item, key).and_then(|raw| (self.normalise)(&raw))
    }

    fn status(&self, s: &Value) -> Option<StatusReport> {
        let status = match s
            .get("status")?
            .as_str()?
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "sent" => DeliveryStatus::Sent,
            "delivered" => DeliveryStatus::Delivered,
            "read" => DeliveryStatus::Read,
            "failed" => DeliveryStatus::Failed,
            // `deleted`, `warning`, `played` and future values say nothing about delivery.
            _ => return None,
        };
        let first_error = s.get("errors").and_then(|e| e.get(0));
        let pricing = s.get("pricing");
        Some(StatusReport {
            provider: Provider::CloudApi,
            provider_message_id: text_field(s, "id")?,
            status,
            reminder_id: text_field(s, "biz_opaque_callback_data"),
            // Empty when the message went to a business-scoped user id rather than a number.
            recipient: self.phone(s, "recipient_id"),
            at: self.at(s),
            error_code: first_error.and_then(|e| text_field(e, "code")),
            error: first_error.and_then(describe_error),
            billable: pricing
                .and_then(|p| p.get("billable"))
                .and_then(Value::as_bool),
            pricing_category: pricing.and_then(|p| text_field(p, "category")),
        })
    }

    fn reply(&self, m: &Value) -> Option<ReplyReport> {
        let kind = m.get("type").and_then(Value::as_str).unwrap_or_default();
        let (reply_type, text, button_payload) = match kind {
            "text" => (ReplyType::Text, body_text(m.get("text"), "body"), None),
            "button" => {
                let button = m.get("button");
                let payload = button.and_then(|b| text_field(b, "payload"));
                (ReplyType::Button, body_text(button, "text"), payload)
            }
            "interactive" => {
                let chosen = chosen_reply(m.get("interactive"));
                let title = body_text(chosen, "title");
                (
                    ReplyType::Interactive,
                    title,
                    chosen.and_then(|c| text_field(c, "id")),
                )
            }
            // Notices about the customer's account or the chat, not something they said.
            "system" | "request_welcome" => return None,
            _ => (ReplyType::Other, None, None),
        };
        let context_message_id = m
            .get("context")
            .and_then(|c| text_field(c, "id"))
            // A reaction names the message it reacts to in its own object.
            .or_else(|| m.get("reaction").and_then(|r| text_field(r, "message_id")));
        Some(ReplyReport {
            provider: Provider::CloudApi,
            provider_message_id: text_field(m, "id")?,
            // Empty for a username adopter the business has not messaged lately.
            phone: self.phone(m, "from")?,
            reply_type,
            text,
            button_payload,
            context_message_id,
            at: self.at(m),
        })
    }

    fn consent(&self, p: &Value) -> Option<ConsentReport> {
        let category = text_field(p, "category").filter(|c| c == MARKETING_CATEGORY)?;
        let opted_out = match p
            .get("value")?
            .as_str()?
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "stop" => true,
            "resume" => false,
            _ => return None,
        };
        Some(ConsentReport {
            phone: self.phone(p, "wa_id")?,
            opted_out,
            category,
            at: self.at(p),
        })
    }
}

/// The `button_reply` or `list_reply` object of an interactive reply.
fn chosen_reply(interactive: Option<&Value>) -> Option<&Value> {
    let interactive = interactive?;
    match interactive.get("type").and_then(Value::as_str) {
        Some("button_reply") => interactive.get("button_reply"),
        Some("list_reply") => interactive.get("list_reply"),
        _ => None,
    }
}

/// Customer-written text, kept as written (only blank text counts as none).
fn body_text(parent: Option<&Value>, key: &str) -> Option<String> {
    let text = parent?.get(key)?.as_str()?;
    (!text.trim().is_empty()).then(|| text.to_owned())
}

/// One line for an error object: its title (or message), then the details when they add to it.
fn describe_error(error: &Value) -> Option<String> {
    let head = text_field(error, "title").or_else(|| text_field(error, "message"));
    let details = error
        .get("error_data")
        .and_then(|d| text_field(d, "details"));
    match (head, details) {
        (Some(head), Some(details)) if details != head => Some(format!("{head}: {details}")),
        (Some(head), _) => Some(head),
        (None, details) => details,
    }
}

fn array(value: Option<&Value>) -> &[Value] {
    value
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
