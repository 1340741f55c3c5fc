//! `producer_runs`: one row per scan, so operators can see the history and a producer that
//! starts late knows whether today's scan already ran.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunCounts {
    pub vehicles_scanned: u64,
    pub events_published: u64,
    pub skipped_invalid_phone: u64,
    pub skipped_invalid_data: u64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProducerRun {
    pub id: Uuid,
    pub run_date: NaiveDate,
    pub trigger: String,
    pub status: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub vehicles_scanned: i64,
    pub events_published: i64,
    pub skipped_invalid_phone: i64,
    pub skipped_invalid_data: i64,
    pub error: Option<String>,
}

pub async fn start(pool: &PgPool, run_date: NaiveDate, trigger: &str) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO producer_runs (id, run_date, trigger, status) VALUES ($1, $2, $3, 'running')",
    )
    .bind(id)
    .bind(run_date)
    .bind(trigger)
    .execute(pool)
    .await?;
    Ok(id)
}

pub async fn finish(
    pool: &PgPool,
    id: Uuid,
    counts: RunCounts,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE producer_runs SET status = $2, finished_at = now(), vehicles_scanned = $3,
             events_published = $4, skipped_invalid_phone = $5, skipped_invalid_data = $6,
             error = $7
         WHERE id = $1",
    )
    .bind(id)
    .bind(if error.is_some() {
        "failed"
    } else {
        "succeeded"
    })
    .bind(counts.vehicles_scanned as i64)
    .bind(counts.events_published as i64)
    .bind(counts.skipped_invalid_phone as i64)
    .bind(counts.skipped_invalid_data as i64)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

/// Whether a scan for `run_date` succeeded after `since`.
pub async fn succeeded_since(
    pool: &PgPool,
    run_date: NaiveDate,
    since: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM producer_runs
                        WHERE run_date = $1 AND status = 'succeeded' AND started_at >= $2)",
    )
    .bind(run_date)
    .bind(since)
    .fetch_one(pool)
    .await
}

pub async fn recent(pool: &PgPool, limit: i64) -> Result<Vec<ProducerRun>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, run_date, trigger, status, started_at, finished_at, vehicles_scanned,
                events_published, skipped_invalid_phone, skipped_invalid_data, error
         FROM producer_runs ORDER BY started_at DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}
