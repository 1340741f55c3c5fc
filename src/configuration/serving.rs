//! The `http`, `alerts`, `telemetry` and `runtime` sections: how the process serves its API
//! and operations endpoints, logs, and stops.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Secret, invalid};

#[derive(Clone, Deserialize)]
pub struct HttpSettings {
    pub bind: String,
    /// Where a process without the api role serves /metrics, /healthz and /readyz ("": not).
    pub metrics_bind: String,
    pub api_token: Secret,
    /// Lets an API bound to a non-loopback address run without `api_token`.
    pub allow_public_without_token: bool,
    pub request_timeout_ms: u64,
    pub max_concurrent_requests: usize,
    /// Size of the API's own read-only pool (the roles' pool is `database.max_connections`).
    pub db_connections: u32,
    /// Time a client may take to send a request's headers, and to start the next one on a
    /// kept-alive connection; on every listener (API, operations, webhook).
    pub header_read_timeout_ms: u64,
    /// Connections open at once on each listener; more wait to be accepted.
    pub max_connections: usize,
}

impl HttpSettings {
    /// The listeners' limits.
    pub fn listener_limits(&self) -> crate::http_listener::Limits {
        crate::http_listener::Limits {
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms),
            max_connections: self.max_connections,
        }
    }
}

/// The `webhook` section: where the internet-facing webhook role listens.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookSettings {
    pub bind: String,
}

impl WebhookSettings {
    /// `webhook.bind`, or `None` when empty (the role is off).
    pub fn socket_addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        let bind = self.bind.trim();
        if bind.is_empty() {
            return Ok(None);
        }
        bind.parse().map(Some).map_err(|_| {
            invalid(
                "webhook.bind",
                format!("not an address:port: {:?}", self.bind),
            )
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct AlertSettings {
    pub window_days: u32,
    pub max_frequency: u32,
}

/// How long the message history is kept.
#[derive(Debug, Clone, Deserialize)]
pub struct RetentionSettings {
    /// Days of message history, statuses, replies and finished dispatch records kept; 0 keeps
    /// everything.
    pub history_days: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TelemetrySettings {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RuntimeSettings {
    pub shutdown_timeout_secs: u64,
}

impl std::fmt::Debug for HttpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSettings")
            .field("bind", &self.bind)
            .field("metrics_bind", &self.metrics_bind)
            .field("api_token", &self.api_token)
            .field(
                "allow_public_without_token",
                &self.allow_public_without_token,
            )
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("max_concurrent_requests", &self.max_concurrent_requests)
            .field("db_connections", &self.db_connections)
            .finish()
    }
}

impl HttpSettings {
    pub fn socket_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.bind
            .parse()
            .map_err(|_| invalid("http.bind", format!("not an address:port: {:?}", self.bind)))
    }
    /// Refuses an API reachable from other hosts with no token: every customer's name and phone
    /// would be one request away. A deliberate choice can override it.
    pub fn check_public_token(&self) -> Result<(), ConfigError> {
        let addr = self.socket_addr()?;
        if !addr.ip().is_loopback()
            && self.api_token.expose().is_empty()
            && !self.allow_public_without_token
        {
            return Err(invalid(
                "http.api_token",
                format!(
                    "must be set when the API listens on a non-loopback address ({addr}); \
                     set http.allow_public_without_token = true to run it open on purpose"
                ),
            ));
        }
        Ok(())
    }

    /// `http.metrics_bind`, or `None` when empty.
    pub fn metrics_socket_addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        let bind = self.metrics_bind.trim();
        if bind.is_empty() {
            return Ok(None);
        }
        bind.parse().map(Some).map_err(|_| {
            invalid(
                "http.metrics_bind",
                format!("not an address:port: {:?}", self.metrics_bind),
            )
        })
    }
}

impl RuntimeSettings {
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }
}
