//! The sender's record of each reminder, the heart of "never sent twice".
//!
//! Before calling the provider the sender *claims* the reminder: a row in `sending` state with
//! a lease (the provider time-out plus a margin) and the attempt number. After the call it
//! records the outcome. A delivery of the same reminder id that finds
//! - `sent` / `failed`: re-publishes that outcome and sends nothing;
//! - `sending` with a live lease: another worker is calling the provider; it waits;
//! - `sending` with an expired lease: the previous holder died during the call, so the outcome
//!   is unknown; it claims the next attempt (the one documented window for a second send);
//! - `retrying`: claims the next attempt once its back-off (`next_attempt_at`) has passed, and
//!   is told how long to wait before that;
//! - `unknown`: the last call's answer was lost, so the provider may have sent it; it is never
//!   claimed as such: once `next_attempt_at` has passed, a delivery status naming the reminder
//!   makes it `sent`, and without one it becomes `retrying` (see `unknown`).
//!
//! Every time comparison is made by PostgreSQL (`now()`), so the clocks of sender hosts never
//! matter.

pub mod unknown;
mod writes;

use std::collections::HashMap;
use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::{MaintenanceDue, OutcomeStatus};

pub use writes::DispatchWrites;

/// Where a reminder's dispatch stands, stored as its text in `reminder_dispatch.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DispatchStatus {
    /// A worker holds the lease and is calling the provider.
    Sending,
    /// The last attempt failed transiently; the next may start at `next_attempt_at`.
    Retrying,
    /// The last call's request went out but its answer was lost; the reminder waits until
    /// `next_attempt_at` for a delivery status before it is retried.
    Unknown,
    /// Final: the provider accepted the message.
    Sent,
    /// Final: the message failed for good.
    Failed,
}

impl DispatchStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DispatchStatus::Sending => "sending",
            DispatchStatus::Retrying => "retrying",
            DispatchStatus::Unknown => "unknown",
            DispatchStatus::Sent => "sent",
            DispatchStatus::Failed => "failed",
        }
    }

    /// The reminder's final outcome, once it has one.
    pub fn outcome(self) -> Option<OutcomeStatus> {
        match self {
            DispatchStatus::Sent => Some(OutcomeStatus::Sent),
            DispatchStatus::Failed => Some(OutcomeStatus::Failed),
            DispatchStatus::Sending | DispatchStatus::Retrying | DispatchStatus::Unknown => None,
        }
    }

    pub fn is_final(self) -> bool {
        self.outcome().is_some()
    }
}

impl fmt::Display for DispatchStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `reminder_dispatch.status` that is none of those the schema allows.
#[derive(Debug, thiserror::Error)]
#[error("unknown dispatch status {0:?}")]
pub struct UnknownStatus(String);

