//! The `log` provider: writes the rendered reminder to the log (phone masked) and succeeds.
//! For demos, development and dry runs; it needs no credentials.

use futures::future::BoxFuture;

use super::{OutboundMessage, Receipt, SendError, WhatsappProvider};

pub struct LogProvider;

impl WhatsappProvider for LogProvider {
    fn name(&self) -> &'static str {
        "log"
    }
    fn send<'a>(&'a self, m: &'a OutboundMessage) -> BoxFuture<'a, Result<Receipt, SendError>> {
        Box::pin(async move {
            tracing::info!(to = %m.to, text = %m.text, "WhatsApp message (log provider)");
            Ok(Receipt {
                provider_message_id: format!("log.{}", m.reminder_id),
            })
        })
    }
}
