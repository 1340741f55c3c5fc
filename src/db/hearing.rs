//! The tracker's writes of what the provider reported back: a batch of `message.status` events
//! or of `reply.received` events, each applied in one statement.
//!
//! `message_statuses` and `replies` are keyed by event id, which makes them the inbox: a status
//! or reply heard twice is recorded once. A new status raises its message's delivery state on
//! `message_log` (`accepted` < `failed` < `delivered` < `read`; it never falls), and triggers move
//! the funnel counts. Applying a status is idempotent (the highest state, the earliest times), so
//! it may safely be applied again: a status recorded while its message's `message.sent` was
//! being written by a concurrent batch sees neither, and is applied again a little later
//! ([`reapply_statuses`]). A status that arrives before its message is applied when the message
//! is recorded (`tracking`).

use std::collections::HashSet;
use std::sync::LazyLock;

use sqlx::PgPool;

use crate::domain::events::{MESSAGE_SENT, outcome_id};
use crate::domain::{MessageStatus, ReplyReceived};

/// The statuses of a batch that were new, and whether each found its message.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StatusesApplied {
    /// Event ids recorded for the first time, with whether the message they refer to is known.
    pub recorded: Vec<(String, bool)>,
}

const RECORD_STATUSES_TEMPLATE: &str = r#"
WITH input AS (
    SELECT * FROM UNNEST(
        $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
        $7::timestamptz[], $8::text[], $9::text[], $10::bool[], $11::text[], $12::text[]
    ) AS t(event_id, provider, provider_message_id, status, reminder_id, recipient, at,
           error_code, error, billable, pricing_category, sent_event_id)
),
recorded AS (
    INSERT INTO message_statuses (event_id, provider, provider_message_id, status, reminder_id,
                                  recipient, at, error_code, error, billable, pricing_category)
    SELECT event_id, provider, provider_message_id, status, reminder_id, recipient, at,
           error_code, error, billable, pricing_category
    FROM input ORDER BY event_id
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id
),
applied AS (
    SELECT i.event_id, i.status, i.at, i.error_code, m.event_id AS message
    FROM recorded r JOIN input i USING (event_id)
    LEFT JOIN LATERAL (
        SELECT m.event_id FROM message_log m
        WHERE m.status = 'sent'
          AND (m.event_id = i.sent_event_id
               OR (m.provider_message_id = i.provider_message_id AND m.provider = i.provider))
        ORDER BY (m.event_id = i.sent_event_id) DESC NULLS LAST
        LIMIT 1
    ) m ON true
),
{raise}SELECT event_id, message IS NOT NULL AS known FROM applied
"#;

/// Raises each message's delivery state by the statuses in `applied` (event id, status, at,
/// error code, and the message's history row): the highest state, the earliest times, the first
/// failure's code.
const RAISE: &str = r#"raised AS (
    UPDATE message_log m SET
        delivery = CASE WHEN a.rank > reminder_delivery_rank(m.delivery)
                        THEN CASE a.rank WHEN 3 THEN 'read' WHEN 2 THEN 'delivered'
                                         ELSE 'failed' END
                        ELSE m.delivery END,
        delivered_at = least(m.delivered_at, a.delivered_at),
        read_at = least(m.read_at, a.read_at),
        delivery_error_code = coalesce(m.delivery_error_code, a.error_code)
    FROM (
        SELECT message, max(reminder_delivery_rank(status)) AS rank,
               min(at) FILTER (WHERE status IN ('delivered', 'read')) AS delivered_at,
               min(at) FILTER (WHERE status = 'read') AS read_at,
               (array_agg(error_code ORDER BY at) FILTER (WHERE status = 'failed'))[1] AS error_code
        FROM applied WHERE message IS NOT NULL
        GROUP BY message ORDER BY message
    ) a
    WHERE m.event_id = a.message
    RETURNING 1
)
"#;

static RECORD_STATUSES: LazyLock<String> =
    LazyLock::new(|| RECORD_STATUSES_TEMPLATE.replace("{raise}", RAISE));
static REAPPLY: LazyLock<String> = LazyLock::new(|| REAPPLY_STATUSES.replace("{raise}", RAISE));

/// The id of the history row a status with this reminder id refers to: the `message.sent` id is
/// derived from the reminder id, so the row is found by its primary key.
fn sent_event_id(reminder_id: Option<&str>) -> Option<String> {
    reminder_id.map(|r| outcome_id(MESSAGE_SENT, r))
}

/// Records a batch of statuses and raises the delivery state of the messages they refer to.
pub async fn record_statuses(
    pool: &PgPool,
    statuses: &[MessageStatus],
) -> Result<StatusesApplied, sqlx::Error> {
    let mut seen = HashSet::new();
    let statuses: Vec<&MessageStatus> = statuses
        .iter()
        .filter(|s| seen.insert(s.event_id.as_str()))
        .collect();
    if statuses.is_empty() {
        return Ok(StatusesApplied::default());
    }
    let text = |f: fn(&MessageStatus) -> String| statuses.iter().map(|s| f(s)).collect::<Vec<_>>();
    let opt =
        |f: fn(&MessageStatus) -> Option<String>| statuses.iter().map(|s| f(s)).collect::<Vec<_>>();
    let rows: Vec<(String, bool)> = sqlx::query_as(RECORD_STATUSES.as_str())
        .bind(text(|s| s.event_id.clone()))
        .bind(text(|s| s.provider.clone()))
        .bind(text(|s| s.provider_message_id.clone()))
        .bind(text(|s| s.status.as_str().to_string()))
        .bind(opt(|s| s.reminder_id.clone()))
        .bind(opt(|s| s.recipient.clone()))
        .bind(statuses.iter().map(|s| s.at).collect::<Vec<_>>())
        .bind(opt(|s| s.error_code.clone()))
        .bind(opt(|s| s.error.clone()))
        .bind(statuses.iter().map(|s| s.billable).collect::<Vec<_>>())
        .bind(opt(|s| s.pricing_category.clone()))
        .bind(opt(|s| sent_event_id(s.reminder_id.as_deref())))
        .fetch_all(pool)
        .await?;
    Ok(StatusesApplied { recorded: rows })
}

