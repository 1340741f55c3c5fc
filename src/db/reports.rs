//! Reads of the report for the HTTP API and the CLI, and the CLI's two writes (delete one
//! report, reset frequencies). Statistics read the trigger-maintained aggregates, never the
//! whole report table.

use chrono::{DateTime, NaiveDate, Utc};
use futures::stream::BoxStream;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

/// One row of `whatsapp_report`, as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Report {
    pub id: Uuid,
    pub id_customer: Uuid,
    pub id_vehicle: Uuid,
    pub last_message_date: DateTime<Utc>,
    pub frequency: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A report with the customer and vehicle it is about. Master data wins; where it is missing
/// (a pair known only from events) the values the latest event carried are shown.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ReportDetail {
    pub id: Uuid,
    pub id_customer: Uuid,
    pub id_vehicle: Uuid,
    pub last_message_date: DateTime<Utc>,
    pub frequency: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub customer_name: Option<String>,
    pub customer_phone: Option<String>,
    pub plate_number: Option<String>,
    pub brand: Option<String>,
    pub model: Option<String>,
    pub next_maintenance_date: Option<NaiveDate>,
    /// Messages to this pair that failed for good.
    pub failed_count: i32,
}

/// Aggregate statistics (contract §5).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Statistics {
    /// Report rows (customer and vehicle pairs).
    pub total_reports: i64,
    /// Sum of frequency; with `from`/`to`, messages sent in that period instead.
    pub total_messages: i64,
    pub unique_customers: i64,
    pub unique_vehicles: i64,
    /// total_messages / total_reports (0 when there are none).
    pub average_frequency: f64,
    pub max_frequency: i32,
    /// Latest message sent (in the period, when one is given).
    pub last_message_date: Option<DateTime<Utc>>,
    /// Messages that failed for good (in the period, when one is given).
    pub total_failed: i64,
    /// The period's first day, when restricted.
    pub from: Option<NaiveDate>,
    /// The period's last day, when restricted.
    pub to: Option<NaiveDate>,
}

/// A half-open time range `[start, end)` in UTC, from calendar days in the workshop's zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
}

/// Which reports a list, detail or export covers.
#[derive(Debug, Clone, Default)]
pub struct ReportFilter {
    pub customer: Option<Uuid>,
    pub vehicle: Option<Uuid>,
    pub sort: ReportSort,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportSort {
    /// Most recently messaged first.
    #[default]
    Recent,
    /// Highest frequency first.
    Frequency,
}

#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

const REPORT_COLUMNS: &str = "r.id, r.id_customer, r.id_vehicle, r.last_message_date, r.frequency, r.created_at, r.updated_at";

const DETAIL_SELECT: &str = r#"
SELECT r.id, r.id_customer, r.id_vehicle, r.last_message_date, r.frequency, r.created_at,
       r.updated_at,
       coalesce(c.name, r.customer_name) AS customer_name,
       coalesce(c.phone, r.customer_phone) AS customer_phone,
       coalesce(v.plate_number, r.plate_number) AS plate_number,
       v.brand, v.model, v.next_maintenance_date,
       coalesce(f.failed_count, 0) AS failed_count
FROM whatsapp_report r
LEFT JOIN customers c ON c.id = r.id_customer
LEFT JOIN vehicles v ON v.id = r.id_vehicle
LEFT JOIN whatsapp_failure_report f ON f.id_customer = r.id_customer AND f.id_vehicle = r.id_vehicle
"#;

const FILTER: &str =
    " WHERE ($1::uuid IS NULL OR r.id_customer = $1) AND ($2::uuid IS NULL OR r.id_vehicle = $2) ";

fn order_by(sort: ReportSort) -> &'static str {
    match sort {
        ReportSort::Recent => " ORDER BY r.last_message_date DESC, r.id ",
        ReportSort::Frequency => " ORDER BY r.frequency DESC, r.id ",
    }
}

