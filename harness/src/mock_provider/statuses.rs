//! The mock Cloud API's status webhooks: after accepting a send, Meta reports what became of
//! the message (`sent`, `delivered`, `read`) by POSTing a signed webhook to the business. The
//! mock does the same, in Meta's body format and with Meta's `X-Hub-Signature-256`, and can be
//! made to behave as Meta is documented to: the same status twice, statuses out of order, and
//! statuses that reach the business before the HTTP answer of the send itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reminder::webhook::signature::sign;
use serde_json::{Value, json};

use super::PHONE_NUMBER_ID;

/// Where and how the mock reports statuses.
#[derive(Debug, Clone)]
pub struct StatusWebhooks {
    /// The business's webhook, e.g. `http://127.0.0.1:9000/webhooks/whatsapp`.
    pub url: String,
    /// The app secret the body is signed with.
    pub app_secret: String,
    /// Post every status twice, as Meta may when it did not see an answer in time.
    pub duplicate: bool,
    /// Post `read` before `delivered` before `sent` (the order Meta does not promise).
    pub out_of_order: bool,
    /// Post every status (and wait for its answer) before the send's own HTTP answer leaves.
    pub before_answer: bool,
}

/// The statuses a message goes through, in the order they happen.
const LIFECYCLE: [&str; 3] = ["sent", "delivered", "read"];

/// Posts status webhooks and counts what came of them.
pub(super) struct Reporter {
    http: reqwest::Client,
    /// Webhooks answered 2xx.
    pub posted: AtomicU64,
    /// Attempts that failed (refused, an error answer); each is tried again.
    pub failed_attempts: AtomicU64,
    /// Webhooks in flight at once, however many sends are reported: Meta delivers webhooks
    /// over a bounded number of connections, and a burst of sends must not open one each.
    in_flight: tokio::sync::Semaphore,
}

/// The most webhooks the mock posts at once.
const WEBHOOKS_IN_FLIGHT: usize = 64;

/// What one accepted send is reported as.
pub(super) struct Accepted {
    pub wamid: String,
    pub recipient: String,
    pub reminder_id: String,
}

impl Reporter {
    pub fn new() -> Reporter {
        Reporter {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .expect("an HTTP client"),
            posted: AtomicU64::new(0),
            failed_attempts: AtomicU64::new(0),
            in_flight: tokio::sync::Semaphore::new(WEBHOOKS_IN_FLIGHT),
        }
    }

    /// Reports `send` to `to`, every status in order (the body of each is its own webhook,
    /// as Meta sends them), retrying each until the business takes it, as Meta does.
    pub async fn report(self: Arc<Self>, to: StatusWebhooks, send: Accepted) {
        let now = chrono::Utc::now().timestamp();
        let mut order: Vec<(usize, &str)> = LIFECYCLE.iter().copied().enumerate().collect();
        if to.out_of_order {
            order.reverse();
        }
        for (step, status) in order {
            let body = status_body(&send, status, now + step as i64);
            let copies = if to.duplicate { 2 } else { 1 };
            for _ in 0..copies {
                self.post(&to, &body).await;
            }
        }
    }

    async fn post(&self, to: &StatusWebhooks, body: &[u8]) {
        let _slot = self.in_flight.acquire().await.expect("never closed");
        let signature = sign(to.app_secret.as_bytes(), body);
        // Meta retries for days; a test gives up after a minute so a broken run ends.
        for attempt in 0..300u32 {
            let answer = self
                .http
                .post(&to.url)
                .header("content-type", "application/json")
                .header("X-Hub-Signature-256", &signature)
                .body(body.to_vec())
                .send()
                .await;
            if matches!(&answer, Ok(r) if r.status().is_success()) {
                self.posted.fetch_add(1, Ordering::Relaxed);
                return;
            }
            self.failed_attempts.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(50 + 10 * u64::from(attempt.min(15)))).await;
        }
    }
}

/// One status of `send` as Meta posts it: one entry, one `messages` change, one status.
pub fn status_body(send: &Accepted, status: &str, timestamp: i64) -> Vec<u8> {
    let mut item = json!({
        "id": send.wamid,
        "status": status,
        "timestamp": timestamp.to_string(),
        "recipient_id": send.recipient,
        "biz_opaque_callback_data": send.reminder_id,
    });
    if status == "sent" {
        item["conversation"] = json!({
            "id": "c0a2b9f1e6d54c3a8b7e6f5d4c3b2a19",
            "expiration_timestamp": (timestamp + 86_400).to_string(),
            "origin": {"type": "utility"}
        });
    }
    item["pricing"] = json!({"billable": true, "pricing_model": "PMP", "category": "utility"});
    let body: Value = json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": "102290129340398",
            "changes": [{
                "field": "messages",
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {
                        "display_phone_number": "15550783881",
                        "phone_number_id": PHONE_NUMBER_ID
                    },
                    "statuses": [item]
                }
            }]
        }]
    });
    serde_json::to_vec(&body).expect("JSON")
}
