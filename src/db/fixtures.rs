//! Synthetic report data at scale, for benchmarks and query-plan checks (`reminder-bench api`,
//! EXPLAIN ANALYZE on a million reports): a fast server-side `generate_series` loader, and a
//! recount that proves the trigger-maintained aggregates agree with the rows.
//!
//! The loader writes through the real tables, so the statistics triggers fire exactly as they
//! do for the tracker: `message_log` first (message buckets, failed total), then one report row
//! per pair aggregated from that history (report totals, distinct customers and vehicles) and
//! the per-pair failure counts. Every value is a deterministic function of the row number, so
//! two loads of the same size are identical apart from `now`.
//!
//! ```no_run
//! # async fn demo(pool: sqlx::PgPool) -> anyhow::Result<()> {
//! use reminder::db::fixtures::{self, FixtureSize};
//! let size = FixtureSize { reports: 1_000_000, messages: 5_000_000, ..FixtureSize::default() };
//! fixtures::load(&pool, &size, chrono::Utc::now()).await?;
//! assert!(fixtures::aggregate_drift(&pool).await?.is_empty());
//! # Ok(()) }
//! ```

use anyhow::{Context, ensure};
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// How much to load.
#[derive(Debug, Clone)]
pub struct FixtureSize {
    /// Customer and vehicle pairs, each with at least one message sent: the report's rows.
    pub reports: u64,
    /// Messages in the history (at least `reports`); about one in twenty beyond the first per
    /// pair failed.
    pub messages: u64,
    /// Messages are spread over this many days before `now`.
    pub days: u32,
    /// Rows per INSERT statement (bounds the triggers' transition tables).
    pub chunk: u64,
}

impl Default for FixtureSize {
    fn default() -> Self {
        FixtureSize {
            reports: 10_000,
            messages: 50_000,
            days: 365,
            chunk: 500_000,
        }
    }
}

/// The customer and vehicle ids of pair `n` (pairs `2k` and `2k + 1` share customer `k`), as the
/// loader generated them: what a benchmark needs to ask for one customer's or one pair's report.
pub async fn pair_ids(pool: &PgPool, pair: u64) -> Result<(Uuid, Uuid), sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CUSTOMER_SQL}, {VEHICLE_SQL} FROM (SELECT $1::bigint AS n) x"
    )))
    .bind(pair as i64)
    .fetch_one(pool)
    .await
}

// Ids are md5 of a readable name, so they look random but are reproducible.
const CUSTOMER_SQL: &str = "md5('reminder-fixture-customer-' || (n / 2))::uuid";
const VEHICLE_SQL: &str = "md5('reminder-fixture-vehicle-' || n)::uuid";

