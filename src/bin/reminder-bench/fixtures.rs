//! Bulk data for the scenarios, generated inside PostgreSQL with `generate_series` (no rows
//! cross the wire): a fleet of customers and vehicles with a chosen number due, and a report
//! history (reports plus their message records) for the API scenario.
//!
//! Reports and messages are loaded with plain INSERTs, so the statement-level triggers of
//! `migrations/*_aggregates.sql` keep `report_totals`, `report_customers`, `report_vehicles`
//! and `message_buckets` exactly as the tracker would. To load millions of rows in reasonable
//! time the secondary indexes are dropped first and rebuilt afterwards (from their own
//! definitions), work is split over two connections, and the tables are vacuumed and analysed
//! at the end so the measurements do not race autovacuum. Kept self-contained so another
//! loader (e.g. a library fixture module) can replace it.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DurationRound as _, NaiveDate};
use sqlx::ConnectOptions as _;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// Loader connections working at once (this machine has two cores).
const PARALLEL: u64 = 2;

/// Customer `k` owns vehicles `2k` and `2k + 1` (0-based); ids are md5-derived UUIDs so SQL
/// and the tool agree on them without a round trip.
const CUSTOMER_ID: &str = "md5('bench-customer-' || (i / 2))::uuid";
const VEHICLE_ID: &str = "md5('bench-vehicle-' || i)::uuid";

pub struct Fleet {
    pub vehicles: u64,
    /// How many of them are due in `run_date ..= run_date + days_ahead`.
    pub due: u64,
    pub run_date: NaiveDate,
    pub days_ahead: u32,
}

/// A pool of the loader's own on the database `pool` connects to. Its statements run for
/// seconds by design; on the roles' pool each one logged sqlx's slow-statement warning, which
/// is there for the roles under measurement.
fn loader_pool(pool: &PgPool) -> PgPool {
    let options = (*pool.connect_options())
        .clone()
        .log_slow_statements(tracing::log::LevelFilter::Off, Duration::ZERO);
    PgPoolOptions::new()
        .max_connections(PARALLEL as u32 + 1)
        .connect_lazy_with(options)
}

/// Splits `0..n` into `PARALLEL` contiguous ranges with even boundaries (a customer's two
/// vehicles stay in one range).
fn ranges(n: u64) -> Vec<(u64, u64)> {
    let step = (n.div_ceil(PARALLEL) + 1) & !1;
    (0..PARALLEL)
        .map(|p| (p * step, ((p + 1) * step).min(n)))
        .filter(|(a, b)| a < b)
        .collect()
}