impl TryFrom<String> for DispatchStatus {
    type Error = UnknownStatus;
    fn try_from(value: String) -> Result<Self, UnknownStatus> {
        Ok(match value.as_str() {
            "sending" => DispatchStatus::Sending,
            "retrying" => DispatchStatus::Retrying,
            "unknown" => DispatchStatus::Unknown,
            "sent" => DispatchStatus::Sent,
            "failed" => DispatchStatus::Failed,
            _ => return Err(UnknownStatus(value)),
        })
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DispatchRecord {
    pub reminder_id: String,
    pub id_customer: Uuid,
    pub id_vehicle: Uuid,
    pub phone: String,
    pub customer_name: Option<String>,
    pub plate_number: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: DispatchStatus,
    pub attempts: i32,
    pub lease_until: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub provider: String,
    pub provider_message_id: Option<String>,
    pub error_code: Option<String>,
    pub error: Option<String>,
    pub outcome_at: Option<DateTime<Utc>>,
    /// Milliseconds left on the lease, by the database's clock (0 when none).
    pub lease_left_ms: i64,
    /// Milliseconds until the next attempt may start, by the database's clock (0 when now).
    pub retry_in_ms: i64,
}

pub enum Claim {
    /// This worker owns attempt number `attempt` and may call the provider.
    Send { attempt: i32 },
    /// The reminder already has its final outcome.
    Done(Box<DispatchRecord>),
    /// Another worker holds the lease for about this long.
    Busy { wait: Duration },
    /// The last attempt failed transiently and the next may not start for this long.
    NotYet { wait: Duration },
    /// Every attempt was used and the last one's outcome is unknown (its sender died mid-call).
    Exhausted(Box<DispatchRecord>),
    /// The last call's answer was lost; its wait for a delivery status is over (`wait` zero)
    /// or lasts this much longer.
    Unknown { wait: Duration },
}

const COLUMNS: &str = "reminder_id, id_customer, id_vehicle, phone, customer_name, plate_number, \
     status, attempts, lease_until, next_attempt_at, provider, provider_message_id, error_code, \
     error, outcome_at, \
     greatest(0, ceil(extract(epoch FROM lease_until - now()) * 1000))::bigint AS lease_left_ms, \
     greatest(0, ceil(extract(epoch FROM next_attempt_at - now()) * 1000))::bigint AS retry_in_ms";

/// Claims each reminder that may be attempted now, in one statement; answers in input order.
/// Rows are taken in reminder id order, so two statements claiming overlapping reminders lock
/// them in the same order. The same reminder twice in one call is an error ("cannot affect
/// row a second time").
async fn claim_many(
    pool: &PgPool,
    reminders: &[(&str, &MaintenanceDue)],
    provider: &str,
    lease: Duration,
    max_attempts: u32,
) -> Result<Vec<Option<i32>>, sqlx::Error> {
    // One array per column, in the order of `reminders`.
    let ids =
        |f: fn(&MaintenanceDue) -> Uuid| reminders.iter().map(|(_, d)| f(d)).collect::<Vec<_>>();
    let text =
        |f: fn(&MaintenanceDue) -> &str| reminders.iter().map(|(_, d)| f(d)).collect::<Vec<_>>();
    let rows: Vec<(String, i32)> = sqlx::query_as(
        r#"
        INSERT INTO reminder_dispatch AS d (reminder_id, id_customer, id_vehicle, phone,
            customer_name, plate_number, status, attempts, lease_until, provider)
        SELECT r, c, v, p, n, pl, 'sending', 1, now() + $7 * interval '1 millisecond', $8
        FROM UNNEST($1::text[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[])
            AS t(r, c, v, p, n, pl)
        ORDER BY r
        ON CONFLICT (reminder_id) DO UPDATE SET
            status = 'sending',
            attempts = d.attempts + 1,
            lease_until = excluded.lease_until,
            provider = excluded.provider,
            updated_at = now()
        WHERE d.attempts < $9
          AND ((d.status = 'retrying'
                AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= now()))
               OR (d.status = 'sending' AND d.lease_until < now()))
        RETURNING reminder_id, attempts
        "#,
    )
    .bind(reminders.iter().map(|(id, _)| *id).collect::<Vec<_>>())
    .bind(ids(|d| d.customer_id))
    .bind(ids(|d| d.vehicle_id))
    .bind(text(|d| d.phone.as_str()))
    .bind(text(|d| d.customer_name.as_str()))
    .bind(text(|d| d.plate_number.as_str()))
    .bind(lease.as_millis() as i64)
    .bind(provider)
    .bind(max_attempts as i32)
    .fetch_all(pool)
    .await?;
    let claimed: HashMap<String, i32> = rows.into_iter().collect();
    Ok(reminders
        .iter()
        .map(|(id, _)| claimed.get(*id).copied())
        .collect())
}

/// The claim's answer: the attempt this worker owns, or (refused) what the record says to do.
pub async fn claim(
    pool: &PgPool,
    reminder_id: &str,
    due: &MaintenanceDue,
    provider: &str,
    lease: Duration,
    max_attempts: u32,
) -> Result<Claim, sqlx::Error> {
    // The single claim is the batch claim with one reminder (one copy of the statement).
    let claimed = claim_many(pool, &[(reminder_id, due)], provider, lease, max_attempts)
        .await?
        .into_iter()
        .next()
        .flatten();
    settle_claim(pool, reminder_id, claimed, max_attempts).await
}

/// Turns a claim's result into what to do: `Send` when it was claimed, otherwise whatever the
/// record (looked up now) says.
pub async fn settle_claim(
    pool: &PgPool,
    reminder_id: &str,
    claimed: Option<i32>,
    max_attempts: u32,
) -> Result<Claim, sqlx::Error> {
    if let Some(attempt) = claimed {
        return Ok(Claim::Send { attempt });
    }
    let record = get(pool, reminder_id)
        .await?
        .ok_or_else(|| sqlx::Error::RowNotFound)?;
    let ms = |n: i64| Duration::from_millis(n.max(1) as u64);
    Ok(match record.status {
        DispatchStatus::Sent | DispatchStatus::Failed => Claim::Done(Box::new(record)),
        // Before the attempts check: a status may still show that the last attempt went out.
        DispatchStatus::Unknown => Claim::Unknown {
            wait: Duration::from_millis(record.retry_in_ms.max(0) as u64),
        },
        // Someone holds the lease (possibly for the last attempt): wait for their outcome.
        DispatchStatus::Sending if record.lease_left_ms > 0 => Claim::Busy {
            wait: ms(record.lease_left_ms),
        },
        _ if record.attempts >= max_attempts as i32 => Claim::Exhausted(Box::new(record)),
        // The lease ran out between the two statements: claim again.
        DispatchStatus::Sending => Claim::Busy { wait: ms(1) },
        _ => Claim::NotYet {
            wait: Duration::from_millis(record.retry_in_ms.max(0) as u64),
        },
    })
}

pub async fn get(pool: &PgPool, reminder_id: &str) -> Result<Option<DispatchRecord>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM reminder_dispatch WHERE reminder_id = $1"
    )))
    .bind(reminder_id)
    .fetch_optional(pool)
    .await
}

