//! Fonnte (an Indonesian WhatsApp gateway): `POST {base_url}/send` with the token in the
//! `Authorization` header and form fields `target`, `message`, `countryCode`. Success is
//! `"status": true` in the JSON body (Fonnte answers errors with HTTP 200 and
//! `"status": false, "reason": ...`).

use futures::future::BoxFuture;
use serde_json::Value;

use super::{
    OutboundMessage, Receipt, RequestFate, SendError, WhatsappProvider, is_transient_status,
    retry_after,
};
use crate::configuration::FonnteSettings;

pub struct FonnteClient {
    http: reqwest::Client,
    url: String,
    settings: FonnteSettings,
    country_code: String,
}

impl FonnteClient {
    pub fn new(http: reqwest::Client, settings: FonnteSettings, country_code: String) -> Self {
        let url = format!("{}/send", settings.base_url.trim_end_matches('/'));
        FonnteClient {
            http,
            url,
            settings,
            country_code,
        }
    }

    async fn call(&self, m: &OutboundMessage) -> Result<Receipt, SendError> {
        let response = self
            .http
            .post(&self.url)
            .header(reqwest::header::AUTHORIZATION, self.settings.token.expose())
            .form(&[
                ("target", m.to.as_str()),
                ("message", m.text.as_str()),
                ("countryCode", self.country_code.as_str()),
            ])
            .send()
            .await
            .map_err(|e| SendError::from_reqwest(&e))?;
        let status = response.status().as_u16();
        let wait = retry_after(response.headers());
        if is_transient_status(status) {
            let mut e = SendError::transient(format!("http_{status}"), "Fonnte is unavailable");
            e.retry_after = wait;
            return Err(e);
        }
        if !(200..300).contains(&status) {
            // An HTML error page is as final as a JSON one: the request itself was refused.
            let body: Option<Value> = response.json().await.ok();
            return Err(SendError::permanent(
                format!("http_{status}"),
                body.as_ref()
                    .map(reason)
                    .unwrap_or_else(|| "no reason given".into()),
            ));
        }
        // A 2xx whose body is not Fonnte's JSON came from something in front of Fonnte (a proxy,
        // a maintenance page), not from Fonnte accepting the message: worth another try.
        // It may also have been Fonnte's answer, cut short: the message may have gone out.
        let body: Value = response.json().await.map_err(|e| {
            SendError::transient("bad_response", format!("unreadable Fonnte response: {e}"))
                .with_fate(RequestFate::AnswerLost)
        })?;
        if body.get("status").and_then(Value::as_bool) == Some(true) {
            let id = match body.pointer("/id/0") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => body
                    .get("requestid")
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "unknown".into()),
            };
            Ok(Receipt {
                provider_message_id: id,
            })
        } else {
            // Fonnte has no error codes, only a `reason` text, and answers refusals with 200.
            Err(SendError::permanent("fonnte_rejected", reason(&body)))
        }
    }
}

fn reason(body: &Value) -> String {
    body.get("reason")
        .or_else(|| body.get("detail"))
        .and_then(Value::as_str)
        .unwrap_or("no reason given")
        .to_string()
}

impl WhatsappProvider for FonnteClient {
    fn name(&self) -> &'static str {
        "fonnte"
    }
    fn send<'a>(
        &'a self,
        message: &'a OutboundMessage,
    ) -> BoxFuture<'a, Result<Receipt, SendError>> {
        Box::pin(self.call(message))
    }
}