/// Runs `sql` once per range (binding `$1` = start, `$2` = end exclusive) on separate
/// connections at once. `prelude` runs first on each connection.
async fn parallel(pool: &PgPool, prelude: &str, sql: &str, n: u64) -> anyhow::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for (start, end) in ranges(n) {
        let pool = pool.clone();
        let prelude = prelude.to_string();
        let sql = sql.to_string();
        tasks.spawn(async move {
            let mut conn = pool.acquire().await?;
            // Session settings must not leak to the pool: the connection is closed, not returned.
            conn.close_on_drop();
            if !prelude.is_empty() {
                sqlx::raw_sql(sqlx::AssertSqlSafe(prelude))
                    .execute(&mut *conn)
                    .await?;
            }
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(start as i64)
                .bind(end as i64)
                .execute(&mut *conn)
                .await?;
            Ok::<_, sqlx::Error>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.context("a loader task panicked")?
            .context("loading rows")?;
    }
    Ok(())
}

/// Customers and vehicles. FK checks are skipped (`session_replication_role = replica`): the
/// generated rows are consistent by construction and the per-row check would dominate.
pub async fn load_fleet(pool: &PgPool, fleet: &Fleet) -> anyhow::Result<()> {
    let loader = loader_pool(pool);
    let loaded = load_fleet_with(&loader, fleet).await;
    loader.close().await;
    loaded
}

async fn load_fleet_with(pool: &PgPool, fleet: &Fleet) -> anyhow::Result<()> {
    let started = Instant::now();
    let customers = fleet.vehicles.div_ceil(2);
    parallel(
        pool,
        "SET session_replication_role = replica; SET synchronous_commit = off",
        "INSERT INTO customers (id, name, phone)
         SELECT md5('bench-customer-' || i)::uuid, 'Customer ' || i,
                '0812' || lpad((i % 100000000)::text, 8, '0')
         FROM generate_series($1::bigint, $2::bigint - 1) i",
        customers,
    )
    .await
    .context("loading customers")?;
    // Vehicle i is due when (i * due) mod vehicles < due: exactly `due` of them, spread evenly.
    // The others are due after the window, before it, or have no date.
    let sql = format!(
        "INSERT INTO vehicles (id, id_customer, plate_number, brand, model, next_maintenance_date)
         SELECT {VEHICLE_ID}, {CUSTOMER_ID}, 'B ' || (i % 10000) || ' ' || chr(65 + (i % 26)::int) || 'X',
                'Honda', 'Vario 125',
                CASE WHEN (i * {due}) % {total} < {due} THEN $3::date + (i % ({days} + 1))::int
                     WHEN i % 7 = 0 THEN NULL
                     WHEN i % 3 = 0 THEN $3::date - (1 + i % 300)::int
                     ELSE $3::date + ({days} + 1 + i % 300)::int END
         FROM generate_series($1::bigint, $2::bigint - 1) i",
        due = fleet.due,
        total = fleet.vehicles,
        days = fleet.days_ahead,
    );
    let mut tasks = tokio::task::JoinSet::new();
    for (start, end) in ranges(fleet.vehicles) {
        let pool = pool.clone();
        let sql = sql.clone();
        let run_date = fleet.run_date;
        tasks.spawn(async move {
            let mut conn = pool.acquire().await?;
            // Session settings must not leak to the pool: the connection is closed, not returned.
            conn.close_on_drop();
            sqlx::raw_sql("SET session_replication_role = replica; SET synchronous_commit = off")
                .execute(&mut *conn)
                .await?;
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(start as i64)
                .bind(end as i64)
                .bind(run_date)
                .execute(&mut *conn)
                .await?;
            Ok::<_, sqlx::Error>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.context("a loader task panicked")?
            .context("loading vehicles")?;
    }
    sqlx::raw_sql("VACUUM (ANALYZE) customers, vehicles")
        .execute(pool)
        .await?;
    let due: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM vehicles WHERE next_maintenance_date BETWEEN $1 AND $1 + $2::int",
    )
    .bind(fleet.run_date)
    .bind(fleet.days_ahead as i32)
    .fetch_one(pool)
    .await?;
    anyhow::ensure!(
        due as u64 == fleet.due,
        "the fleet has {due} due vehicles, not {}",
        fleet.due
    );
    tracing::info!(
        vehicles = fleet.vehicles,
        due = fleet.due,
        secs = started.elapsed().as_secs_f64(),
        "fleet loaded"
    );
    Ok(())
}

/// What the API fixture holds.
pub struct History {
    pub reports: u64,
    pub messages: u64,
}

/// One report per vehicle of a fleet of `reports` vehicles (which must be loaded), each with
/// `messages / reports` sent messages spread over the last ~6 months, newest first
/// `last_message_date`. Message k (1-based) of vehicle i was sent at
/// `now - (i % 150) days - (i * 37 % 86400) s - (k - 1) * 5 days`, with `now` the minute the
/// load started.
pub async fn load_history(pool: &PgPool, reports: u64, messages: u64) -> anyhow::Result<History> {
    let loader = loader_pool(pool);
    let loaded = load_history_with(&loader, reports, messages).await;
    loader.close().await;
    loaded
}

async fn load_history_with(pool: &PgPool, reports: u64, messages: u64) -> anyhow::Result<History> {
    let per_report = messages / reports;
    let started = Instant::now();
    // One anchor for every statement of the load. It was each statement's own `now()`, and
    // when a minute turned between the reports and their messages, the reports' latest times
    // matched none of their messages: the recent-first pages, which find reports through their
    // latest messages, came back short and fell back to sorting the whole report (a first page
    // of /detail at 211 ms p50 instead of 3 ms, in some runs only).
    let anchor = chrono::Utc::now()
        .duration_trunc(chrono::TimeDelta::minutes(1))
        .context("truncating the anchor to the minute")?
        .to_rfc3339();
    let base = format!(
        "'{anchor}'::timestamptz - (i % 150) * interval '1 day' - ((i * 37) % 86400) * interval '1 second'"
    );
    let dropped = drop_secondary_indexes(pool, &["whatsapp_report", "message_log"]).await?;
    parallel(
        pool,
        "SET synchronous_commit = off",
        &format!(
            "INSERT INTO whatsapp_report (id_customer, id_vehicle, last_message_date, frequency,
                                          customer_name, customer_phone, plate_number,
                                          created_at, updated_at)
             SELECT {CUSTOMER_ID}, {VEHICLE_ID}, {base}, {per_report},
                    'Customer ' || (i / 2), '62812' || lpad(((i / 2) % 100000000)::text, 8, '0'),
                    'B ' || (i % 10000) || ' ' || chr(65 + (i % 26)::int) || 'X',
                    {base} - ({per_report} - 1) * interval '5 days', {base}
             FROM generate_series($1::bigint, $2::bigint - 1) i"
        ),
        reports,
    )
    .await
    .context("loading whatsapp_report")?;
    // In slices, so each statement's transition table (the triggers' input) stays moderate.
    let slice = 200_000u64.min(reports);
    let mut start = 0;
    while start < reports {
        let end = (start + slice * PARALLEL).min(reports);
        parallel_range(
            pool,
            &format!(
                "INSERT INTO message_log (event_id, reminder_id, id_customer, id_vehicle, status,
                                          provider, provider_message_id, attempts, at, recorded_at)
                 SELECT md5('bench-event-' || i || '-' || k)::uuid::text,
                        md5('bench-reminder-' || i || '-' || k)::uuid::text,
                        {CUSTOMER_ID}, {VEHICLE_ID}, 'sent', 'cloud_api',
                        'wamid.bench' || i || '.' || k, 1,
                        {base} - (k - 1) * interval '5 days',
                        {base} - (k - 1) * interval '5 days' + interval '1 second'
                 FROM generate_series($1::bigint, $2::bigint - 1) i,
                      generate_series(1, {per_report}) k"
            ),
            start,
            end,
        )
        .await
        .context("loading message_log")?;
        start = end;
    }
    recreate_indexes(pool, dropped).await?;
    // Each report's latest time is its newest message's, as the tracker keeps it: checked on
    // the newest messages, which the recent-first pages read.
    let (walked, matched): (i64, i64) = sqlx::query_as(
        "WITH w AS (SELECT id_customer, id_vehicle, at FROM message_log
                    WHERE status = 'sent' ORDER BY at DESC LIMIT 1000),
         newest AS (SELECT DISTINCT ON (id_customer, id_vehicle) id_customer, id_vehicle, at
                    FROM w ORDER BY id_customer, id_vehicle, at DESC)
         SELECT count(*), count(r.id) FROM newest n LEFT JOIN whatsapp_report r
             ON r.id_customer = n.id_customer AND r.id_vehicle = n.id_vehicle
            AND r.last_message_date = n.at",
    )
    .fetch_one(pool)
    .await?;
    anyhow::ensure!(
        walked == matched,
        "the history fixture is inconsistent: {} of the {walked} pairs with the newest messages have another latest time",
        walked - matched
    );
    sqlx::raw_sql(
        "VACUUM (ANALYZE) whatsapp_report, message_log, report_customers, report_vehicles, message_buckets, report_totals",
    )
    .execute(pool)
    .await?;
    tracing::info!(
        reports,
        messages = reports * per_report,
        secs = started.elapsed().as_secs_f64(),
        "history loaded"
    );
    Ok(History {
        reports,
        messages: reports * per_report,
    })
}

