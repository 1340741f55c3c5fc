//! Configuration: the layered settings, validated once at start-up.
//!
//! Layers, later wins: the defaults compiled in from `config/default.toml`, then
//! `{config dir}/default.toml` and `{config dir}/{REMINDER_ENV}.toml` when present (the config
//! dir is `./config`, or `REMINDER_CONFIG_DIR`), then `--config FILE`, then environment
//! variables `REMINDER__SECTION__KEY`. Every value that can be wrong (provider names, URLs,
//! cron expressions, time zones, addresses) is checked here, and the error names its key, so a
//! bad deployment stops at start-up instead of failing on the first message.
//!
//! The sections live by group: `services` (database, amqp), `roles` (producer, sender, tracker),
//! `whatsapp`, `serving` (http, alerts, telemetry, runtime), with `Secret` for credentials and
//! the checks serde cannot make in `validation`.

mod policy;
mod roles;
mod secret;
mod send_window;
mod services;
mod serving;
mod validation;
mod whatsapp;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use policy::ConsentSettings;
pub use roles::{ProducerSettings, SenderSettings, TrackerSettings};
pub use secret::Secret;
pub use send_window::SendWindow;
pub use services::{AmqpSettings, DatabaseSettings, QueueType, redact_url};
pub use serving::{
    AlertSettings, HttpSettings, LogFormat, RetentionSettings, RuntimeSettings, TelemetrySettings,
    WebhookSettings,
};
pub use whatsapp::{
    CloudApiSettings, FonnteSettings, LocaleSettings, ProviderKind, WhatsappSettings,
    locale_section,
};

const DEFAULTS: &str = include_str!("../../config/default.toml");

/// A configuration problem, always naming the offending key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(String),
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
    #[error("configuration key `{0}`: unknown key (misspelt, or not a setting of this version)")]
    Unknown(String),
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
    pub webhook: WebhookSettings,
    pub alerts: AlertSettings,
    pub retention: RetentionSettings,
    pub telemetry: TelemetrySettings,
    pub runtime: RuntimeSettings,
    pub consent: ConsentSettings,
}

impl Settings {
    /// Loads every layer (see the module documentation) and validates the result.
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
        let layered = builder
            .add_source(
                config::Environment::with_prefix("REMINDER")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(false),
            )
            .build()?;
        let settings = deserialize_known(layered)?;
        settings.validate()?;
        Ok(settings)
    }

    /// The compiled-in defaults only: what tests and tools start from.
    pub fn defaults() -> Settings {
        config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize())
            .expect("the compiled-in config/default.toml is valid")
    }
}

/// Deserializes the layered settings, refusing any key no settings struct reads: a typo
/// (`whatsapp.max_per_seconds`) would otherwise leave the default in force without a word.
/// The known keys are whatever the structs declare, so a new setting needs no list; a map
/// section (keyed by locale, say) accepts any key by its nature.
fn deserialize_known(layered: config::Config) -> Result<Settings, ConfigError> {
    let mut unknown = Vec::new();
    let settings: Settings =
        serde_ignored::deserialize(layered, |path| unknown.push(path.to_string()))?;
    match unknown.into_iter().next() {
        Some(key) => Err(ConfigError::Unknown(key)),
        None => Ok(settings),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn layered(extra_toml: &str) -> Result<Settings, ConfigError> {
        let c = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
            .add_source(config::File::from_str(extra_toml, config::FileFormat::Toml))
            .build()?;
        deserialize_known(c)
    }

    #[test]
    fn an_unknown_key_in_a_file_names_the_key() {
        let err = layered("[whatsapp]\nmax_per_seconds = 20\n").unwrap_err();
        assert!(
            err.to_string().contains("`whatsapp.max_per_seconds`"),
            "{err}"
        );
        let err = layered("[htp]\nbind = \"0.0.0.0:1\"\n").unwrap_err();
        assert!(err.to_string().contains("`htp"), "{err}");
        assert!(layered("[whatsapp]\nmax_per_second = 20\n").is_ok());
    }

    #[test]
    fn an_unknown_key_in_the_environment_names_the_key() {
        let c = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
            .add_source(
                config::Environment::with_prefix("REMINDER")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(false)
                    .source(Some(
                        [(
                            "REMINDER__WHATSAPP__MAX_PER_SECONDS".to_string(),
                            "20".to_string(),
                        )]
                        .into_iter()
                        .collect(),
                    )),
            )
            .build()
            .unwrap();
        let err = deserialize_known(c).unwrap_err();
        assert!(
            err.to_string().contains("`whatsapp.max_per_seconds`"),
            "{err}"
        );
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let mut s = Settings::defaults();
        s.whatsapp.cloud_api.access_token = Secret::new("EAAG-very-secret");
        s.http.api_token = Secret::new("dashboard-token");
        s.whatsapp.cloud_api.app_secret = Secret::new("meta-app-secret");
        s.whatsapp.cloud_api.verify_token = Secret::new("hub-verify");
        s.whatsapp.fonnte.webhook_token = Secret::new("fonnte-path");
        let printed = format!("{s:?}");
        for secret in ["meta-app-secret", "hub-verify", "fonnte-path"] {
            assert!(!printed.contains(secret), "{secret}");
        }
        assert!(!printed.contains("very-secret"));
        assert!(!printed.contains("dashboard-token"));
    }
}
