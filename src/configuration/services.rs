//! The `database` and `amqp` sections: the services every role connects to.

use serde::Deserialize;

#[derive(Clone, Deserialize)]
pub struct DatabaseSettings {
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout_ms: u64,
    pub statement_timeout_ms: u64,
    pub migrate_on_start: bool,
}

#[derive(Clone, Deserialize)]
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

/// `url` with the password of each address (a comma-separated list too) replaced by `***`, for
/// logs and error messages.
pub fn redact_url(url: &str) -> String {
    url.split(',')
        .map(|one| {
            let Some((scheme, rest)) = one.split_once("://") else {
                return one.to_string();
            };
            let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            match authority.rsplit_once('@') {
                Some((user_info, host)) => {
                    let user = user_info.split_once(':').map_or(user_info, |(u, _)| u);
                    let hidden = if user_info.contains(':') { ":***" } else { "" };
                    format!("{scheme}://{user}{hidden}@{host}{path}")
                }
                None => one.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout_ms", &self.acquire_timeout_ms)
            .field("statement_timeout_ms", &self.statement_timeout_ms)
            .field("migrate_on_start", &self.migrate_on_start)
            .finish()
    }
}

impl std::fmt::Debug for AmqpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpSettings")
            .field("url", &redact_url(&self.url))
            .field("exchange", &self.exchange)
            .field("queue_prefix", &self.queue_prefix)
            .field("queue_type", &self.queue_type)
            .field("delivery_limit", &self.delivery_limit)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("publish_window", &self.publish_window)
            .field("reconnect_initial_ms", &self.reconnect_initial_ms)
            .field("reconnect_max_ms", &self.reconnect_max_ms)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_service_urls_are_hidden() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/reminder?sslmode=require"),
            "postgres://app:***@db:5432/reminder?sslmode=require"
        );
        assert_eq!(
            redact_url("amqp://u:p%40ss@a:5672/%2f,amqp://u:p@ss@b:5672"),
            "amqp://u:***@a:5672/%2f,amqp://u:***@b:5672"
        );
        assert_eq!(redact_url("postgres://app@db/x"), "postgres://app@db/x");
        assert_eq!(redact_url("not a url"), "not a url");
    }
}
