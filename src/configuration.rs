//! Configuration: the layered settings of contract §7, validated once at start-up.
//!
//! Layers, later wins: the defaults compiled in from `config/default.toml`, then
//! `{config dir}/default.toml` and `{config dir}/{REMINDER_ENV}.toml` when present (the config
//! dir is `./config`, or `REMINDER_CONFIG_DIR`), then `--config FILE`, then environment
//! variables `REMINDER__SECTION__KEY`. Every value that can be wrong (provider names, URLs,
//! cron expressions, time zones, addresses) is checked here, and the error names its key, so a
//! bad deployment stops at start-up instead of failing on the first message.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono_tz::Tz;
use serde::Deserialize;

use crate::domain::CountryCode;

const DEFAULTS: &str = include_str!("../config/default.toml");

/// A configuration problem, always naming the offending key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(String),
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

impl From<config::ConfigError> for ConfigError {
    fn from(e: config::ConfigError) -> Self {
        // Kept as text: as a source it would be printed twice in the one-line error chain.
        ConfigError::Load(e.to_string())
    }
}

/// Enums read from text with an error that lists the accepted values (the config crate adds
/// the key).
macro_rules! text_enum {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(value: String) -> Result<Self, String> {
                match value.trim() {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(
                        "unknown value {other:?} (expected {})",
                        [$($text),+].join(", ")
                    )),
                }
            }
        }
    };
}

text_enum!(ProviderKind { Log => "log", CloudApi => "cloud_api", Fonnte => "fonnte" });
text_enum!(QueueType { Quorum => "quorum", Classic => "classic" });
text_enum!(LogFormat { Pretty => "pretty", Json => "json" });

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub amqp: AmqpSettings,
    pub producer: ProducerSettings,
    pub sender: SenderSettings,
    pub tracker: TrackerSettings,
    pub whatsapp: WhatsappSettings,
    pub http: HttpSettings,
    pub alerts: AlertSettings,
    pub telemetry: TelemetrySettings,
    pub runtime: RuntimeSettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout_ms: u64,
    pub migrate_on_start: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AmqpSettings {
    pub url: String,
    pub exchange: String,
    pub queue_prefix: String,
    pub queue_type: QueueType,
    pub delivery_limit: u32,
    pub max_message_bytes: usize,
    pub publish_window: usize,
    pub reconnect_initial_ms: u64,
    pub reconnect_max_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum QueueType {
    Quorum,
    Classic,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ProducerSettings {
    pub schedule: String,
    pub timezone: String,
    pub days_ahead: u32,
    pub overdue_days: u32,
    pub catch_up_on_start: bool,
    pub source: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SenderSettings {
    pub concurrency: usize,
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    pub recipient_interval_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TrackerSettings {
    pub batch_size: usize,
    pub batch_linger_ms: u64,
    pub batches_in_flight: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WhatsappSettings {
    pub provider: ProviderKind,
    pub default_country_code: String,
    pub default_locale: String,
    pub max_per_second: u32,
    pub max_attempts: u32,
    pub request_timeout_ms: u64,
    /// Speak HTTP/2 from the first byte to an `http://` provider URL (h2c). `https://` URLs
    /// negotiate HTTP/2 by ALPN without it (with it, they offer HTTP/2 alone).
    pub http2_prior_knowledge: bool,
    pub message_template: String,
    pub cloud_api: CloudApiSettings,
    pub fonnte: FonnteSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum ProviderKind {
    Log,
    CloudApi,
    Fonnte,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Log => "log",
            ProviderKind::CloudApi => "cloud_api",
            ProviderKind::Fonnte => "fonnte",
        }
    }
}

#[derive(Clone, Deserialize)]
pub struct CloudApiSettings {
    pub base_url: String,
    pub api_version: String,
    pub phone_number_id: String,
    pub access_token: Secret,
    pub template_name: String,
    pub template_language: String,
}

#[derive(Clone, Deserialize)]
pub struct FonnteSettings {
    pub base_url: String,
    pub token: Secret,
}

#[derive(Clone, Deserialize)]
pub struct HttpSettings {
    pub bind: String,
    /// Where a process without the api role serves /metrics, /healthz and /readyz ("": not).
    pub metrics_bind: String,
    pub api_token: Secret,
    pub request_timeout_ms: u64,
    pub max_concurrent_requests: usize,
    /// Size of the API's own read-only pool (the roles' pool is `database.max_connections`).
    pub db_connections: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AlertSettings {
    pub window_days: u32,
    pub max_frequency: u32,
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

/// A string that never shows up in `Debug` output or logs.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            f.write_str("\"\"")
        } else {
            f.write_str("\"[redacted]\"")
        }
    }
}

impl std::fmt::Debug for CloudApiSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudApiSettings")
            .field("base_url", &self.base_url)
            .field("api_version", &self.api_version)
            .field("phone_number_id", &self.phone_number_id)
            .field("access_token", &self.access_token)
            .field("template_name", &self.template_name)
            .field("template_language", &self.template_language)
            .finish()
    }
}

impl std::fmt::Debug for FonnteSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FonnteSettings")
            .field("base_url", &self.base_url)
            .field("token", &self.token)
            .finish()
    }
}