pub async fn count(pool: &PgPool, filter: &ReportFilter) -> Result<i64, sqlx::Error> {
    if filter.customer.is_none() && filter.vehicle.is_none() {
        return sqlx::query_scalar(
            "SELECT coalesce(sum(total_reports), 0)::bigint FROM report_totals",
        )
        .fetch_one(pool)
        .await;
    }
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM whatsapp_report r {FILTER}"
    )))
    .bind(filter.customer)
    .bind(filter.vehicle)
    .fetch_one(pool)
    .await
}

pub async fn list(
    pool: &PgPool,
    filter: &ReportFilter,
    page: Page,
) -> Result<Vec<Report>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {REPORT_COLUMNS} FROM whatsapp_report r {FILTER} {} LIMIT $3 OFFSET $4",
        order_by(filter.sort)
    )))
    .bind(filter.customer)
    .bind(filter.vehicle)
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(pool)
    .await
}

pub async fn detail(
    pool: &PgPool,
    filter: &ReportFilter,
    page: Page,
) -> Result<Vec<ReportDetail>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{DETAIL_SELECT} {FILTER} {} LIMIT $3 OFFSET $4",
        order_by(filter.sort)
    )))
    .bind(filter.customer)
    .bind(filter.vehicle)
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(pool)
    .await
}

/// The whole detail view as a stream, for CSV export without holding it in memory. A task
/// reads rows into a small bounded channel, so a slow consumer (an HTTP client, a file) pauses
/// the database read instead of buffering rows.
pub fn detail_stream(
    pool: &PgPool,
    filter: ReportFilter,
) -> BoxStream<'static, Result<ReportDetail, sqlx::Error>> {
    use futures::StreamExt;
    let pool = pool.clone();
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    tokio::spawn(async move {
        let sql = format!("{DETAIL_SELECT} {FILTER} {}", order_by(filter.sort));
        let mut rows = sqlx::query_as::<_, ReportDetail>(sqlx::AssertSqlSafe(sql))
            .bind(filter.customer)
            .bind(filter.vehicle)
            .fetch(&pool);
        while let Some(row) = rows.next().await {
            let failed = row.is_err();
            if tx.send(row).await.is_err() || failed {
                break;
            }
        }
    });
    futures::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|row| (row, rx)) },
    )
    .boxed()
}

pub async fn by_id(pool: &PgPool, id: Uuid) -> Result<Option<Report>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {REPORT_COLUMNS} FROM whatsapp_report r WHERE r.id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await
}

pub async fn by_customer(pool: &PgPool, customer: Uuid) -> Result<Vec<Report>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {REPORT_COLUMNS} FROM whatsapp_report r WHERE r.id_customer = $1
         ORDER BY r.last_message_date DESC, r.id LIMIT 10000"
    )))
    .bind(customer)
    .fetch_all(pool)
    .await
}

pub async fn by_pair(
    pool: &PgPool,
    customer: Uuid,
    vehicle: Uuid,
) -> Result<Option<Report>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {REPORT_COLUMNS} FROM whatsapp_report r WHERE r.id_customer = $1 AND r.id_vehicle = $2"
    )))
    .bind(customer)
    .bind(vehicle)
    .fetch_optional(pool)
    .await
}

