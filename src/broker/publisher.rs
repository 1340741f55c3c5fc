//! Publishing with confirms: every message is persistent, mandatory, and only counts as
//! published once the broker confirmed it. A nack or a returned (unroutable) message is an error
//! the caller retries, never something forgotten.

use std::future::Future;

use lapin::Confirmation;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};
use tokio_util::sync::CancellationToken;

use super::Broker;
use crate::domain::cloud_event::STRUCTURED_CONTENT_TYPE;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("broker error while publishing: {0}")]
    Broker(#[from] lapin::Error),
    #[error("the broker refused the message (nack)")]
    Nacked,
    #[error("the broker could not route the message ({0})")]
    Unroutable(String),
    #[error("shutting down")]
    Shutdown,
}

/// A message to publish.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub exchange: String,
    pub routing_key: String,
    pub body: Vec<u8>,
    pub properties: BasicProperties,
}

impl Outgoing {
    /// A structured-mode CloudEvent for the events exchange.
    pub fn event(exchange: &str, event_type: &str, event_id: &str, body: Vec<u8>) -> Outgoing {
        Outgoing {
            exchange: exchange.to_string(),
            routing_key: event_type.to_string(),
            body,
            properties: event_properties(event_type, event_id),
        }
    }
}

pub fn event_properties(event_type: &str, event_id: &str) -> BasicProperties {
    BasicProperties::default()
        .with_content_type(STRUCTURED_CONTENT_TYPE.into())
        .with_delivery_mode(2)
        .with_message_id(event_id.into())
        .with_type(event_type.into())
        .with_app_id("reminder".into())
        .with_timestamp(chrono::Utc::now().timestamp().max(0) as u64)
}

/// A channel in confirm mode. Cheap to clone; concurrent publishes pipeline on it.
#[derive(Clone)]
pub struct Publisher {
    channel: Channel,
    exchange: String,
}

impl Publisher {
    /// Opens a confirm-mode channel on the broker's current connection.
    pub async fn open(
        broker: &Broker,
        shutdown: &CancellationToken,
    ) -> Result<Publisher, PublishError> {
        let channel = broker
            .channel(shutdown)
            .await
            .ok_or(PublishError::Shutdown)?;
        super::answered(
            "turning on confirms",
            channel.confirm_select(ConfirmSelectOptions::default()),
        )
        .await?;
        Ok(Publisher {
            channel,
            exchange: broker.settings().exchange.clone(),
        })
    }

    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    pub fn exchange(&self) -> &str {
        &self.exchange
    }

    /// Publishes one event to the events exchange and waits for its confirm.
    pub async fn publish_event(
        &self,
        event_type: &str,
        event_id: &str,
        body: Vec<u8>,
    ) -> Result<(), PublishError> {
        self.publish(Outgoing::event(&self.exchange, event_type, event_id, body))
            .await
    }

    /// Publishes and waits for the confirm.
    pub async fn publish(&self, message: Outgoing) -> Result<(), PublishError> {
        self.start(message).await?.await
    }

    /// Sends the message and returns a future of its confirm, so callers can keep a window of
    /// publishes in flight instead of waiting a round trip for each.
    pub async fn start(
        &self,
        message: Outgoing,
    ) -> Result<impl Future<Output = Result<(), PublishError>> + Send + 'static, PublishError> {
        let confirm = super::answered(
            "a publish",
            self.channel.basic_publish(
                message.exchange.as_str().into(),
                message.routing_key.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                &message.body,
                message.properties,
            ),
        )
        .await?;
        Ok(async move {
            match super::answered("a publish with its confirm", confirm).await? {
                Confirmation::Ack(None) => Ok(()),
                Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => {
                    Err(PublishError::Unroutable(format!(
                        "{} {}",
                        returned.reply_code, returned.reply_text
                    )))
                }
                Confirmation::Nack(None) => Err(PublishError::Nacked),
                Confirmation::NotRequested => Ok(()),
            }
        })
    }

    pub async fn close(&self) {
        let _ = super::answered("closing the channel", self.channel.close(200, "bye".into())).await;
    }
}

/// Adds a text header to message properties.
pub fn with_header(properties: BasicProperties, name: &str, value: &str) -> BasicProperties {
    let mut headers = properties.headers().clone().unwrap_or_default();
    headers.insert(name.into(), super::topology::long_string(value));
    properties.with_headers(headers)
}

/// Removes headers (e.g. the dead-letter bookkeeping before a replay).
pub fn without_headers(properties: BasicProperties, names: &[&str]) -> BasicProperties {
    let Some(headers) = properties.headers().clone() else {
        return properties;
    };
    let kept: std::collections::BTreeMap<_, AMQPValue> = headers
        .inner()
        .iter()
        .filter(|(k, _)| !names.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    properties.with_headers(FieldTable::from(kept))
}