impl std::fmt::Debug for HttpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSettings")
            .field("bind", &self.bind)
            .field("metrics_bind", &self.metrics_bind)
            .field("api_token", &self.api_token)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("max_concurrent_requests", &self.max_concurrent_requests)
            .field("db_connections", &self.db_connections)
            .finish()
    }
}

impl Settings {
    /// Loads every layer of contract §7 and validates the result.
    pub fn load(config_file: Option<&Path>) -> Result<Settings, ConfigError> {
        let dir = std::env::var_os("REMINDER_CONFIG_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("config"));
        let env = std::env::var("REMINDER_ENV").unwrap_or_else(|_| "local".to_string());
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
            .add_source(config::File::from(dir.join("default.toml")).required(false))
            .add_source(config::File::from(dir.join(format!("{env}.toml"))).required(false));
        if let Some(file) = config_file {
            builder = builder.add_source(config::File::from(file).required(true));
        }
        let settings: Settings = builder
            .add_source(
                config::Environment::with_prefix("REMINDER")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(false),
            )
            .build()?
            .try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// The compiled-in defaults only: what tests and the benchmark start from.
    pub fn defaults() -> Settings {
        config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize())
            .expect("the compiled-in config/default.toml is valid")
    }

    /// Checks everything serde cannot: formats, ranges and combinations.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.database.url.starts_with("postgres://")
            || self.database.url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "database.url",
                "must be a postgres:// or postgresql:// URL",
            ));
        }
        sqlx::postgres::PgConnectOptions::from_str(&self.database.url)
            .map_err(|e| invalid("database.url", format!("not a PostgreSQL URL: {e}")))?;
        if self.database.max_connections == 0 {
            return Err(invalid("database.max_connections", "must be at least 1"));
        }
        let nodes = self.amqp.node_urls();
        if nodes.is_empty() {
            return Err(invalid("amqp.url", "no broker address given"));
        }
        for node in &nodes {
            lapin::uri::AMQPUri::from_str(node)
                .map_err(|e| invalid("amqp.url", format!("not an AMQP URL ({e})")))?;
        }
        if self.amqp.exchange.trim().is_empty() {
            return Err(invalid("amqp.exchange", "must not be empty"));
        }
        if self.amqp.delivery_limit == 0 {
            return Err(invalid("amqp.delivery_limit", "must be at least 1"));
        }
        if self.amqp.publish_window == 0 {
            return Err(invalid("amqp.publish_window", "must be at least 1"));
        }
        if self.amqp.max_message_bytes < 1024 {
            return Err(invalid("amqp.max_message_bytes", "must be at least 1024"));
        }
        self.producer.cron()?;
        self.producer.tz()?;
        if self.sender.concurrency == 0 || self.sender.concurrency > u16::MAX as usize {
            return Err(invalid("sender.concurrency", "must be between 1 and 65535"));
        }
        if self.sender.retry_initial_ms == 0
            || self.sender.retry_max_ms < self.sender.retry_initial_ms
        {
            return Err(invalid(
                "sender.retry_max_ms",
                "must be at least sender.retry_initial_ms, which must be positive",
            ));
        }
        if self.tracker.batch_size == 0 || self.tracker.batch_size > 10_000 {
            return Err(invalid("tracker.batch_size", "must be between 1 and 10000"));
        }
        if self.tracker.batches_in_flight == 0 || self.tracker.batches_in_flight > 64 {
            return Err(invalid(
                "tracker.batches_in_flight",
                "must be between 1 and 64",
            ));
        }
        CountryCode::parse(&self.whatsapp.default_country_code)
            .map_err(|e| invalid("whatsapp.default_country_code", e.to_string()))?;
        if self.whatsapp.max_attempts == 0 {
            return Err(invalid("whatsapp.max_attempts", "must be at least 1"));
        }
        if self.whatsapp.request_timeout_ms == 0 {
            return Err(invalid("whatsapp.request_timeout_ms", "must be positive"));
        }
        crate::sender::render::MessageTemplate::parse(&self.whatsapp.message_template)
            .map_err(|e| invalid("whatsapp.message_template", e))?;
        check_http_url(
            "whatsapp.cloud_api.base_url",
            &self.whatsapp.cloud_api.base_url,
        )?;
        check_http_url("whatsapp.fonnte.base_url", &self.whatsapp.fonnte.base_url)?;
        match self.whatsapp.provider {
            ProviderKind::Log => {}
            ProviderKind::CloudApi => {
                let c = &self.whatsapp.cloud_api;
                if c.phone_number_id.trim().is_empty() {
                    return Err(invalid(
                        "whatsapp.cloud_api.phone_number_id",
                        "required when whatsapp.provider = \"cloud_api\"",
                    ));
                }
                if c.access_token.is_empty() {
                    return Err(invalid(
                        "whatsapp.cloud_api.access_token",
                        "required when whatsapp.provider = \"cloud_api\"",
                    ));
                }
            }
            ProviderKind::Fonnte => {
                if self.whatsapp.fonnte.token.is_empty() {
                    return Err(invalid(
                        "whatsapp.fonnte.token",
                        "required when whatsapp.provider = \"fonnte\"",
                    ));
                }
            }
        }
        self.http.socket_addr()?;
        self.http.metrics_socket_addr()?;
        if self.http.max_concurrent_requests == 0 {
            return Err(invalid(
                "http.max_concurrent_requests",
                "must be at least 1",
            ));
        }
        if self.http.db_connections == 0 {
            return Err(invalid("http.db_connections", "must be at least 1"));
        }
        if self.alerts.window_days == 0 {
            return Err(invalid("alerts.window_days", "must be at least 1"));
        }
        tracing_subscriber::EnvFilter::try_new(&self.telemetry.level)
            .map_err(|e| invalid("telemetry.level", e.to_string()))?;
        Ok(())
    }
}