/// `parallel` over `start..end` instead of `0..n`.
async fn parallel_range(pool: &PgPool, sql: &str, start: u64, end: u64) -> anyhow::Result<()> {
    let n = end - start;
    let mut tasks = tokio::task::JoinSet::new();
    for (a, b) in ranges(n) {
        let pool = pool.clone();
        let sql = sql.to_string();
        tasks.spawn(async move {
            let mut conn = pool.acquire().await?;
            // Session settings must not leak to the pool: the connection is closed, not returned.
            conn.close_on_drop();
            sqlx::raw_sql("SET synchronous_commit = off")
                .execute(&mut *conn)
                .await?;
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind((start + a) as i64)
                .bind((start + b) as i64)
                .execute(&mut *conn)
                .await?;
            Ok::<_, sqlx::Error>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.context("a loader task panicked")??;
    }
    Ok(())
}

/// Drops the indexes of `tables` that back no constraint; returns their definitions.
async fn drop_secondary_indexes(pool: &PgPool, tables: &[&str]) -> anyhow::Result<Vec<String>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i
         WHERE i.schemaname = current_schema() AND i.tablename = ANY($1)
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
    )
    .bind(tables.iter().map(|t| t.to_string()).collect::<Vec<_>>())
    .fetch_all(pool)
    .await?;
    for (name, _) in &rows {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP INDEX \"{name}\"")))
            .execute(pool)
            .await?;
    }
    Ok(rows.into_iter().map(|(_, def)| def).collect())
}

/// Rebuilds indexes from their definitions, two at a time.
async fn recreate_indexes(pool: &PgPool, definitions: Vec<String>) -> anyhow::Result<()> {
    let queue = std::sync::Arc::new(tokio::sync::Mutex::new(definitions));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..PARALLEL {
        let pool = pool.clone();
        let queue = queue.clone();
        tasks.spawn(async move {
            let mut conn = pool.acquire().await?;
            // Session settings must not leak to the pool: the connection is closed, not returned.
            conn.close_on_drop();
            sqlx::raw_sql("SET maintenance_work_mem = '256MB'")
                .execute(&mut *conn)
                .await?;
            loop {
                let Some(def) = queue.lock().await.pop() else {
                    break;
                };
                sqlx::raw_sql(sqlx::AssertSqlSafe(def))
                    .execute(&mut *conn)
                    .await?;
            }
            Ok::<_, sqlx::Error>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.context("an index task panicked")?
            .context("rebuilding an index")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_everything_once_on_even_boundaries() {
        for n in [1u64, 2, 3, 7, 10, 1_000_000, 1_000_001] {
            let r = ranges(n);
            assert_eq!(r.first().unwrap().0, 0);
            assert_eq!(r.last().unwrap().1, n);
            for w in r.windows(2) {
                assert_eq!(w[0].1, w[1].0);
                assert_eq!(w[0].1 % 2, 0);
            }
        }
    }
}
