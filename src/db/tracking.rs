//! The tracker's write: a batch of message outcomes applied in one statement.
//!
//! `message_log`'s primary key (the event id) is the inbox: the insert skips ids seen before,
//! and only the rows it actually inserted are aggregated into `whatsapp_report` (sent) and
//! `whatsapp_failure_report` (failed). Dedupe, history and counts commit together, so a batch
//! redelivered after a crash counts zero more. Triggers keep the statistics aggregates.
//!
//! Nearly every batch holds only new events, so the insert is first tried as a plain insert,
//! which checks each id once while inserting it. `ON CONFLICT DO NOTHING` probes the key a
//! second time for every row before inserting; that probe was a fifth of PostgreSQL's time in
//! the tracker's statement. A duplicate makes the plain insert fail as a whole (nothing of it
//! commits), and the batch is then written again skipping ids seen before. Batches the broker
//! redelivers, where duplicates are expected, skip straight to that.
//!
//! A sent message whose delivery statuses were heard before it (the provider's webhook can be
//! faster than the sender's `message.sent`) starts with the state those statuses reached.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use sqlx::PgPool;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::MessageOutcome;

/// What one batch changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// Events recorded for the first time (the rest were duplicates).
    pub counted: u64,
    pub sent: u64,
    pub failed: u64,
}

/// The statement, with `{inbox}` where the history insert says what a duplicate id does.
const APPLY_BATCH: &str = r#"
WITH logged AS (
    INSERT INTO message_log (event_id, reminder_id, id_customer, id_vehicle, status, provider,
                             provider_message_id, error_code, error, attempts, at,
                             delivery, delivered_at, read_at, delivery_error_code)
    SELECT u.*, h.delivery, h.delivered_at, h.read_at, h.error_code
    FROM UNNEST(
        $1::text[], $2::text[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::text[],
        $8::text[], $9::text[], $10::int[], $11::timestamptz[]
    ) AS u(event_id, reminder_id, id_customer, id_vehicle, status, provider, provider_message_id,
           error_code, error, attempts, at)
    LEFT JOIN LATERAL (
        SELECT CASE max(reminder_delivery_rank(s.status))
                   WHEN 3 THEN 'read' WHEN 2 THEN 'delivered' WHEN 1 THEN 'failed'
                   ELSE 'accepted' END AS delivery,
               min(s.at) FILTER (WHERE s.status IN ('delivered', 'read')) AS delivered_at,
               min(s.at) FILTER (WHERE s.status = 'read') AS read_at,
               (array_agg(s.error_code ORDER BY s.at) FILTER (WHERE s.status = 'failed'))[1]
                   AS error_code
        FROM message_statuses s
        WHERE u.status = 'sent'
          AND (s.reminder_id = u.reminder_id
               OR (s.provider_message_id = u.provider_message_id AND s.provider = u.provider))
        HAVING count(*) > 0
    ) h ON true
    {inbox}
    RETURNING id_customer, id_vehicle, status, at, error_code
),
recipients AS (
    SELECT * FROM UNNEST($12::uuid[], $13::uuid[], $14::text[], $15::text[], $16::text[])
        AS t(id_customer, id_vehicle, phone, customer_name, plate_number)
),
sent AS (
    SELECT id_customer, id_vehicle, count(*)::int AS n, max(at) AS last_at
    FROM logged WHERE status = 'sent'
    GROUP BY id_customer, id_vehicle
),
reported AS (
    INSERT INTO whatsapp_report AS r (id_customer, id_vehicle, last_message_date, frequency,
                                      customer_name, customer_phone, plate_number)
    SELECT s.id_customer, s.id_vehicle, s.last_at, s.n, p.customer_name, p.phone, p.plate_number
    FROM sent s LEFT JOIN recipients p USING (id_customer, id_vehicle)
    ORDER BY s.id_customer, s.id_vehicle
    ON CONFLICT (id_customer, id_vehicle) DO UPDATE SET
        frequency = r.frequency + excluded.frequency,
        last_message_date = greatest(r.last_message_date, excluded.last_message_date),
        customer_name = coalesce(excluded.customer_name, r.customer_name),
        customer_phone = coalesce(excluded.customer_phone, r.customer_phone),
        plate_number = coalesce(excluded.plate_number, r.plate_number),
        updated_at = now()
    RETURNING 1
),
failed AS (
    INSERT INTO whatsapp_failure_report AS f (id_customer, id_vehicle, failed_count, last_failed_at, last_error_code)
    SELECT id_customer, id_vehicle, count(*)::int, max(at),
           (array_agg(error_code ORDER BY at DESC))[1]
    FROM logged WHERE status = 'failed'
    GROUP BY id_customer, id_vehicle ORDER BY id_customer, id_vehicle
    ON CONFLICT (id_customer, id_vehicle) DO UPDATE SET
        failed_count = f.failed_count + excluded.failed_count,
        last_error_code = CASE WHEN excluded.last_failed_at >= f.last_failed_at
                               THEN excluded.last_error_code ELSE f.last_error_code END,
        last_failed_at = greatest(f.last_failed_at, excluded.last_failed_at)
    RETURNING 1
)
SELECT (SELECT count(*) FROM logged) AS counted,
       (SELECT count(*) FROM logged WHERE status = 'sent') AS sent,
       (SELECT count(*) FROM logged WHERE status = 'failed') AS failed,
       (SELECT count(*) FROM reported) + (SELECT count(*) FROM failed) AS pairs
"#;

/// The statement skipping ids seen before, and the one failing on them.
static SKIPPING_SEEN: LazyLock<String> =
    LazyLock::new(|| APPLY_BATCH.replace("{inbox}", "ON CONFLICT (event_id) DO NOTHING"));
static EXPECTING_NEW: LazyLock<String> = LazyLock::new(|| APPLY_BATCH.replace("{inbox}", ""));

/// The history's primary key, which a duplicate event id violates.
const INBOX_KEY: &str = "message_log_pkey";

/// Whether a batch may hold events recorded before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Fresh deliveries: duplicates are rare (a publisher's retry), so the cheaper insert is
    /// tried first.
    New,
    /// Redelivered after a failure: duplicates are likely.
    Duplicates,
}