pub async fn statistics(
    pool: &PgPool,
    period: Option<Period>,
    days: (Option<NaiveDate>, Option<NaiveDate>),
) -> Result<Statistics, sqlx::Error> {
    let (total_reports, total_messages, unique_customers, unique_vehicles, total_failed): (
        i64,
        i64,
        i64,
        i64,
        i64,
    ) = sqlx::query_as(
        "SELECT coalesce(sum(total_reports), 0)::bigint, coalesce(sum(total_messages), 0)::bigint,
                coalesce(sum(unique_customers), 0)::bigint, coalesce(sum(unique_vehicles), 0)::bigint,
                coalesce(sum(total_failed), 0)::bigint
         FROM report_totals",
    )
    .fetch_one(pool)
    .await?;
    let (max_frequency, last_message_date): (Option<i32>, Option<DateTime<Utc>>) = sqlx::query_as(
        "SELECT (SELECT frequency FROM whatsapp_report ORDER BY frequency DESC, id LIMIT 1),
                (SELECT last_message_date FROM whatsapp_report ORDER BY last_message_date DESC, id LIMIT 1)",
    )
    .fetch_one(pool)
    .await?;
    let average = |messages: i64| {
        if total_reports > 0 {
            ((messages as f64 / total_reports as f64) * 100.0).round() / 100.0
        } else {
            0.0
        }
    };
    let mut stats = Statistics {
        total_reports,
        total_messages,
        unique_customers,
        unique_vehicles,
        average_frequency: average(total_messages),
        max_frequency: max_frequency.unwrap_or(0),
        last_message_date,
        total_failed,
        from: days.0,
        to: days.1,
    };
    if let Some(period) = period {
        let (sent, failed, last): (i64, i64, Option<DateTime<Utc>>) = sqlx::query_as(
            "SELECT coalesce(sum(sent), 0)::bigint, coalesce(sum(failed), 0)::bigint, max(last_sent_at)
             FROM message_buckets
             WHERE ($1::timestamptz IS NULL OR bucket >= $1) AND ($2::timestamptz IS NULL OR bucket < $2)",
        )
        .bind(period.start)
        .bind(period.end)
        .fetch_one(pool)
        .await?;
        stats.total_messages = sent;
        stats.total_failed = failed;
        stats.last_message_date = last;
        stats.average_frequency = average(sent);
    }
    Ok(stats)
}

/// One message in the history.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct MessageRecord {
    pub reminder_id: String,
    pub id_customer: Uuid,
    pub id_vehicle: Uuid,
    /// `sent` or `failed`
    pub status: String,
    pub provider: String,
    pub provider_message_id: Option<String>,
    pub error_code: Option<String>,
    pub error: Option<String>,
    pub attempts: i32,
    pub at: DateTime<Utc>,
    /// The customer's name from the master data (else what the pair's report recorded; null
    /// when neither knows it), so a list of failures can say who was not reached.
    pub customer_name: Option<String>,
    /// The vehicle's plate number, from the same sources.
    pub plate_number: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    pub status: Option<String>,
    pub customer: Option<Uuid>,
    pub vehicle: Option<Uuid>,
    pub period: Option<Period>,
}

const MESSAGE_FILTER: &str = " WHERE ($1::text IS NULL OR status = $1)
    AND ($2::uuid IS NULL OR id_customer = $2) AND ($3::uuid IS NULL OR id_vehicle = $3)
    AND ($4::timestamptz IS NULL OR at >= $4) AND ($5::timestamptz IS NULL OR at < $5) ";

pub async fn messages(
    pool: &PgPool,
    filter: &MessageFilter,
    page: Page,
) -> Result<(Vec<MessageRecord>, i64), sqlx::Error> {
    let (start, end) = filter
        .period
        .map(|p| (p.start, p.end))
        .unwrap_or((None, None));
    let rows: Vec<MessageRecord> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT m.reminder_id, m.id_customer, m.id_vehicle, m.status, m.provider,
                m.provider_message_id, m.error_code, m.error, m.attempts, m.at,
                coalesce(c.name, r.customer_name) AS customer_name,
                coalesce(v.plate_number, r.plate_number) AS plate_number
         FROM (SELECT * FROM message_log {MESSAGE_FILTER}
               ORDER BY at DESC, event_id LIMIT $6 OFFSET $7) m
         LEFT JOIN customers c ON c.id = m.id_customer
         LEFT JOIN vehicles v ON v.id = m.id_vehicle
         LEFT JOIN whatsapp_report r ON r.id_customer = m.id_customer AND r.id_vehicle = m.id_vehicle
         ORDER BY m.at DESC, m.event_id"
    )))
    .bind(&filter.status)
    .bind(filter.customer)
    .bind(filter.vehicle)
    .bind(start)
    .bind(end)
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(pool)
    .await?;
    let total: i64 = if filter.customer.is_none() && filter.vehicle.is_none() {
        // Status and period alone: the quarter-hour buckets answer exactly, without a scan.
        sqlx::query_scalar(
            "SELECT coalesce(sum(CASE WHEN $1::text IS NULL THEN sent + failed
                                      WHEN $1 = 'sent' THEN sent ELSE failed END), 0)::bigint
             FROM message_buckets
             WHERE ($2::timestamptz IS NULL OR bucket >= $2) AND ($3::timestamptz IS NULL OR bucket < $3)",
        )
        .bind(&filter.status)
        .bind(start)
        .bind(end)
        .fetch_one(pool)
        .await?
    } else {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM message_log {MESSAGE_FILTER}"
        )))
        .bind(&filter.status)
        .bind(filter.customer)
        .bind(filter.vehicle)
        .bind(start)
        .bind(end)
        .fetch_one(pool)
        .await?
    };
    Ok((rows, total))
}

