//! The `whatsapp` section: the provider, its credentials, and how messages are sent.

use std::collections::HashMap;

use serde::Deserialize;

use super::Secret;

#[derive(Debug, Clone, Deserialize)]
pub struct WhatsappSettings {
    pub provider: ProviderKind,
    pub default_country_code: String,
    pub default_locale: String,
    pub max_per_second: u32,
    pub max_attempts: u32,
    pub request_timeout_ms: u64,
    /// How long a reminder whose provider call may have gone out without an answer waits for
    /// a status webhook naming it before it is tried again; 0 retries it at once.
    pub unknown_outcome_wait_secs: u64,
    /// Speak HTTP/2 from the first byte to an `http://` provider URL (h2c). `https://` URLs
    /// negotiate HTTP/2 by ALPN without it (with it, they offer HTTP/2 alone).
    pub http2_prior_knowledge: bool,
    pub message_template: String,
    pub cloud_api: CloudApiSettings,
    pub fonnte: FonnteSettings,
    /// Per-locale overrides (`[whatsapp.locales.<locale>]`).
    #[serde(default)]
    pub locales: HashMap<String, LocaleSettings>,
}

/// What one locale changes; a key left out uses the top-level one.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LocaleSettings {
    pub template_name: Option<String>,
    pub template_language: Option<String>,
    pub message_template: Option<String>,
}

/// The section of an event's locale: its exact name (`en_US`), else its language (`en`).
pub fn locale_section<'a>(
    locales: &'a HashMap<String, LocaleSettings>,
    locale: &str,
) -> Option<&'a LocaleSettings> {
    locales.get(locale).or_else(|| {
        let language = locale.split(['-', '_']).next()?.to_ascii_lowercase();
        locales.get(&language)
    })
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
    pub app_secret: Secret,
    pub verify_token: Secret,
}

#[derive(Clone, Deserialize)]
pub struct FonnteSettings {
    pub base_url: String,
    pub token: Secret,
    pub webhook_token: Secret,
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
            .field("app_secret", &self.app_secret)
            .field("verify_token", &self.verify_token)
            .finish()
    }
}

impl std::fmt::Debug for FonnteSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FonnteSettings")
            .field("base_url", &self.base_url)
            .field("token", &self.token)
            .field("webhook_token", &self.webhook_token)
            .finish()
    }
}
