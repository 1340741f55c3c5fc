//! The CLI's writes to the report: delete one report, reset frequencies. The HTTP API never
//! writes.

use sqlx::{PgPool, Postgres};
use uuid::Uuid;

use super::list::{REPORT_COLUMNS, Report};

/// Starts a transaction in which the report may go down (a delete or a reset): tracker batches
/// wait until it commits, so the maxima the triggers recount from the table cannot miss a
/// count committed meanwhile. Readers are not held up.
async fn lowering(pool: &PgPool) -> Result<sqlx::Transaction<'static, Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("LOCK TABLE whatsapp_report IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// Deletes one report row (its message history stays). Returns the deleted row.
pub async fn delete(pool: &PgPool, id: Uuid) -> Result<Option<Report>, sqlx::Error> {
    let mut tx = lowering(pool).await?;
    let deleted = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "DELETE FROM whatsapp_report r WHERE r.id = $1 RETURNING {REPORT_COLUMNS}"
    )))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(deleted)
}

/// Sets `frequency` to 0 on the matching reports (all when no filter), keeping the rows, their
/// `last_message_date` and the message history. Returns (rows changed, messages cleared).
pub async fn reset_frequency(
    pool: &PgPool,
    customer: Option<Uuid>,
    vehicle: Option<Uuid>,
) -> Result<(u64, i64), sqlx::Error> {
    let mut tx = lowering(pool).await?;
    let (rows, cleared): (i64, Option<i64>) = sqlx::query_as(
        "WITH old AS (
             SELECT id, frequency FROM whatsapp_report
             WHERE ($1::uuid IS NULL OR id_customer = $1) AND ($2::uuid IS NULL OR id_vehicle = $2)
               AND frequency > 0
             FOR UPDATE
         ), upd AS (
             UPDATE whatsapp_report r SET frequency = 0, updated_at = now()
             FROM old WHERE r.id = old.id
             RETURNING old.frequency
         )
         SELECT count(*), sum(frequency)::bigint FROM upd",
    )
    .bind(customer)
    .bind(vehicle)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((rows as u64, cleared.unwrap_or(0)))
}
