//! The `log` provider: logs that a reminder would have gone out (its id, the masked phone and
//! the text's length, never the text, which holds the customer's name and plate) and succeeds.
//! For demos, development and dry runs; it needs no credentials. `reminder preview` shows texts.

use futures::future::BoxFuture;

use super::{OutboundMessage, Receipt, SendError, WhatsappProvider};

pub struct LogProvider;

impl WhatsappProvider for LogProvider {
    fn name(&self) -> &'static str {
        "log"
    }
    fn send<'a>(&'a self, m: &'a OutboundMessage) -> BoxFuture<'a, Result<Receipt, SendError>> {
        Box::pin(async move {
            tracing::info!(
                reminder_id = %m.reminder_id,
                to = %m.to,
                characters = m.text.chars().count(),
                "WhatsApp message (log provider)"
            );
            Ok(Receipt {
                provider_message_id: format!("log.{}", m.reminder_id),
            })
        })
    }
}
