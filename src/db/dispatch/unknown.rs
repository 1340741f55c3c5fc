//! Reminders whose last provider call lost its answer (`unknown`): recorded so, held for
//! `whatsapp.unknown_outcome_wait_secs`, then settled by the delivery statuses the tracker
//! recorded (`message_statuses`): sent when one names the reminder, retried when none does.

use std::time::Duration;

use sqlx::PgPool;

use super::{COLUMNS, DispatchRecord, DispatchStatus, final_record, leave_attempt};

/// Records that attempt `attempt` may have reached the provider without an answer: the reminder
/// waits `wait` for a status. False when the row is no longer that attempt in flight.
pub async fn record_unknown(
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
        DispatchStatus::Unknown,
        (error_code, error),
        wait,
    )
    .await
}

/// The provider message id of a delivery status naming the reminder, if one was recorded
/// (any status: even `failed` proves the provider took the request). The earliest wins, so
/// every look-up answers the same.
pub async fn status_message_id(
    pool: &PgPool,
    reminder_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT provider_message_id FROM message_statuses WHERE reminder_id = $1
         ORDER BY at NULLS LAST, recorded_at LIMIT 1",
    )
    .bind(reminder_id)
    .fetch_optional(pool)
    .await
}

/// Records an `unknown` reminder as sent with the id its status carried, at the time its lost
/// call was recorded (when the message went out, give or take the time-out). The record
/// returned is the current one, and false when another copy settled it first.
pub async fn record_reconciled(
    pool: &PgPool,
    reminder_id: &str,
    provider_message_id: &str,
) -> Result<(DispatchRecord, bool), sqlx::Error> {
    let updated: Option<DispatchRecord> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE reminder_dispatch SET status = 'sent', provider_message_id = $2,
             outcome_at = updated_at, error_code = NULL, error = NULL, lease_until = NULL,
             next_attempt_at = NULL, updated_at = now()
         WHERE reminder_id = $1 AND status = 'unknown'
         RETURNING {COLUMNS}"
    )))
    .bind(reminder_id)
    .bind(provider_message_id)
    .fetch_optional(pool)
    .await?;
    let settled_here = updated.is_some();
    Ok((
        final_record(pool, reminder_id, updated).await?,
        settled_here,
    ))
}

/// Turns an `unknown` reminder whose wait is over into `retrying`, due now, keeping the lost
/// call's error as its last (the attempt stays counted). False (nothing changed) when another
/// copy settled it first.
pub async fn give_up_waiting(pool: &PgPool, reminder_id: &str) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE reminder_dispatch SET status = 'retrying', next_attempt_at = now(),
             updated_at = now()
         WHERE reminder_id = $1 AND status = 'unknown' AND next_attempt_at <= now()",
    )
    .bind(reminder_id)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}