/// Records a successful send. The first final outcome wins: if the row is already final (a
/// concurrent holder recorded first), that record is returned unchanged.
pub async fn record_sent(
    pool: &PgPool,
    reminder_id: &str,
    provider_message_id: &str,
    sent_at: DateTime<Utc>,
) -> Result<DispatchRecord, sqlx::Error> {
    let updated = try_record_sent(pool, reminder_id, provider_message_id, sent_at).await?;
    final_record(pool, reminder_id, updated).await
}

/// The updated record, or `None` when the row was not open (already final).
async fn try_record_sent(
    pool: &PgPool,
    reminder_id: &str,
    provider_message_id: &str,
    sent_at: DateTime<Utc>,
) -> Result<Option<DispatchRecord>, sqlx::Error> {
    let updated = record_many(pool, &[(reminder_id, provider_message_id, sent_at)]).await?;
    Ok(updated.into_iter().next().flatten())
}

/// `RECORD_SENT` returns the dispatch columns of the joined update.
///
/// The provider's acceptance also overturns a failure: a handler that stalled past its lease
/// can hear the provider accept the message after a newer attempt recorded the reminder failed
/// (its attempts exhausted, or an error of its own). The customer has the message, so the
/// record says sent and `message.sent` is published, and the frequency counts it; the failure
/// already published stays in the history. Only a refusal for an opted-out phone stands, as
/// it made no provider call that could be answered.
static RECORD_SENT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE reminder_dispatch SET status = 'sent', provider_message_id = u.message_id,
             outcome_at = u.sent_at, error_code = NULL, error = NULL, lease_until = NULL,
             updated_at = now()
         FROM UNNEST($1::text[], $2::text[], $3::timestamptz[]) AS u(id, message_id, sent_at)
         WHERE reminder_dispatch.reminder_id = u.id
           AND (reminder_dispatch.status IN ('sending', 'retrying')
                OR (reminder_dispatch.status = 'failed'
                    AND reminder_dispatch.error_code IS DISTINCT FROM 'opted_out'))
         RETURNING {}",
        COLUMNS.replace("reminder_id,", "reminder_dispatch.reminder_id,")
    )
});

/// Records each (reminder, provider message id, sent at) in one statement; answers in input
/// order, `None` where the row was not open. The same reminder twice gets the one update for
/// both (two holders recording at once).
async fn record_many(
    pool: &PgPool,
    sends: &[(&str, &str, DateTime<Utc>)],
) -> Result<Vec<Option<DispatchRecord>>, sqlx::Error> {
    // Planned on every call, not once per connection: a plan cached while reminder_dispatch
    // was nearly empty (a new deployment) joins by scanning the whole table and keeps doing so
    // as it grows, so every update gets slower with the table's size.
    let rows: Vec<DispatchRecord> = sqlx::query_as(sqlx::AssertSqlSafe(RECORD_SENT.as_str()))
        .persistent(false)
        .bind(sends.iter().map(|s| s.0).collect::<Vec<_>>())
        .bind(sends.iter().map(|s| s.1).collect::<Vec<_>>())
        .bind(sends.iter().map(|s| s.2).collect::<Vec<_>>())
        .fetch_all(pool)
        .await?;
    let updated: HashMap<String, DispatchRecord> = rows
        .into_iter()
        .map(|r| (r.reminder_id.clone(), r))
        .collect();
    Ok(sends.iter().map(|s| updated.get(s.0).cloned()).collect())
}