/// Records a batch of outcomes. Duplicate event ids (within the batch or seen before) are
/// skipped; the result says how many were new.
pub async fn apply_batch(
    pool: &PgPool,
    outcomes: &[MessageOutcome],
) -> Result<Applied, sqlx::Error> {
    apply_batch_expecting(pool, outcomes, Expect::New).await
}

/// [`apply_batch`], saying whether the batch is likely to hold duplicates.
pub async fn apply_batch_expecting(
    pool: &PgPool,
    outcomes: &[MessageOutcome],
    expect: Expect,
) -> Result<Applied, sqlx::Error> {
    let mut seen = HashSet::with_capacity(outcomes.len());
    let mut unique: Vec<&MessageOutcome> = outcomes
        .iter()
        .filter(|o| seen.insert(o.event_id.as_str()))
        .collect();
    if unique.is_empty() {
        return Ok(Applied::default());
    }
    // Batches run concurrently. Inserting in one global key order means two batches that share
    // events (a redelivery overlapping fresh work) wait for each other instead of deadlocking.
    unique.sort_unstable_by(|a, b| a.event_id.cmp(&b.event_id));
    if expect == Expect::New {
        match run(pool, &unique, EXPECTING_NEW.as_str()).await {
            Err(sqlx::Error::Database(e)) if e.constraint() == Some(INBOX_KEY) => {
                tracing::debug!(
                    size = unique.len(),
                    "a batch repeats an event recorded before; writing it again skipping those"
                );
            }
            done => return done,
        }
    }
    run(pool, &unique, SKIPPING_SEEN.as_str()).await
}

async fn run(
    pool: &PgPool,
    unique: &[&MessageOutcome],
    statement: &'static str,
) -> Result<Applied, sqlx::Error> {
    let recipients = Recipients::of(unique);
    let col = |f: fn(&MessageOutcome) -> String| unique.iter().map(|o| f(o)).collect::<Vec<_>>();
    let opt =
        |f: fn(&MessageOutcome) -> Option<String>| unique.iter().map(|o| f(o)).collect::<Vec<_>>();
    let row: (i64, i64, i64, i64) = sqlx::query_as(statement)
        .bind(col(|o| o.event_id.clone()))
        .bind(col(|o| o.reminder_id.clone()))
        .bind(unique.iter().map(|o| o.customer_id).collect::<Vec<_>>())
        .bind(unique.iter().map(|o| o.vehicle_id).collect::<Vec<_>>())
        .bind(col(|o| o.status.as_str().to_string()))
        .bind(col(|o| o.provider.clone()))
        .bind(opt(|o| o.provider_message_id.clone()))
        .bind(opt(|o| o.error_code.clone()))
        .bind(opt(|o| o.error.clone()))
        .bind(unique.iter().map(|o| o.attempts).collect::<Vec<_>>())
        .bind(unique.iter().map(|o| o.at).collect::<Vec<_>>())
        .bind(recipients.customers)
        .bind(recipients.vehicles)
        .bind(recipients.phones)
        .bind(recipients.names)
        .bind(recipients.plates)
        .fetch_one(pool)
        .await?;
    Ok(Applied {
        counted: row.0 as u64,
        sent: row.1 as u64,
        failed: row.2 as u64,
    })
}

/// What the latest events of each pair in a batch said about the recipient (each field from the
/// latest event that carried it), one row per pair: the statement joins these instead of
/// aggregating every event's strings per pair.
#[derive(Default)]
struct Recipients {
    customers: Vec<Uuid>,
    vehicles: Vec<Uuid>,
    phones: Vec<Option<String>>,
    names: Vec<Option<String>>,
    plates: Vec<Option<String>>,
}

type Said<'a> = Option<(DateTime<Utc>, &'a str)>;

impl Recipients {
    fn of(outcomes: &[&MessageOutcome]) -> Recipients {
        fn newer<'a>(field: &mut Said<'a>, at: DateTime<Utc>, value: Option<&'a String>) {
            if let Some(v) = value
                && field.is_none_or(|(seen, _)| at >= seen)
            {
                *field = Some((at, v.as_str()));
            }
        }
        let mut pairs: HashMap<(Uuid, Uuid), [Said<'_>; 3]> = HashMap::new();
        for o in outcomes {
            let said = pairs.entry((o.customer_id, o.vehicle_id)).or_default();
            newer(&mut said[0], o.at, o.phone.as_ref());
            newer(&mut said[1], o.at, o.customer_name.as_ref());
            newer(&mut said[2], o.at, o.plate_number.as_ref());
        }
        let mut r = Recipients::default();
        let text = |f: Said<'_>| f.map(|(_, v)| v.to_string());
        for ((c, v), [phone, name, plate]) in pairs {
            r.customers.push(c);
            r.vehicles.push(v);
            r.phones.push(text(phone));
            r.names.push(text(name));
            r.plates.push(text(plate));
        }
        r
    }
}
