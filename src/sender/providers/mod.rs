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

/// Whether a failed call's request may have reached the provider. It decides whether a retry
/// could send the message a second time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFate {
    /// It never left this host: connect refused or timed out, DNS, TLS handshake. A retry
    /// cannot duplicate anything.
    NeverLeft,
    /// The provider answered with an error status: it did not take the message.
    Refused,
    /// The request was written but its answer was lost: a time-out after it went out, or the
    /// connection reset or closed before the answer. The provider may have sent the message.
    AnswerLost,
    /// The provider answered 2xx but the body could not be read or parsed: it most likely sent
    /// the message, and its id is unknown.
    AcceptedUnreadable,
}

impl RequestFate {
    /// True when the provider may have sent the message although no answer says so.
    pub fn may_have_reached(self) -> bool {
        matches!(
            self,
            RequestFate::AnswerLost | RequestFate::AcceptedUnreadable
        )
    }

    /// How a failed HTTP exchange ended, from reqwest's error. A connect error (refused, DNS,
    /// TLS handshake, connect time-out) is reported before anything is written; every other
    /// failure of a sent request (time-out, reset, closed early, unreadable body) may come
    /// after the request went out.
    pub fn of_reqwest(e: &reqwest::Error) -> RequestFate {
        if e.is_connect() || e.is_builder() {
            RequestFate::NeverLeft
        } else {
            RequestFate::AnswerLost
        }
    }
}

/// A failed send, classified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct SendError {
    pub class: ErrorClass,
    /// Whether the request may have reached the provider.
    pub fate: RequestFate,
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
            fate: RequestFate::Refused,
            code: code.into(),
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn permanent(code: impl Into<String>, message: impl Into<String>) -> Self {
        SendError {
            class: ErrorClass::Permanent,
            fate: RequestFate::Refused,
            code: code.into(),
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn is_transient(&self) -> bool {
        self.class == ErrorClass::Transient
    }

    /// The same error with its fate.
    pub fn with_fate(mut self, fate: RequestFate) -> Self {
        self.fate = fate;
        self
    }

    /// Failures of the HTTP exchange itself: always transient. `connect` when the request never
    /// left (`RequestFate::NeverLeft`), `timeout` when the provider did not answer within
    /// `whatsapp.request_timeout_ms`, `bad_response` when the answer could not be read, and
    /// `connect` again (with the fate telling them apart) when the connection broke before the
    /// answer.
    pub fn from_reqwest(e: &reqwest::Error) -> SendError {
        let fate = RequestFate::of_reqwest(e);
        // reqwest's Display stops at "error sending request"; the cause says why.
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            reason = format!("{reason}: {cause}");
            source = cause.source();
        }
        let error = if fate == RequestFate::NeverLeft {
            SendError::transient("connect", format!("could not reach the provider: {reason}"))
        } else if e.is_timeout() {
            SendError::transient("timeout", "the provider did not answer in time")
        } else if e.is_decode() || e.is_body() {
            SendError::transient(
                "bad_response",
                format!("unreadable provider response: {reason}"),
            )
        } else {
            SendError::transient(
                "connect",
                format!("the connection broke before the answer: {reason}"),
            )
        };
        error.with_fate(fate)
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

    /// The error of one POST to `addr` by a client with a 300 ms time-out.
    async fn post_error(addr: std::net::SocketAddr) -> SendError {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        let e = client
            .post(format!("http://{addr}/messages"))
            .body("{}")
            .send()
            .await
            .expect_err("no answer expected");
        SendError::from_reqwest(&e)
    }

    /// A listener that reads each request, then hands the connection to `answer`.
    async fn listener(
        answer: impl Fn(tokio::net::TcpStream) -> futures::future::BoxFuture<'static, ()>
        + Send
        + 'static,
    ) -> std::net::SocketAddr {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                tokio::spawn(answer(stream));
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_closed_port_is_a_call_that_never_left() {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let e = post_error(addr).await;
        assert_eq!(e.fate, RequestFate::NeverLeft);
        assert!(!e.fate.may_have_reached());
        assert_eq!(
            (e.class, e.code.as_str()),
            (ErrorClass::Transient, "connect")
        );
    }

    #[tokio::test]
    async fn a_connection_closed_after_the_request_may_have_reached_the_provider() {
        let addr = listener(|stream| Box::pin(async move { drop(stream) })).await;
        let e = post_error(addr).await;
        assert_eq!(e.fate, RequestFate::AnswerLost, "{e}");
        assert!(e.fate.may_have_reached());
        assert!(e.is_transient());
    }

    #[tokio::test]
    async fn a_time_out_after_the_request_may_have_reached_the_provider() {
        let addr = listener(|stream| {
            Box::pin(async move {
                tokio::time::sleep(Duration::from_secs(5)).await;
                drop(stream)
            })
        })
        .await;
        let e = post_error(addr).await;
        assert_eq!(e.fate, RequestFate::AnswerLost, "{e}");
        assert_eq!(e.code, "timeout");
    }

    #[tokio::test]
    async fn an_answer_cut_short_may_have_reached_the_provider() {
        use tokio::io::AsyncWriteExt;
        let addr = listener(|mut stream| {
            Box::pin(async move {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"messa")
                    .await;
                drop(stream)
            })
        })
        .await;
        let client = reqwest::Client::new();
        let response = client
            .post(format!("http://{addr}/messages"))
            .send()
            .await
            .expect("the head arrives");
        let e = response.bytes().await.expect_err("the body is cut short");
        let e = SendError::from_reqwest(&e);
        assert_eq!(e.fate, RequestFate::AnswerLost, "{e}");
    }

    #[test]
    fn answers_from_the_provider_are_refusals() {
        assert_eq!(
            SendError::transient("http_503", "x").fate,
            RequestFate::Refused
        );
        assert!(!RequestFate::Refused.may_have_reached());
        assert!(RequestFate::AcceptedUnreadable.may_have_reached());
    }
}