const REAPPLY_STATUSES: &str = r#"
WITH input AS (
    SELECT * FROM UNNEST($1::text[], $2::text[]) AS t(event_id, sent_event_id)
),
applied AS (
    SELECT s.event_id, s.status, s.at, s.error_code, m.event_id AS message
    FROM message_statuses s JOIN input i USING (event_id)
    LEFT JOIN LATERAL (
        SELECT m.event_id FROM message_log m
        WHERE m.status = 'sent'
          AND (m.event_id = i.sent_event_id
               OR (m.provider_message_id = s.provider_message_id AND m.provider = s.provider))
        LIMIT 1
    ) m ON true
),
{raise}SELECT count(*) FILTER (WHERE message IS NULL) FROM applied
"#;

/// Applies recorded statuses again (by event id) to whatever messages are recorded now, and
/// says how many still have none: statuses of messages reminder never sent (or not yet).
pub async fn reapply_statuses(
    pool: &PgPool,
    statuses: &[(String, Option<String>)],
) -> Result<u64, sqlx::Error> {
    if statuses.is_empty() {
        return Ok(0);
    }
    let ids: Vec<String> = statuses.iter().map(|(id, _)| id.clone()).collect();
    let sent: Vec<Option<String>> = statuses
        .iter()
        .map(|(_, reminder)| sent_event_id(reminder.as_deref()))
        .collect();
    let unknown: i64 = sqlx::query_scalar(REAPPLY.as_str())
        .bind(ids)
        .bind(sent)
        .fetch_one(pool)
        .await?;
    Ok(unknown as u64)
}

/// The replies of a batch that were new, and how many of them found their message.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RepliesApplied {
    pub recorded: u64,
    pub attributed: u64,
}

const RECORD_REPLIES: &str = r#"
WITH input AS (
    SELECT * FROM UNNEST(
        $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
        $8::text[], $9::timestamptz[]
    ) AS t(event_id, provider, provider_message_id, phone, type, text, button_payload,
           context_message_id, at)
),
recorded AS (
    INSERT INTO replies (event_id, provider, provider_message_id, phone, id_customer, id_vehicle,
                         reminder_id, type, text, button_payload, context_message_id, at)
    SELECT i.event_id, i.provider, i.provider_message_id, i.phone,
           coalesce(c.id_customer, p.id_customer), coalesce(c.id_vehicle, p.id_vehicle),
           coalesce(c.reminder_id, p.reminder_id),
           i.type, i.text, i.button_payload, i.context_message_id, i.at
    FROM input i
    -- The message the reply names.
    LEFT JOIN LATERAL (
        SELECT m.id_customer, m.id_vehicle, m.reminder_id FROM message_log m
        WHERE i.context_message_id IS NOT NULL AND m.status = 'sent'
          AND m.provider_message_id = i.context_message_id
        LIMIT 1
    ) c ON true
    -- Else the latest message sent to that phone within the week before the reply.
    LEFT JOIN LATERAL (
        SELECT m.id_customer, m.id_vehicle, m.reminder_id
        FROM whatsapp_report w
        CROSS JOIN LATERAL (
            SELECT m.id_customer, m.id_vehicle, m.reminder_id, m.at FROM message_log m
            WHERE ARRAY[m.id_customer, m.id_vehicle] @> ARRAY[w.id_customer, w.id_vehicle]
              AND m.id_customer = w.id_customer AND m.id_vehicle = w.id_vehicle
              AND m.status = 'sent'
              AND m.at <= i.at AND m.at > i.at - interval '7 days'
            ORDER BY m.at DESC LIMIT 1
        ) m
        WHERE c.id_customer IS NULL AND w.customer_phone = i.phone
        ORDER BY m.at DESC LIMIT 1
    ) p ON true
    ORDER BY i.event_id
    ON CONFLICT (event_id) DO NOTHING
    RETURNING reminder_id
)
SELECT count(*), count(reminder_id) FROM recorded
"#;

/// Records a batch of replies, each attributed to the message it answers (see the module).
pub async fn record_replies(
    pool: &PgPool,
    replies: &[ReplyReceived],
) -> Result<RepliesApplied, sqlx::Error> {
    if replies.is_empty() {
        return Ok(RepliesApplied::default());
    }
    let text = |f: fn(&ReplyReceived) -> String| replies.iter().map(f).collect::<Vec<_>>();
    let opt = |f: fn(&ReplyReceived) -> Option<String>| replies.iter().map(f).collect::<Vec<_>>();
    let (recorded, attributed): (i64, i64) = sqlx::query_as(RECORD_REPLIES)
        .bind(text(|r| r.event_id.clone()))
        .bind(text(|r| r.provider.clone()))
        .bind(text(|r| r.provider_message_id.clone()))
        .bind(text(|r| r.phone.clone()))
        .bind(text(|r| r.reply_type.as_str().to_string()))
        .bind(opt(|r| r.text.clone()))
        .bind(opt(|r| r.button_payload.clone()))
        .bind(opt(|r| r.context_message_id.clone()))
        .bind(replies.iter().map(|r| r.at).collect::<Vec<_>>())
        .fetch_one(pool)
        .await?;
    Ok(RepliesApplied {
        recorded: recorded as u64,
        attributed: attributed as u64,
    })
}