/// Records a permanent failure (or the last transient one) of attempt `attempt` (`None`: of
/// whichever attempt the row is at, when giving up without a call). A holder whose lease ran out
/// and was taken over records nothing: the newer attempt's outcome is the one that counts. The
/// record returned is then the current, possibly not final, one.
pub async fn record_failed(
    pool: &PgPool,
    reminder_id: &str,
    attempt: Option<i32>,
    error_code: &str,
    error: &str,
    failed_at: DateTime<Utc>,
) -> Result<DispatchRecord, sqlx::Error> {
    let updated: Option<DispatchRecord> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE reminder_dispatch SET status = 'failed', error_code = $2, error = $3,
             outcome_at = $4, lease_until = NULL, updated_at = now()
         WHERE reminder_id = $1 AND status IN ('sending', 'retrying')
           AND ($5::int IS NULL OR attempts = $5)
         RETURNING {COLUMNS}"
    )))
    .bind(reminder_id)
    .bind(error_code)
    .bind(error)
    .bind(failed_at)
    .bind(attempt)
    .fetch_optional(pool)
    .await?;
    final_record(pool, reminder_id, updated).await
}

pub async fn final_record(
    pool: &PgPool,
    reminder_id: &str,
    updated: Option<DispatchRecord>,
) -> Result<DispatchRecord, sqlx::Error> {
    match updated {
        Some(r) => Ok(r),
        None => get(pool, reminder_id)
            .await?
            .ok_or(sqlx::Error::RowNotFound),
    }
}

/// Records a transient failure of attempt `attempt`: the reminder will be retried, not before
/// `wait` from now. False when the row is no longer that attempt in flight (already final, or
/// taken over by a newer attempt after this one's lease ran out).
pub async fn record_retry(
    pool: &PgPool,
    reminder_id: &str,
    attempt: i32,
    error_code: &str,
    error: &str,
    wait: Duration,
) -> Result<bool, sqlx::Error> {
    leave_attempt(
        pool,
        reminder_id,
        attempt,
        DispatchStatus::Retrying,
        (error_code, error),
        wait,
    )
    .await
}

/// Ends attempt `attempt` in flight without an outcome: `status` (retrying, or unknown while
/// a status is awaited) with its error, the next step not before `wait` from now. False when
/// the row is no longer that attempt in flight.
pub(super) async fn leave_attempt(
    pool: &PgPool,
    reminder_id: &str,
    attempt: i32,
    status: DispatchStatus,
    (error_code, error): (&str, &str),
    wait: Duration,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE reminder_dispatch SET status = $6, error_code = $2, error = $3,
             lease_until = NULL, next_attempt_at = now() + $4 * interval '1 millisecond',
             updated_at = now()
         WHERE reminder_id = $1 AND status = 'sending' AND attempts = $5",
    )
    .bind(reminder_id)
    .bind(error_code)
    .bind(error)
    .bind(wait.as_millis() as i64)
    .bind(attempt)
    .bind(status.as_str())
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Records a reminder as failed with `opted_out` and no attempt, unless it already has an
/// outcome or an attempt is under way. Returns the record when this call settled it.
pub async fn record_opted_out(
    pool: &PgPool,
    reminder_id: &str,
    due: &MaintenanceDue,
    provider: &str,
    error: &str,
) -> Result<Option<DispatchRecord>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO reminder_dispatch AS d (reminder_id, id_customer, id_vehicle, phone,
             customer_name, plate_number, status, attempts, provider, error_code, error, outcome_at)
         VALUES ($1, $2, $3, $4, $5, $6, 'failed', 0, $7, 'opted_out', $8, now())
         ON CONFLICT (reminder_id) DO UPDATE SET
             status = 'failed', error_code = 'opted_out', error = $8, outcome_at = now(),
             lease_until = NULL, updated_at = now()
         WHERE d.status = 'retrying' OR (d.status = 'sending' AND d.lease_until < now())
         RETURNING {COLUMNS}"
    )))
    .bind(reminder_id)
    .bind(due.customer_id)
    .bind(due.vehicle_id)
    .bind(due.phone.as_str())
    .bind(&due.customer_name)
    .bind(&due.plate_number)
    .bind(provider)
    .bind(error)
    .fetch_optional(pool)
    .await
}
