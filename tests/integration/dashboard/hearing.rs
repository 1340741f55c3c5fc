//! What the provider reported back about the sample, written through the tracker's write path:
//! most sent reminders delivered, some of those read, and a few customers' replies naming the
//! reminder they answer.

use reminder::db::hearing::{record_replies, record_statuses};
use reminder::domain::webhook::{DeliveryStatus, ReplyType};
use reminder::domain::{MessageStatus, ReplyReceived};

use super::*;

/// A reply the dashboard must list: its text, the plate of the vehicle whose reminder it
/// answers, and that reminder.
pub struct SampleReply {
    pub text: String,
    pub plate: String,
    pub reminder_id: String,
}

pub struct Heard {
    pub delivered: usize,
    pub read: usize,
    pub replies: Vec<SampleReply>,
}

const REPLIES: &[&str] = &[
    "Bisa Sabtu jam 9?",
    "Sudah servis minggu lalu, terima kasih",
    "<i>Oke</i>, saya datang besok",
];

/// Writes `hearing(sample)`.
pub async fn hear_back(sample: &Sample, pool: &PgPool) {
    let (statuses, replies, _) = hearing(sample);
    record_statuses(pool, &statuses).await.expect("statuses");
    record_replies(pool, &replies).await.expect("replies");
}

/// Three in four sent reminders delivered, every other one of those read, and a reply to the
/// first, sixth and eleventh sent; with what the dashboard must show for them.
pub fn hearing(sample: &Sample) -> (Vec<MessageStatus>, Vec<ReplyReceived>, Heard) {
    let mut statuses = Vec::new();
    let (mut delivered, mut read) = (0, 0);
    let mut replies = Vec::new();
    let mut expected = Vec::new();
    for (i, o) in sample.sent().enumerate() {
        let wamid = o
            .provider_message_id
            .clone()
            .expect("a sent message has an id");
        let status = |status: DeliveryStatus, minutes: i64| MessageStatus {
            event_id: format!("{wamid}-{}", status.as_str()),
            provider: o.provider.clone(),
            provider_message_id: wamid.clone(),
            status,
            reminder_id: Some(o.reminder_id.clone()),
            recipient: None,
            at: o.at + chrono::Duration::minutes(minutes),
            error_code: None,
            error: None,
            billable: Some(true),
            pricing_category: Some("utility".into()),
        };
        if i % 4 != 3 {
            statuses.push(status(DeliveryStatus::Delivered, 1));
            delivered += 1;
            if i % 2 == 0 {
                statuses.push(status(DeliveryStatus::Read, 5));
                read += 1;
            }
        }
        if let Some(text) = [0, 5, 10].iter().position(|n| *n == i).map(|k| REPLIES[k]) {
            replies.push(ReplyReceived {
                event_id: format!("reply-{i}"),
                provider: o.provider.clone(),
                provider_message_id: format!("wamid.reply-{i}"),
                phone: format!("628129900{i:04}"),
                reply_type: ReplyType::Text,
                text: Some(text.into()),
                button_payload: None,
                context_message_id: Some(wamid.clone()),
                // Never in the future: the latest reminder may have gone out a minute ago.
                at: (o.at + chrono::Duration::minutes(10)).min(Utc::now()),
            });
            expected.push(SampleReply {
                text: text.into(),
                plate: sample.pair(o.vehicle_id).plate.clone(),
                reminder_id: o.reminder_id.clone(),
            });
        }
    }
    let heard = Heard {
        delivered,
        read,
        replies: expected,
    };
    (statuses, replies, heard)
}