/// Loads `size` into an empty report: master data for most pairs (every tenth customer and
/// every twentieth vehicle are left out, so the detail view's fallback to what the events said
/// is exercised), the message history, the report rows and the failure counts, then VACUUM
/// ANALYZE so plans and index-only scans are what production would see.
pub async fn load(pool: &PgPool, size: &FixtureSize, now: DateTime<Utc>) -> anyhow::Result<()> {
    ensure!(size.reports > 0, "fixtures: reports must be positive");
    ensure!(
        size.messages >= size.reports,
        "fixtures: at least one message per report"
    );
    ensure!(
        size.days > 0 && size.chunk > 0,
        "fixtures: days and chunk must be positive"
    );
    let existing: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM whatsapp_report) + (SELECT count(*) FROM message_log)",
    )
    .fetch_one(pool)
    .await?;
    ensure!(
        existing == 0,
        "fixtures: the report and the message history must be empty"
    );
    let (r, m) = (size.reports as i64, size.messages as i64);
    let span_secs = i64::from(size.days) * 86_400;

    // Master data. Customers n/2 for every pair n; vehicles n.
    let customers = (size.reports as i64 + 1) / 2;
    for (lo, hi) in chunks(customers, size.chunk as i64) {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO customers (id, name, phone, created_at, updated_at)
             SELECT {customer}, 'Customer ' || c, '62812' || lpad((c % 100000000)::text, 8, '0'),
                    $3, $3
             FROM generate_series($1::bigint, $2::bigint - 1) AS c
             CROSS JOIN LATERAL (SELECT c * 2 AS n) x
             WHERE c % 10 <> 9",
            customer = CUSTOMER_SQL
        )))
        .bind(lo)
        .bind(hi)
        .bind(now - chrono::Duration::days(i64::from(size.days) + 1))
        .execute(pool)
        .await
        .context("loading customers")?;
    }
    for (lo, hi) in chunks(r, size.chunk as i64) {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO vehicles (id, id_customer, plate_number, brand, model,
                                   next_maintenance_date, created_at, updated_at)
             SELECT {vehicle}, {customer}, 'B ' || (1000 + n % 9000) || ' FX' || (n % 97),
                    (ARRAY['Honda', 'Yamaha', 'Suzuki', 'Toyota'])[1 + n % 4],
                    (ARRAY['Vario 125', 'NMAX', 'Satria', 'Avanza'])[1 + n % 4],
                    ($3::timestamptz)::date + (n % 180)::int, $3, $3
             FROM generate_series($1::bigint, $2::bigint - 1) AS n
             WHERE (n / 2) % 10 <> 9 AND n % 20 <> 19",
            vehicle = VEHICLE_SQL,
            customer = CUSTOMER_SQL
        )))
        .bind(lo)
        .bind(hi)
        .bind(now)
        .execute(pool)
        .await
        .context("loading vehicles")?;
    }

    // The history: message k goes to pair k % reports; the first message of every pair was
    // sent, later ones fail one time in twenty. Times are scattered over the span by a
    // multiplicative hash so every day and every pair gets a realistic mix.
    for (lo, hi) in chunks(m, size.chunk as i64) {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO message_log (event_id, reminder_id, id_customer, id_vehicle, status,
                                      provider, provider_message_id, error_code, error, attempts,
                                      at, recorded_at)
             SELECT 'fixture-' || k, 'fixture-r-' || k, {customer}, {vehicle}, s.status,
                    'cloud_api',
                    CASE WHEN s.status = 'sent' THEN 'wamid.fixture' || k END,
                    CASE WHEN s.status = 'failed' THEN '131026' END,
                    CASE WHEN s.status = 'failed' THEN 'Message undeliverable' END,
                    1 + (k % 3)::int, t.at, t.at
             FROM generate_series($1::bigint, $2::bigint - 1) AS k
             CROSS JOIN LATERAL (SELECT k % $3 AS n) p
             CROSS JOIN LATERAL (SELECT CASE WHEN k >= $3 AND (k * 48271) % 2147483647 % 20 = 0
                                             THEN 'failed' ELSE 'sent' END AS status) s
             CROSS JOIN LATERAL (SELECT $4::timestamptz
                                        - make_interval(secs => ((k * 2654435761) % $5)::double precision)
                                        AS at) t",
            customer = CUSTOMER_SQL,
            vehicle = VEHICLE_SQL
        )))
        .bind(lo)
        .bind(hi)
        .bind(r)
        .bind(now)
        .bind(span_secs)
        .execute(pool)
        .await
        .context("loading the message history")?;
    }

    // One report row per pair and the failure counts, aggregated from the history exactly as the
    // tracker would have counted them, each in one pass over the history (the history has no
    // per-pair B-tree to look each pair up in).
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL work_mem = '256MB'")
        .execute(&mut *tx)
        .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "WITH pairs AS (
             SELECT n, {customer} AS c, {vehicle} AS v
             FROM generate_series(0, $1::bigint - 1) AS n
         ),
         sent AS (
             SELECT id_customer, id_vehicle, count(*)::int AS sent, max(at) AS last_at,
                    min(at) AS first_at
             FROM message_log WHERE status = 'sent'
             GROUP BY id_customer, id_vehicle
         )
         INSERT INTO whatsapp_report (id_customer, id_vehicle, last_message_date, frequency,
                                      customer_name, customer_phone, plate_number,
                                      created_at, updated_at)
         SELECT p.c, p.v, a.last_at, coalesce(a.sent, 0), 'Customer ' || (p.n / 2),
                '62812' || lpad(((p.n / 2) % 100000000)::text, 8, '0'),
                'B ' || (1000 + p.n % 9000) || ' FX' || (p.n % 97), a.first_at, a.last_at
         FROM pairs p
         LEFT JOIN sent a ON a.id_customer = p.c AND a.id_vehicle = p.v",
        customer = CUSTOMER_SQL,
        vehicle = VEHICLE_SQL
    )))
    .bind(r)
    .execute(&mut *tx)
    .await
    .context("loading the report")?;
    sqlx::query(
        "INSERT INTO whatsapp_failure_report (id_customer, id_vehicle, failed_count,
                                              last_failed_at, last_error_code)
         SELECT id_customer, id_vehicle, count(*)::int, max(at), '131026'
         FROM message_log WHERE status = 'failed'
         GROUP BY id_customer, id_vehicle",
    )
    .execute(&mut *tx)
    .await
    .context("loading the failure counts")?;
    tx.commit().await?;

    sqlx::raw_sql(
        "VACUUM ANALYZE customers, vehicles, message_log, whatsapp_report,
                        whatsapp_failure_report, report_totals, report_customers,
                        report_vehicles, message_buckets",
    )
    .execute(pool)
    .await
    .context("VACUUM ANALYZE after loading")?;
    Ok(())
}

