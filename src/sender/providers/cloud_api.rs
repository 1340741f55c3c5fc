//! Meta's WhatsApp Business Cloud API:
//! `POST {base_url}/{api_version}/{phone_number_id}/messages` with a bearer token.
//!
//! Business-initiated messages need an approved template, so a template message is sent by
//! default (body parameters: customer name, plate number, due date); with an empty
//! `template_name` a free-form text message is sent instead (only delivered inside a 24-hour
//! customer service window). `biz_opaque_callback_data` carries the reminder id so delivery
//! webhooks can be matched to it. A `[whatsapp.locales.<locale>]` section may name another
//! template or language for events in that locale.

use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::{
    OutboundMessage, Receipt, RequestFate, SendError, WhatsappProvider, is_transient_status,
    retry_after,
};
use std::collections::HashMap;

use crate::configuration::{CloudApiSettings, LocaleSettings, locale_section};

pub struct CloudApiClient {
    http: reqwest::Client,
    url: String,
    settings: CloudApiSettings,
    /// Per-locale template name and language (`[whatsapp.locales.<locale>]`).
    locales: HashMap<String, LocaleSettings>,
}

/// The Cloud API error of a template that does not exist in the requested language.
const TEMPLATE_LANGUAGE_MISSING: &str = "132001";

/// Cloud API error codes worth retrying (throttling and temporary outages on Meta's side);
/// every other code is permanent.
const TRANSIENT_CODES: &[i64] = &[
    1, 2, 4, 80007, 130429, 131000, 131016, 131048, 131056, 131057, 133016,
];

impl CloudApiClient {
    pub fn new(http: reqwest::Client, settings: CloudApiSettings) -> Self {
        let url = format!(
            "{}/{}/{}/messages",
            settings.base_url.trim_end_matches('/'),
            settings.api_version.trim_matches('/'),
            settings.phone_number_id.trim()
        );
        CloudApiClient {
            http,
            url,
            settings,
            locales: HashMap::new(),
        }
    }

    /// Uses each locale's template name and language where its section sets them.
    pub fn with_locales(mut self, locales: HashMap<String, LocaleSettings>) -> Self {
        self.locales = locales;
        self
    }

    /// The template name and language code for an event's locale.
    fn template_for(&self, locale: &str) -> (&str, &str) {
        let section = locale_section(&self.locales, locale);
        (
            section
                .and_then(|l| l.template_name.as_deref())
                .unwrap_or(&self.settings.template_name),
            section
                .and_then(|l| l.template_language.as_deref())
                .unwrap_or(&self.settings.template_language),
        )
    }

    /// The request body for one reminder.
    pub fn body(&self, m: &OutboundMessage) -> Value {
        let (template_name, template_language) = self.template_for(&m.locale);
        if template_name.trim().is_empty() {
            json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": m.to.as_str(),
                "type": "text",
                "text": { "preview_url": false, "body": m.text },
                "biz_opaque_callback_data": m.reminder_id,
            })
        } else {
            json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": m.to.as_str(),
                "type": "template",
                "template": {
                    "name": template_name,
                    "language": { "code": template_language },
                    "components": [{
                        "type": "body",
                        "parameters": [
                            { "type": "text", "text": m.customer_name },
                            { "type": "text", "text": m.plate_number },
                            { "type": "text", "text": m.due_date_text },
                        ],
                    }],
                },
                "biz_opaque_callback_data": m.reminder_id,
            })
        }
    }

    async fn call(&self, m: &OutboundMessage) -> Result<Receipt, SendError> {
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(self.settings.access_token.expose())
            .json(&self.body(m))
            .send()
            .await
            .map_err(|e| SendError::from_reqwest(&e))?;
        let status = response.status();
        let wait = retry_after(response.headers());
        if status.is_success() {
            // Accepted, but without a readable id the outcome is uncertain: the sender decides
            // (counted as sent with id "unknown", or held until a status webhook names it).
            let unreadable = |why: String| {
                SendError::transient("bad_response", format!("unreadable 2xx answer: {why}"))
                    .with_fate(RequestFate::AcceptedUnreadable)
            };
            let body: Value = response
                .json()
                .await
                .map_err(|e| unreadable(e.to_string()))?;
            return match body.pointer("/messages/0/id").and_then(Value::as_str) {
                Some(id) => Ok(Receipt {
                    provider_message_id: id.to_string(),
                }),
                None => Err(unreadable("no messages[0].id".into())),
            };
        }
        let body: Option<Value> = response.json().await.ok();
        let mut error = classify(status.as_u16(), body.as_ref());
        error.retry_after = wait;
        if error.code == TEMPLATE_LANGUAGE_MISSING {
            let (name, language) = self.template_for(&m.locale);
            error.message = format!(
                "template {name:?} does not exist in language {language:?} (set template_language, or add the translation in WhatsApp Manager): {}",
                error.message
            );
        }
        Err(error)
    }
}

/// Classifies an error answer: 429, 408 and 5xx are transient whatever the body says;
/// otherwise the error code decides. `code` is the provider's code when the body has one, else
/// `http_<status>`.
pub fn classify(status: u16, body: Option<&Value>) -> SendError {
    let error = body.and_then(|b| b.get("error"));
    let code = error.and_then(|e| e.get("code")).and_then(Value::as_i64);
    let mut message = error
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("no error message")
        .to_string();
    if let Some(details) = error
        .and_then(|e| e.pointer("/error_data/details"))
        .and_then(Value::as_str)
    {
        message = format!("{message} ({details})");
    }
    let code_text = code
        .map(|c| c.to_string())
        .unwrap_or_else(|| format!("http_{status}"));
    let transient =
        is_transient_status(status) || code.is_some_and(|c| TRANSIENT_CODES.contains(&c));
    if transient {
        SendError::transient(code_text, message)
    } else {
        SendError::permanent(code_text, message)
    }
}

impl WhatsappProvider for CloudApiClient {
    fn name(&self) -> &'static str {
        "cloud_api"
    }
    fn send<'a>(
        &'a self,
        message: &'a OutboundMessage,
    ) -> BoxFuture<'a, Result<Receipt, SendError>> {
        Box::pin(self.call(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sender::providers::ErrorClass;

    fn err(code: i64) -> Value {
        json!({"error": {"message": "x", "type": "OAuthException", "code": code,
                         "error_data": {"messaging_product": "whatsapp", "details": "d"},
                         "fbtrace_id": "A"}})
    }

    #[test]
    fn retryable_and_permanent_codes_are_told_apart() {
        for code in [
            1, 2, 4, 80007, 130429, 131000, 131016, 131048, 131056, 131057, 133016,
        ] {
            assert_eq!(
                classify(400, Some(&err(code))).class,
                ErrorClass::Transient,
                "{code}"
            );
        }
        for code in [100, 190, 131026, 131047, 132001] {
            let e = classify(400, Some(&err(code)));
            assert_eq!(e.class, ErrorClass::Permanent, "{code}");
            assert_eq!(e.code, code.to_string());
        }
    }

    #[test]
    fn http_status_wins_over_the_body_for_429_and_5xx() {
        assert!(classify(429, None).is_transient());
        assert_eq!(classify(503, None).code, "http_503");
        assert!(classify(500, Some(&err(131026))).is_transient());
        assert_eq!(classify(404, None).class, ErrorClass::Permanent);
    }
}
