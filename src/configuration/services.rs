//! The `database` and `amqp` sections: the services every role connects to.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout_ms: u64,
    pub statement_timeout_ms: u64,
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
