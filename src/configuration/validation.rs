//! The checks serde cannot make: formats, ranges and combinations of settings, each error
//! naming its key.

use std::str::FromStr;

use super::{ConfigError, ProviderKind, Settings, invalid};
use crate::domain::{CountryCode, MessageTemplate};

/// The longest wait for a status after a lost answer: a day. A reminder held longer would
/// reach the customer too late to matter.
const MAX_UNKNOWN_OUTCOME_WAIT_SECS: u64 = 86_400;

impl Settings {
    /// The quiet-hours window of the sender.
    pub fn send_window(&self) -> Result<super::SendWindow, ConfigError> {
        super::SendWindow::parse(
            &self.sender.send_window,
            &self.sender.send_days,
            self.producer.tz()?,
        )
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
        if self.database.statement_timeout_ms == 0 {
            return Err(invalid(
                "database.statement_timeout_ms",
                "must be at least 1",
            ));
        }
        if self.database.max_connections == 0 {
            return Err(invalid("database.max_connections", "must be at least 1"));
        }
        let nodes = self.amqp.node_urls();
        if nodes.is_empty() {
            return Err(invalid("amqp.url", "no broker address given"));
        }
        for node in &nodes {
            lapin::uri::AMQPUri::from_str(node).map_err(|e| {
                let node = super::services::redact_url(node);
                invalid("amqp.url", format!("{node} is not an AMQP URL ({e})"))
            })?;
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
        self.consent.validate()?;
        self.producer.check_cadence()?;
        self.send_window()?;
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
        let keep = self.retention.history_days;
        if keep != 0 && (keep < self.alerts.window_days.max(1) || keep > 36_600) {
            return Err(invalid(
                "retention.history_days",
                "must be 0 (keep everything) or between alerts.window_days and 36600",
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
        if self.whatsapp.unknown_outcome_wait_secs > MAX_UNKNOWN_OUTCOME_WAIT_SECS {
            return Err(invalid(
                "whatsapp.unknown_outcome_wait_secs",
                format!("must be between 0 and {MAX_UNKNOWN_OUTCOME_WAIT_SECS}"),
            ));
        }
        MessageTemplate::parse(&self.whatsapp.message_template)
            .map_err(|e| invalid("whatsapp.message_template", e))?;
        for (name, locale) in &self.whatsapp.locales {
            if let Some(t) = &locale.message_template {
                MessageTemplate::parse(t).map_err(|e| {
                    invalid("whatsapp.locales", format!("{name}.message_template: {e}"))
                })?;
            }
        }
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
        self.validate_webhook()?;
        if self.http.max_concurrent_requests == 0 {
            return Err(invalid(
                "http.max_concurrent_requests",
                "must be at least 1",
            ));
        }
        if self.http.db_connections == 0 {
            return Err(invalid("http.db_connections", "must be at least 1"));
        }
        if self.http.header_read_timeout_ms == 0 {
            return Err(invalid("http.header_read_timeout_ms", "must be positive"));
        }
        if self.http.max_connections == 0 {
            return Err(invalid("http.max_connections", "must be at least 1"));
        }
        if self.alerts.window_days == 0 {
            return Err(invalid("alerts.window_days", "must be at least 1"));
        }
        tracing_subscriber::EnvFilter::try_new(&self.telemetry.level)
            .map_err(|e| invalid("telemetry.level", e.to_string()))?;
        Ok(())
    }
}

impl Settings {
    fn validate_webhook(&self) -> Result<(), ConfigError> {
        let cloud = &self.whatsapp.cloud_api;
        if !cloud.app_secret.is_empty() && cloud.verify_token.is_empty() {
            return Err(invalid(
                "whatsapp.cloud_api.verify_token",
                "required when whatsapp.cloud_api.app_secret is set (Meta's subscription handshake)",
            ));
        }
        if self.webhook.socket_addr()?.is_some()
            && cloud.app_secret.is_empty()
            && self.whatsapp.fonnte.webhook_token.is_empty()
        {
            return Err(invalid(
                "webhook.bind",
                "set, but no provider webhook is configured \
                 (whatsapp.cloud_api.app_secret or whatsapp.fonnte.webhook_token)",
            ));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_public_api_without_a_token_is_refused_naming_http_api_token() {
        let mut s = Settings::defaults();
        s.http.bind = "0.0.0.0:8000".into();
        let err = s.http.check_public_token().unwrap_err().to_string();
        assert!(err.contains("http.api_token"), "{err}");
        s.http.allow_public_without_token = true;
        s.http.check_public_token().unwrap();
        s.http.allow_public_without_token = false;
        s.http.api_token = crate::configuration::Secret::new("long-random");
        s.http.check_public_token().unwrap();
        s.http.api_token = crate::configuration::Secret::new("");
        s.http.bind = "[::1]:8000".into();
        s.http.check_public_token().unwrap();
    }

    #[test]
    fn the_compiled_in_defaults_are_valid() {
        Settings::defaults().validate().unwrap();
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
        s.amqp.url = "amqp://guest:guest@a:5672,amqp://ops:s3cret@b:notaport".into();
        let err = s.validate().unwrap_err().to_string();
        assert!(
            err.contains("amqp.url") && err.contains("ops:***@b"),
            "{err}"
        );
        assert!(!err.contains("s3cret"), "{err}");
        assert!(!format!("{:?}", s.amqp).contains("s3cret"));
        s.database.url = "postgres://app:s3cret@db/x".into();
        assert!(!format!("{:?}", s.database).contains("s3cret"));
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
    fn an_overlong_unknown_outcome_wait_names_its_key() {
        let mut s = Settings::defaults();
        assert_eq!(s.whatsapp.unknown_outcome_wait_secs, 0);
        s.whatsapp.unknown_outcome_wait_secs = 86_400;
        s.validate().unwrap();
        s.whatsapp.unknown_outcome_wait_secs = 86_401;
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("whatsapp.unknown_outcome_wait_secs"), "{err}");
    }
}