/// Messages sent and failed per calendar day in `tz`, for days in `[start, end)`.
pub async fn daily(
    pool: &PgPool,
    tz: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Vec<(NaiveDate, i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT (bucket AT TIME ZONE $1)::date AS day, sum(sent)::bigint, sum(failed)::bigint
         FROM message_buckets WHERE bucket >= $2 AND bucket < $3
         GROUP BY 1 ORDER BY 1",
    )
    .bind(tz)
    .bind(start)
    .bind(end)
    .fetch_all(pool)
    .await
}

/// A pair reminded more than the alert threshold within the window.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct OverReminded {
    pub id: Option<Uuid>,
    pub id_customer: Uuid,
    pub id_vehicle: Uuid,
    /// Messages sent to this pair within the window.
    pub messages_in_window: i64,
    pub frequency: Option<i32>,
    pub last_message_date: Option<DateTime<Utc>>,
    pub customer_name: Option<String>,
    pub plate_number: Option<String>,
}

pub async fn over_reminded(
    pool: &PgPool,
    since: DateTime<Utc>,
    max_frequency: i64,
    limit: i64,
) -> Result<Vec<OverReminded>, sqlx::Error> {
    sqlx::query_as(
        "SELECT r.id, m.id_customer, m.id_vehicle, m.n AS messages_in_window, r.frequency,
                r.last_message_date,
                coalesce(c.name, r.customer_name) AS customer_name,
                coalesce(v.plate_number, r.plate_number) AS plate_number
         FROM (SELECT id_customer, id_vehicle, count(*) AS n FROM message_log
               WHERE status = 'sent' AND at >= $1
               GROUP BY id_customer, id_vehicle HAVING count(*) > $2) m
         LEFT JOIN whatsapp_report r ON r.id_customer = m.id_customer AND r.id_vehicle = m.id_vehicle
         LEFT JOIN customers c ON c.id = m.id_customer
         LEFT JOIN vehicles v ON v.id = m.id_vehicle
         ORDER BY m.n DESC, m.id_customer, m.id_vehicle
         LIMIT $3",
    )
    .bind(since)
    .bind(max_frequency)
    .bind(limit)
    .fetch_all(pool)
    .await
}

pub async fn count_over_reminded(
    pool: &PgPool,
    since: DateTime<Utc>,
    max_frequency: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT 1 FROM message_log WHERE status = 'sent' AND at >= $1
                               GROUP BY id_customer, id_vehicle HAVING count(*) > $2) m",
    )
    .bind(since)
    .bind(max_frequency)
    .fetch_one(pool)
    .await
}

/// Deletes one report row (its message history stays). Returns the deleted row.
pub async fn delete(pool: &PgPool, id: Uuid) -> Result<Option<Report>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "DELETE FROM whatsapp_report r WHERE r.id = $1 RETURNING {REPORT_COLUMNS}"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// Sets `frequency` to 0 on the matching reports (all when no filter), keeping the rows, their
/// `last_message_date` and the message history. Returns (rows changed, messages cleared).
pub async fn reset_frequency(
    pool: &PgPool,
    customer: Option<Uuid>,
    vehicle: Option<Uuid>,
) -> Result<(u64, i64), sqlx::Error> {
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
    .fetch_one(pool)
    .await?;
    Ok((rows as u64, cleared.unwrap_or(0)))
}
