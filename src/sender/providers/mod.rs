//! WhatsApp providers behind one trait (contract §4): `log`, Meta's `cloud_api`, and `fonnte`.
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

    /// Time-outs and connection failures of the HTTP client: always transient.
    pub fn from_reqwest(e: &reqwest::Error) -> SendError {
        if e.is_timeout() {
            SendError::transient("timeout", "the provider did not answer in time")
        } else if e.is_connect() {
            SendError::transient("connect", "cannot connect to the provider")
        } else if e.is_decode() || e.is_body() {
            SendError::transient("bad_response", format!("unreadable provider response: {e}"))
        } else {
            SendError::transient("http_error", format!("request failed: {e}"))
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
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(settings.request_timeout_ms))
        .connect_timeout(Duration::from_millis(
            settings.request_timeout_ms.min(5_000),
        ))
        .pool_max_idle_per_host(256)
        .user_agent(concat!("reminder/", env!("CARGO_PKG_VERSION")))
        .build()?;
    Ok(match settings.provider {
        ProviderKind::Log => Arc::new(log::LogProvider),
        ProviderKind::CloudApi => Arc::new(cloud_api::CloudApiClient::new(
            http,
            settings.cloud_api.clone(),
        )),
        ProviderKind::Fonnte => Arc::new(fonnte::FonnteClient::new(
            http,
            settings.fonnte.clone(),
            settings.default_country_code.clone(),
        )),
    })
}

/// Reads a `Retry-After` header given in seconds (the HTTP-date form is rare for APIs and
/// treated as absent).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}
