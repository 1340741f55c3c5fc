//! The tracker's write: a batch of message outcomes applied in one statement.
//!
//! `message_log`'s primary key (the event id) is the inbox: the insert skips ids seen before,
//! and only the rows it actually inserted are aggregated into `whatsapp_report` (sent) and
//! `whatsapp_failure_report` (failed). Dedupe, history and counts commit together, so a batch
//! redelivered after a crash counts zero more. Triggers keep the statistics aggregates.

use std::collections::HashSet;

use sqlx::PgPool;

use crate::domain::MessageOutcome;

/// What one batch changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// Events recorded for the first time (the rest were duplicates).
    pub counted: u64,
    pub sent: u64,
    pub failed: u64,
}

const APPLY_BATCH: &str = r#"
WITH input AS (
    SELECT * FROM UNNEST(
        $1::text[], $2::text[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::text[],
        $8::text[], $9::text[], $10::int[], $11::timestamptz[], $12::text[], $13::text[], $14::text[]
    ) AS t(event_id, reminder_id, id_customer, id_vehicle, status, provider, provider_message_id,
           error_code, error, attempts, at, phone, customer_name, plate_number)
),
logged AS (
    INSERT INTO message_log (event_id, reminder_id, id_customer, id_vehicle, status, provider,
                             provider_message_id, error_code, error, attempts, at)
    SELECT event_id, reminder_id, id_customer, id_vehicle, status, provider,
           provider_message_id, error_code, error, attempts, at
    FROM input
    ON CONFLICT DO NOTHING
    RETURNING event_id, status
),
fresh AS (
    SELECT i.* FROM input i JOIN logged l USING (event_id)
),
sent AS (
    SELECT id_customer, id_vehicle, count(*)::int AS n, max(at) AS last_at,
           (array_agg(customer_name ORDER BY at DESC) FILTER (WHERE customer_name IS NOT NULL))[1] AS customer_name,
           (array_agg(phone ORDER BY at DESC) FILTER (WHERE phone IS NOT NULL))[1] AS phone,
           (array_agg(plate_number ORDER BY at DESC) FILTER (WHERE plate_number IS NOT NULL))[1] AS plate_number
    FROM fresh WHERE status = 'sent'
    GROUP BY id_customer, id_vehicle
),
reported AS (
    INSERT INTO whatsapp_report AS r (id_customer, id_vehicle, last_message_date, frequency,
                                      customer_name, customer_phone, plate_number)
    SELECT id_customer, id_vehicle, last_at, n, customer_name, phone, plate_number
    FROM sent ORDER BY id_customer, id_vehicle
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
    FROM fresh WHERE status = 'failed'
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

/// Records a batch of outcomes. Duplicate event ids (within the batch or seen before) are
/// skipped; the result says how many were new.
pub async fn apply_batch(
    pool: &PgPool,
    outcomes: &[MessageOutcome],
) -> Result<Applied, sqlx::Error> {
    let mut seen = HashSet::with_capacity(outcomes.len());
    let unique: Vec<&MessageOutcome> = outcomes
        .iter()
        .filter(|o| seen.insert(o.event_id.as_str()))
        .collect();
    if unique.is_empty() {
        return Ok(Applied::default());
    }
    let col = |f: fn(&MessageOutcome) -> String| unique.iter().map(|o| f(o)).collect::<Vec<_>>();
    let opt =
        |f: fn(&MessageOutcome) -> Option<String>| unique.iter().map(|o| f(o)).collect::<Vec<_>>();
    let row: (i64, i64, i64, i64) = sqlx::query_as(APPLY_BATCH)
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
        .bind(opt(|o| o.phone.clone()))
        .bind(opt(|o| o.customer_name.clone()))
        .bind(opt(|o| o.plate_number.clone()))
        .fetch_one(pool)
        .await?;
    Ok(Applied {
        counted: row.0 as u64,
        sent: row.1 as u64,
        failed: row.2 as u64,
    })
}