fn chunks(total: i64, size: i64) -> impl Iterator<Item = (i64, i64)> {
    (0..total)
        .step_by(size as usize)
        .map(move |lo| (lo, (lo + size).min(total)))
}

/// Every aggregate the triggers maintain, recounted from the rows, that disagrees with its
/// maintained value: `(what, maintained, recounted)`. Empty when all agree. Scans everything;
/// meant for tests and after bulk loads, not for serving.
pub async fn aggregate_drift(pool: &PgPool) -> anyhow::Result<Vec<(String, i64, i64)>> {
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "WITH kept AS (
             SELECT sum(total_reports)::bigint AS reports, sum(total_messages)::bigint AS messages,
                    sum(unique_customers)::bigint AS customers,
                    sum(unique_vehicles)::bigint AS vehicles, sum(total_failed)::bigint AS failed,
                    max(max_frequency)::bigint AS max_frequency,
                    (extract(epoch FROM max(last_message_date)) * 1000000)::bigint AS last_at
             FROM report_totals
         ), real AS (
             SELECT (SELECT count(*) FROM whatsapp_report) AS reports,
                    (SELECT coalesce(sum(frequency), 0) FROM whatsapp_report)::bigint AS messages,
                    (SELECT count(DISTINCT id_customer) FROM whatsapp_report) AS customers,
                    (SELECT count(DISTINCT id_vehicle) FROM whatsapp_report) AS vehicles,
                    (SELECT count(*) FROM message_log WHERE status = 'failed') AS failed,
                    (SELECT coalesce(max(frequency), 0) FROM whatsapp_report)::bigint AS max_frequency,
                    (SELECT (extract(epoch FROM max(last_message_date)) * 1000000)::bigint
                     FROM whatsapp_report) AS last_at
         ), buckets AS (
             SELECT count(*) AS wrong FROM (
                 SELECT bucket, sent, failed, last_sent_at FROM message_buckets
                 WHERE sent <> 0 OR failed <> 0
                 EXCEPT
                 SELECT date_bin('15 minutes', at, timestamptz '2000-01-01 00:00:00+00'),
                        count(*) FILTER (WHERE status = 'sent'),
                        count(*) FILTER (WHERE status = 'failed'),
                        max(at) FILTER (WHERE status = 'sent')
                 FROM message_log GROUP BY 1
             ) x
         ), per_customer AS (
             SELECT count(*) AS wrong FROM (
                 (SELECT id_customer, reports::bigint FROM report_customers
                  EXCEPT SELECT id_customer, count(*) FROM whatsapp_report GROUP BY 1)
                 UNION ALL
                 (SELECT id_customer, count(*) FROM whatsapp_report GROUP BY 1
                  EXCEPT SELECT id_customer, reports::bigint FROM report_customers)
             ) x
         ), per_vehicle AS (
             SELECT count(*) AS wrong FROM (
                 (SELECT id_vehicle, reports::bigint FROM report_vehicles
                  EXCEPT SELECT id_vehicle, count(*) FROM whatsapp_report GROUP BY 1)
                 UNION ALL
                 (SELECT id_vehicle, count(*) FROM whatsapp_report GROUP BY 1
                  EXCEPT SELECT id_vehicle, reports::bigint FROM report_vehicles)
             ) x
         )
         SELECT what, kept, real FROM kept, real, buckets, per_customer, per_vehicle,
         LATERAL (VALUES
             ('total_reports', kept.reports, real.reports),
             ('total_messages', kept.messages, real.messages),
             ('unique_customers', kept.customers, real.customers),
             ('unique_vehicles', kept.vehicles, real.vehicles),
             ('total_failed', kept.failed, real.failed),
             ('max_frequency', kept.max_frequency, real.max_frequency),
             ('last_message_date (microseconds since 1970)', kept.last_at, real.last_at),
             ('message_buckets rows differing', buckets.wrong, 0),
             ('report_customers rows differing', per_customer.wrong, 0),
             ('report_vehicles rows differing', per_vehicle.wrong, 0)
         ) AS v(what, kept, real)
         WHERE kept IS DISTINCT FROM real",
    )
    .fetch_all(pool)
    .await
    .context("recounting the aggregates")?;
    Ok(rows)
}