fn check_http_url(key: &'static str, value: &str) -> Result<(), ConfigError> {
    let url = reqwest::Url::parse(value).map_err(|e| invalid(key, format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(key, "must be an http:// or https:// URL"));
    }
    Ok(())
}

impl AmqpSettings {
    /// The broker nodes to try, in order.
    pub fn node_urls(&self) -> Vec<String> {
        self.url
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }
    pub fn queue(&self, role: &str) -> String {
        format!("{}{}", self.queue_prefix, role)
    }
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dead", self.exchange)
    }
}

impl ProducerSettings {
    pub fn cron(&self) -> Result<croner::Cron, ConfigError> {
        croner::Cron::from_str(&self.schedule)
            .map_err(|e| invalid("producer.schedule", format!("not a cron expression: {e}")))
    }
    pub fn tz(&self) -> Result<Tz, ConfigError> {
        self.timezone.parse::<Tz>().map_err(|_| {
            invalid(
                "producer.timezone",
                format!("unknown time zone {:?}", self.timezone),
            )
        })
    }
}

impl HttpSettings {
    pub fn socket_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.bind
            .parse()
            .map_err(|_| invalid("http.bind", format!("not an address:port: {:?}", self.bind)))
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

impl SenderSettings {
    /// Delay before retry number `retry` (1-based), before jitter.
    pub fn retry_delay(&self, retry: u32) -> Duration {
        let factor = 1u64 << retry.saturating_sub(1).min(30);
        Duration::from_millis(
            self.retry_initial_ms
                .saturating_mul(factor)
                .min(self.retry_max_ms),
        )
    }
}

impl RuntimeSettings {
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_in_defaults_are_valid() {
        Settings::defaults().validate().unwrap();
    }

    #[test]
    fn an_unknown_provider_names_its_key() {
        let err = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
            .set_override("whatsapp.provider", "carrier_pigeon")
            .unwrap()
            .build()
            .unwrap()
            .try_deserialize::<Settings>()
            .unwrap_err();
        assert!(err.to_string().contains("whatsapp.provider"), "{err}");
    }

    #[test]
    fn a_bad_cron_expression_names_its_key() {
        let mut s = Settings::defaults();
        s.producer.schedule = "every morning".into();
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("producer.schedule"), "{err}");
    }

    #[test]
    fn a_malformed_url_names_its_key() {
        let mut s = Settings::defaults();
        s.amqp.url = "http//nope".into();
        assert!(s.validate().unwrap_err().to_string().contains("amqp.url"));
        let mut s = Settings::defaults();
        s.database.url = "mysql:/x".into();
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("database.url")
        );
        let mut s = Settings::defaults();
        s.whatsapp.cloud_api.base_url = "graph.facebook.com".into();
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("whatsapp.cloud_api.base_url")
        );
    }

    #[test]
    fn an_api_pool_of_no_connections_names_its_key() {
        let mut s = Settings::defaults();
        s.http.db_connections = 0;
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("http.db_connections"), "{err}");
    }

    #[test]
    fn cloud_api_needs_its_credentials() {
        let mut s = Settings::defaults();
        s.whatsapp.provider = ProviderKind::CloudApi;
        s.whatsapp.cloud_api.phone_number_id = "123".into();
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("whatsapp.cloud_api.access_token"), "{err}");
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let mut s = Settings::defaults();
        s.whatsapp.cloud_api.access_token = Secret::new("EAAG-very-secret");
        s.http.api_token = Secret::new("dashboard-token");
        let printed = format!("{s:?}");
        assert!(!printed.contains("very-secret"));
        assert!(!printed.contains("dashboard-token"));
    }

    #[test]
    fn retry_delays_double_up_to_the_cap() {
        let s = Settings::defaults().sender;
        assert_eq!(s.retry_delay(1), Duration::from_millis(s.retry_initial_ms));
        assert_eq!(
            s.retry_delay(2),
            Duration::from_millis(2 * s.retry_initial_ms)
        );
        assert_eq!(s.retry_delay(40), Duration::from_millis(s.retry_max_ms));
    }
}
