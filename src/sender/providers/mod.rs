//! WhatsApp providers behind one trait: `log`, Meta's `cloud_api`, and `fonnte`.
//! Each answers with a provider message id or a `SendError` that says whether retrying can
//! help; the sender decides retry or `message.failed` from that alone.

pub mod cloud_api;
pub mod fonnte;
pub mod log;

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use futures::future::BoxFuture;

use crate::configuration::{ProviderKind, WhatsappSettings};
use crate::domain::PhoneNumber;

/// Everything a provider needs to send one reminder.
#[derive(Debug, Clone)]
pub struct OutboundMessage {
    pub reminder_id: String,
    pub to: PhoneNumber,
    pub customer_name: String,
    pub plate_number: String,
    pub vehicle: Option<String>,
    pub due_date: NaiveDate,
    /// The due date as the recipient's locale writes it.
    pub due_date_text: String,
    pub locale: String,
    /// The rendered free-form text (used by text-mode providers).
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Worth retrying later: rate limits, outages, time-outs.
    Transient,
    /// Retrying cannot help: bad number, expired token, rejected template.
    Permanent,
}

/// A failed send, classified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct SendError {
    pub class: ErrorClass,
    /// The provider's code as a string (`"131026"`), or `http_<status>`, `timeout`, `connect`.
    pub code: String,
    pub message: String,
    /// How long the provider asked us to wait (`Retry-After`).
    pub retry_after: Option<Duration>,
}

impl SendError {
    pub fn transient(code: impl Into<String>, message: impl Into<String>) -> Self {
        SendError {
            class: ErrorClass::Transient,
            code: code.into(),
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn permanent(code: impl Into<String>, message: impl Into<String>) -> Self {
        SendError {
            class: ErrorClass::Permanent,
            code: code.into(),
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn is_transient(&self) -> bool {
        self.class == ErrorClass::Transient
    }

    /// Failures of the HTTP exchange itself: always transient. `timeout` when the provider did
    /// not answer within `whatsapp.request_timeout_ms`, `connect` when no answer could be had
    /// (refused, reset, closed early), `bad_response` when the answer could not be read.
    pub fn from_reqwest(e: &reqwest::Error) -> SendError {
        if e.is_timeout() {
            SendError::transient("timeout", "the provider did not answer in time")
        } else if e.is_decode() {
            SendError::transient("bad_response", format!("unreadable provider response: {e}"))
        } else {
            // reqwest's Display stops at "error sending request"; the cause says why.
            let mut reason = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                reason = format!("{reason}: {cause}");
                source = cause.source();
            }
            SendError::transient("connect", format!("no answer from the provider: {reason}"))
        }
    }
}

/// A provider's acceptance of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub provider_message_id: String,
}

pub trait WhatsappProvider: Send + Sync {
    /// The name reported in events and metrics.
    fn name(&self) -> &'static str;
    fn send<'a>(
        &'a self,
        message: &'a OutboundMessage,
    ) -> BoxFuture<'a, Result<Receipt, SendError>>;
}

/// Builds the configured provider.
pub fn from_settings(settings: &WhatsappSettings) -> anyhow::Result<Arc<dyn WhatsappProvider>> {
    let mut http = reqwest::Client::builder();
    if settings.http2_prior_knowledge {
        http = http.http2_prior_knowledge();
    }
    let http = http
        .timeout(Duration::from_millis(settings.request_timeout_ms))
        .connect_timeout(Duration::from_millis(
            settings.request_timeout_ms.min(5_000),
        ))
        // Over HTTP/1.1 every connection the sends in flight opened stays open for the next
        // send (over HTTP/2 they share one). A cap below sender.concurrency closed connections
        // under load only to open new ones the next moment (connect, accept and shutdown on
        // every send beyond the cap); the sender's semaphore already bounds how many there can
        // be, and idle ones close after 90 s.
        .pool_max_idle_per_host(usize::MAX)
        .user_agent(concat!("reminder/", env!("CARGO_PKG_VERSION")))
        .build()?;
    Ok(match settings.provider {
        ProviderKind::Log => Arc::new(log::LogProvider),
        ProviderKind::CloudApi => Arc::new(
            cloud_api::CloudApiClient::new(http, settings.cloud_api.clone())
                .with_locales(settings.locales.clone()),
        ),
        ProviderKind::Fonnte => Arc::new(fonnte::FonnteClient::new(
            http,
            settings.fonnte.clone(),
            settings.default_country_code.clone(),
        )),
    })
}

/// The longest `Retry-After` honoured; a larger value is taken as this (it still waits, and
/// bounds what a broken header can do).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Reads a `Retry-After` header, in seconds or as an HTTP date (RFC 9110 §10.2.3).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds.min(MAX_RETRY_AFTER.as_secs())),
        Err(_) => {
            let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
            (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
                .to_std()
                .unwrap_or_default()
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// Statuses that mean "try again later" whatever the body says: 429, every 5xx, and 408
/// (the provider timed out waiting for our request, which is a time-out like any other).
pub fn is_transient_status(status: u16) -> bool {
    status == 429 || status == 408 || status >= 500
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn retry_after_is_read_in_seconds_and_as_an_http_date() {
        assert_eq!(retry_after(&headers("7")), Some(Duration::from_secs(7)));
        let in_a_minute = (chrono::Utc::now() + chrono::TimeDelta::seconds(60))
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let wait = retry_after(&headers(&in_a_minute)).unwrap();
        assert!(wait > Duration::from_secs(55) && wait <= Duration::from_secs(60));
        assert_eq!(
            retry_after(&headers("Wed, 21 Oct 2015 07:28:00 GMT")),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&headers("soon")), None);
        assert_eq!(retry_after(&headers("99999999999")), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }
}
