//! Reads of the report for the HTTP API and the CLI, and the CLI's two writes (delete one
//! report, reset frequencies). Statistics read the trigger-maintained aggregates, never the
//! whole report table.

use chrono::{DateTime, NaiveDate, Utc};
use futures::stream::BoxStream;
use serde::Serialize;
use sqlx::{PgPool, Postgres, QueryBuilder};
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Period {
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
}

impl Period {
    /// True when both bounds fall on quarter-hour boundaries, so the quarter-hour message
    /// buckets answer for the period exactly (midnights in every zone in use today do; some
    /// historical local mean times did not).
    pub fn on_bucket_boundaries(&self) -> bool {
        [self.start, self.end]
            .into_iter()
            .flatten()
            .all(|t| t.timestamp().rem_euclid(BUCKET_SECS) == 0 && t.timestamp_subsec_nanos() == 0)
    }
}

/// Width of a `message_buckets` bucket.
const BUCKET_SECS: i64 = 15 * 60;

/// Which reports a list, detail or export covers.
#[derive(Debug, Clone, Default)]
pub struct ReportFilter {
    pub customer: Option<Uuid>,
    pub vehicle: Option<Uuid>,
    pub sort: ReportSort,
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Deserialize, utoipa::ToSchema,
)]
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

/// The detail view's columns: master data first, then what the latest event said.
const DETAIL_COLUMNS: &str = r#"
       r.id, r.id_customer, r.id_vehicle, r.last_message_date, r.frequency, r.created_at,
       r.updated_at,
       coalesce(c.name, r.customer_name) AS customer_name,
       coalesce(c.phone, r.customer_phone) AS customer_phone,
       coalesce(v.plate_number, r.plate_number) AS plate_number,
       v.brand, v.model, v.next_maintenance_date,
       coalesce(f.failed_count, 0) AS failed_count
"#;

const DETAIL_JOINS: &str = r#"
LEFT JOIN customers c ON c.id = r.id_customer
LEFT JOIN vehicles v ON v.id = r.id_vehicle
LEFT JOIN whatsapp_failure_report f ON f.id_customer = r.id_customer AND f.id_vehicle = r.id_vehicle
"#;

fn order_by(sort: ReportSort) -> &'static str {
    match sort {
        ReportSort::Recent => " ORDER BY r.last_message_date DESC, r.id ",
        ReportSort::Frequency => " ORDER BY r.frequency DESC, r.id ",
    }
}

/// Appends the filter's conditions. Only the conditions actually given are written (no
/// `$1 IS NULL OR ...`), so every variant gets its own plan using the matching index, also
/// when PostgreSQL switches a cached statement to a generic plan.
fn push_report_filter(qb: &mut QueryBuilder<Postgres>, filter: &ReportFilter) {
    let mut sep = " WHERE ";
    if let Some(customer) = filter.customer {
        qb.push(sep).push("r.id_customer = ").push_bind(customer);
        sep = " AND ";
    }
    if let Some(vehicle) = filter.vehicle {
        qb.push(sep).push("r.id_vehicle = ").push_bind(vehicle);
    }
}

/// `WITH page AS (one page, and the total)`, read as `r` by what follows.
///
/// Unfiltered, the page holds ids alone, sorted from the whole report (no index has a sort
/// order: most recent first usually goes through `push_recent_page` instead), and the total is
/// the maintained one; the page's rows are then fetched by id and joined. Filtered by customer
/// or vehicle, the few matching rows come from their index, so the page holds whole rows and a
/// window count, and nothing is looked up twice. Either way a page is one round trip.
fn push_page(qb: &mut QueryBuilder<Postgres>, filter: &ReportFilter, page: Page) {
    if is_unfiltered(filter) {
        qb.push(format!(
            "WITH page AS (SELECT r.id, ({MAINTAINED_TOTAL}) AS total FROM whatsapp_report r"
        ));
    } else {
        qb.push("WITH page AS (SELECT r.*, count(*) OVER () AS total FROM whatsapp_report r");
    }
    push_report_filter(qb, filter);
    qb.push(order_by(filter.sort))
        .push(" LIMIT ")
        .push_bind(page.limit)
        .push(" OFFSET ")
        .push_bind(page.offset)
        .push(") ");
}

/// `WITH page AS (ids of one page, and the total)` of all reports, most recently messaged
/// first, found through the newest `walk` sent messages instead of sorting the report (which
/// has no index on `last_message_date`: see `migrations/*_report_hot_updates.sql`).
///
/// Every report's `last_message_date` is the time of one of its pair's sent messages in
/// `message_log`. So if the walk ends at time `t`, every report messaged after `t` has a
/// message in the walk, and the reports found with `last_message_date > t` are exactly all
/// reports messaged after `t`, in their true order, ahead of every other report. A page that
/// fills up from them is the page a sort of the whole report would give. (When the walk reads
/// the whole history, every report with a message is found.) The caller widens the walk when
/// the page comes back short of the total.
///
/// The walk's size is written into the statement, not bound: PostgreSQL may switch a prepared
/// statement to a generic plan, and a generic plan guesses a bound `LIMIT` at a tenth of the
/// history, so it hashed the whole report instead of looking up the walked pairs (55 ms against
/// 2 ms on 200,000 reports under `plan_cache_mode = force_generic_plan`).
fn push_recent_page(qb: &mut QueryBuilder<Postgres>, page: Page, walk: i64) {
    qb.push(format!(
        "WITH walk AS (
             SELECT id_customer, id_vehicle, at FROM message_log
             WHERE status = 'sent' ORDER BY at DESC, event_id LIMIT {walk}"
    ))
    .push(format!(
        "), edge AS (SELECT count(*) AS walked, min(at) AS t FROM walk),
         page AS (
             SELECT r.id, ({MAINTAINED_TOTAL}) AS total
             FROM (SELECT DISTINCT id_customer, id_vehicle, at FROM walk) w
             JOIN whatsapp_report r ON r.id_customer = w.id_customer
                                   AND r.id_vehicle = w.id_vehicle
                                   AND r.last_message_date = w.at
             CROSS JOIN edge
             WHERE w.at > edge.t OR edge.walked < {walk}"
    ))
    .push(order_by(ReportSort::Recent))
    .push(" LIMIT ")
    .push_bind(page.limit)
    .push(" OFFSET ")
    .push_bind(page.offset)
    .push(") ");
}

/// `SELECT` of the total and `columns` of the page's rows (as `r`), then `joins`.
fn push_page_select(
    qb: &mut QueryBuilder<Postgres>,
    filter: &ReportFilter,
    columns: &str,
    joins: &str,
) {
    if is_unfiltered(filter) {
        qb.push(format!(
            "SELECT page.total, {columns} FROM page JOIN whatsapp_report r ON r.id = page.id {joins}"
        ));
    } else {
        qb.push(format!("SELECT r.total, {columns} FROM page r {joins}"));
    }
}

fn is_unfiltered(filter: &ReportFilter) -> bool {
    filter.customer.is_none() && filter.vehicle.is_none()
}

/// How many reports there are, as the triggers keep it (no scan).
const MAINTAINED_TOTAL: &str = "SELECT coalesce(sum(total_reports), 0)::bigint FROM report_totals";

/// Reports matching the filter, all pages. Without a filter this is the maintained total (no
/// scan).
pub async fn count(pool: &PgPool, filter: &ReportFilter) -> Result<i64, sqlx::Error> {
    if is_unfiltered(filter) {
        return sqlx::query_scalar(MAINTAINED_TOTAL).fetch_one(pool).await;
    }
    let mut qb = QueryBuilder::new("SELECT count(*) FROM whatsapp_report r");
    push_report_filter(&mut qb, filter);
    qb.build_query_scalar().fetch_one(pool).await
}

#[derive(sqlx::FromRow)]
struct CountedReport {
    total: i64,
    #[sqlx(flatten)]
    row: Report,
}

#[derive(sqlx::FromRow)]
struct CountedDetail {
    total: i64,
    #[sqlx(flatten)]
    row: ReportDetail,
}

/// Offsets from which a page first checks the total, so a page past the end costs nothing
/// instead of a walk over the whole table.
const DEEP_OFFSET: i64 = 10_000;

/// The most sent messages a recent-first page reads from the history before it sorts the whole
/// report instead (about 5 microseconds per message walked, against ~0.1 s per million reports
/// for the sort).
const WALK_CAP: i64 = 32_768;

/// Runs a page query whose rows carry the total; works out the total on its own when the page
/// is empty, and skips the page when a deep offset is past the end.
async fn counted_page<T, R>(
    pool: &PgPool,
    filter: &ReportFilter,
    page: Page,
    (columns, joins): (&str, &str),
    split: fn(R) -> (i64, T),
) -> Result<(Vec<T>, i64), sqlx::Error>
where
    R: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    if page.offset >= DEEP_OFFSET {
        let total = count(pool, filter).await?;
        if page.offset >= total {
            return Ok((Vec::new(), total));
        }
    }
    if is_unfiltered(filter) && filter.sort == ReportSort::Recent {
        // A power of two, so there are a dozen walk sizes (and statements) in all.
        let mut walk = ((2 * (page.offset + page.limit) + 64) as u64).next_power_of_two() as i64;
        while walk <= WALK_CAP {
            let mut qb = QueryBuilder::new("");
            push_recent_page(&mut qb, page, walk);
            push_page_select(&mut qb, filter, columns, joins);
            qb.push(order_by(filter.sort));
            let (rows, total) = with_total(
                pool,
                filter,
                page,
                qb.build_query_as().fetch_all(pool).await?,
                split,
            )
            .await?;
            // A full page, or every report up to the end, is exact (see `push_recent_page`);
            // a short one only says the walk stopped too early.
            if rows.len() as i64 == page.limit || page.offset + rows.len() as i64 >= total {
                return Ok((rows, total));
            }
            walk *= 4;
        }
    }
    let mut qb = QueryBuilder::new("");
    push_page(&mut qb, filter, page);
    push_page_select(&mut qb, filter, columns, joins);
    qb.push(order_by(filter.sort));
    let rows: Vec<R> = qb.build_query_as().fetch_all(pool).await?;
    with_total(pool, filter, page, rows, split).await
}

/// Splits the total off a page's rows (they all carry it), or counts when there are none.
async fn with_total<T, R>(
    pool: &PgPool,
    filter: &ReportFilter,
    page: Page,
    rows: Vec<R>,
    split: fn(R) -> (i64, T),
) -> Result<(Vec<T>, i64), sqlx::Error> {
    if rows.is_empty() {
        let total = if page.offset == 0 && !is_unfiltered(filter) {
            0
        } else {
            count(pool, filter).await?
        };
        return Ok((Vec::new(), total));
    }
    let mut total = 0;
    let rows = rows
        .into_iter()
        .map(|r| {
            let (t, row) = split(r);
            total = t;
            row
        })
        .collect();
    Ok((rows, total))
}

/// One page of reports and the total matching the filter.
pub async fn list(
    pool: &PgPool,
    filter: &ReportFilter,
    page: Page,
) -> Result<(Vec<Report>, i64), sqlx::Error> {
    counted_page(
        pool,
        filter,
        page,
        (REPORT_COLUMNS, ""),
        |r: CountedReport| (r.total, r.row),
    )
    .await
}

/// One page of the detail view and the total matching the filter.
pub async fn detail(
    pool: &PgPool,
    filter: &ReportFilter,
    page: Page,
) -> Result<(Vec<ReportDetail>, i64), sqlx::Error> {
    counted_page(
        pool,
        filter,
        page,
        (DETAIL_COLUMNS, DETAIL_JOINS),
        |r: CountedDetail| (r.total, r.row),
    )
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
        let mut qb = QueryBuilder::new(format!(
            "SELECT {DETAIL_COLUMNS} FROM whatsapp_report r {DETAIL_JOINS}"
        ));
        push_report_filter(&mut qb, &filter);
        qb.push(order_by(filter.sort));
        let mut rows = qb.build_query_as::<ReportDetail>().fetch(&pool);
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

/// One customer's reports, latest first, one page of them, and how many there are.
pub async fn by_customer(
    pool: &PgPool,
    customer: Uuid,
    page: Page,
) -> Result<(Vec<Report>, i64), sqlx::Error> {
    let filter = ReportFilter {
        customer: Some(customer),
        ..ReportFilter::default()
    };
    list(pool, &filter, page).await
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

/// Pushes `bucket >= start AND bucket < end` for the bounds given (quarter-hour buckets).
fn push_bucket_range(qb: &mut QueryBuilder<Postgres>, period: Option<Period>) {
    let (start, end) = period.map(|p| (p.start, p.end)).unwrap_or((None, None));
    let mut sep = " WHERE ";
    if let Some(start) = start {
        qb.push(sep).push("bucket >= ").push_bind(start);
        sep = " AND ";
    }
    if let Some(end) = end {
        qb.push(sep).push("bucket < ").push_bind(end);
    }
}

/// The statistics in one round trip: the sharded totals and maxima and, for a period, the
/// quarter-hour message buckets.
/// Nothing here reads more than a few rows of `whatsapp_report`, however large it is.
pub async fn statistics(
    pool: &PgPool,
    period: Option<Period>,
    days: (Option<NaiveDate>, Option<NaiveDate>),
) -> Result<Statistics, sqlx::Error> {
    let mut qb = QueryBuilder::new(
        "SELECT t.reports, t.messages, t.customers, t.vehicles, t.failed,
                t.max_frequency, t.last_message_date, ",
    );
    if period.is_some() {
        qb.push("p.sent, p.failed, p.last FROM ");
    } else {
        qb.push("NULL::bigint, NULL::bigint, NULL::timestamptz FROM ");
    }
    qb.push(
        "(SELECT coalesce(sum(total_reports), 0)::bigint AS reports,
                 coalesce(sum(total_messages), 0)::bigint AS messages,
                 coalesce(sum(unique_customers), 0)::bigint AS customers,
                 coalesce(sum(unique_vehicles), 0)::bigint AS vehicles,
                 coalesce(sum(total_failed), 0)::bigint AS failed,
                 max(max_frequency) AS max_frequency,
                 max(last_message_date) AS last_message_date
          FROM report_totals) t",
    );
    if period.is_some() {
        qb.push(
            " CROSS JOIN (SELECT coalesce(sum(sent), 0)::bigint AS sent,
                                 coalesce(sum(failed), 0)::bigint AS failed,
                                 max(last_sent_at) AS last
                          FROM message_buckets",
        );
        push_bucket_range(&mut qb, period);
        qb.push(") p");
    }
    #[allow(clippy::type_complexity)]
    let row: (
        i64,
        i64,
        i64,
        i64,
        i64,
        Option<i32>,
        Option<DateTime<Utc>>,
        Option<i64>,
        Option<i64>,
        Option<DateTime<Utc>>,
    ) = qb.build_query_as().fetch_one(pool).await?;
    let (total_reports, total_messages, unique_customers, unique_vehicles, total_failed) =
        (row.0, row.1, row.2, row.3, row.4);
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
        max_frequency: row.5.unwrap_or(0),
        last_message_date: row.6,
        total_failed,
        from: days.0,
        to: days.1,
    };
    if period.is_some() {
        let sent = row.7.unwrap_or(0);
        stats.total_messages = sent;
        stats.total_failed = row.8.unwrap_or(0);
        stats.last_message_date = row.9;
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

/// A message's outcome, as a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageStatus {
    Sent,
    Failed,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Sent => "sent",
            MessageStatus::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    pub status: Option<MessageStatus>,
    pub customer: Option<Uuid>,
    pub vehicle: Option<Uuid>,
    pub period: Option<Period>,
}

fn push_message_filter(qb: &mut QueryBuilder<Postgres>, filter: &MessageFilter) {
    let mut sep = " WHERE ";
    let mut cond = |qb: &mut QueryBuilder<Postgres>| {
        qb.push(sep);
        sep = " AND ";
    };
    if let Some(status) = filter.status {
        cond(qb);
        qb.push("status = ").push_bind(status.as_str());
    }
    // The recipient index's key is the array of both ids (migration
    // 20261130000002_history_recipient_index.sql): the containment finds the rows through it,
    // and the equalities keep a customer id that is also some vehicle's id from matching.
    let ids: Vec<Uuid> = filter.customer.into_iter().chain(filter.vehicle).collect();
    if !ids.is_empty() {
        cond(qb);
        qb.push("ARRAY[id_customer, id_vehicle] @> ")
            .push_bind(ids)
            .push("::uuid[]");
    }
    if let Some(customer) = filter.customer {
        cond(qb);
        qb.push("id_customer = ").push_bind(customer);
    }
    if let Some(vehicle) = filter.vehicle {
        cond(qb);
        qb.push("id_vehicle = ").push_bind(vehicle);
    }
    if let Some(start) = filter.period.and_then(|p| p.start) {
        cond(qb);
        qb.push("at >= ").push_bind(start);
    }
    if let Some(end) = filter.period.and_then(|p| p.end) {
        cond(qb);
        qb.push("at < ").push_bind(end);
    }
}

/// The `message_buckets` column counting what the filter selects, when the buckets can answer
/// for it exactly: no customer or vehicle, and period bounds on bucket boundaries.
fn bucket_column(filter: &MessageFilter) -> Option<&'static str> {
    if filter.customer.is_some()
        || filter.vehicle.is_some()
        || !filter.period.is_none_or(|p| p.on_bucket_boundaries())
    {
        return None;
    }
    Some(match filter.status {
        None => "sent + failed",
        Some(MessageStatus::Sent) => "sent",
        Some(MessageStatus::Failed) => "failed",
    })
}

/// Messages matching the filter, all pages. Status and period alone are answered by the
/// quarter-hour buckets, without touching the history.
pub async fn count_messages(pool: &PgPool, filter: &MessageFilter) -> Result<i64, sqlx::Error> {
    if let Some(column) = bucket_column(filter) {
        let mut qb = QueryBuilder::new(format!(
            "SELECT coalesce(sum({column}), 0)::bigint FROM message_buckets"
        ));
        push_bucket_range(&mut qb, filter.period);
        return qb.build_query_scalar().fetch_one(pool).await;
    }
    let mut qb = QueryBuilder::new("SELECT count(*) FROM message_log");
    push_message_filter(&mut qb, filter);
    qb.build_query_scalar().fetch_one(pool).await
}

/// One page of the history, newest first, and the total matching the filter.
pub async fn messages(
    pool: &PgPool,
    filter: &MessageFilter,
    page: Page,
) -> Result<(Vec<MessageRecord>, i64), sqlx::Error> {
    let total = count_messages(pool, filter).await?;
    if page.offset >= total {
        return Ok((Vec::new(), total));
    }
    // A deep page starts from the quarter-hour bucket it falls in, found from the buckets'
    // running counts, so the index is walked from there instead of from the newest message.
    let mut filter = filter.clone();
    let mut offset = page.offset;
    if offset >= DEEP_OFFSET
        && let Some(column) = bucket_column(&filter)
        && let Some((bucket_end, newer)) = seek_bucket(pool, column, &filter, offset).await?
    {
        let period = filter.period.get_or_insert(Period {
            start: None,
            end: None,
        });
        period.end = Some(period.end.map_or(bucket_end, |e| e.min(bucket_end)));
        offset -= newer;
    }
    // The page's event ids first, from an index alone, then their rows.
    let mut qb = QueryBuilder::new("WITH page AS (SELECT event_id FROM message_log");
    push_message_filter(&mut qb, &filter);
    qb.push(" ORDER BY at DESC, event_id LIMIT ")
        .push_bind(page.limit)
        .push(" OFFSET ")
        .push_bind(offset)
        .push(
            ") SELECT m.reminder_id, m.id_customer, m.id_vehicle, m.status, m.provider,
                      m.provider_message_id, m.error_code, m.error, m.attempts, m.at,
                      coalesce(c.name, r.customer_name) AS customer_name,
                      coalesce(v.plate_number, r.plate_number) AS plate_number
               FROM page JOIN message_log m ON m.event_id = page.event_id
               LEFT JOIN customers c ON c.id = m.id_customer
               LEFT JOIN vehicles v ON v.id = m.id_vehicle
               LEFT JOIN whatsapp_report r
                      ON r.id_customer = m.id_customer AND r.id_vehicle = m.id_vehicle
               ORDER BY m.at DESC, m.event_id",
        );
    Ok((qb.build_query_as().fetch_all(pool).await?, total))
}

/// The end of the bucket holding the `offset`-th message (newest first) the filter selects, and
/// how many selected messages are newer than that bucket.
async fn seek_bucket(
    pool: &PgPool,
    column: &str,
    filter: &MessageFilter,
    offset: i64,
) -> Result<Option<(DateTime<Utc>, i64)>, sqlx::Error> {
    let mut qb = QueryBuilder::new(format!(
        "SELECT bucket + interval '{BUCKET_SECS} seconds', (through - n)::bigint FROM (
             SELECT bucket, {column} AS n, sum({column}) OVER (ORDER BY bucket DESC) AS through
             FROM message_buckets"
    ));
    push_bucket_range(&mut qb, filter.period);
    qb.push(") b WHERE through > ")
        .push_bind(offset)
        .push(" ORDER BY bucket DESC LIMIT 1");
    qb.build_query_as().fetch_optional(pool).await
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

#[derive(sqlx::FromRow)]
struct OverRemindedRow {
    total: i64,
    #[sqlx(flatten)]
    pair: OverReminded,
}

/// One page of the pairs sent more than `max_frequency` messages since `since`, most reminded
/// first, and how many such pairs there are.
pub async fn over_reminded(
    pool: &PgPool,
    since: DateTime<Utc>,
    max_frequency: i64,
    page: Page,
) -> Result<(Vec<OverReminded>, i64), sqlx::Error> {
    // One pass over the window: the total rides along as a window count.
    let rows: Vec<OverRemindedRow> = sqlx::query_as(
        "WITH m AS (
             SELECT id_customer, id_vehicle, count(*) AS n, count(*) OVER () AS total
             FROM message_log
             WHERE status = 'sent' AND at >= $1
             GROUP BY id_customer, id_vehicle HAVING count(*) > $2
             ORDER BY n DESC, id_customer, id_vehicle
             LIMIT $3 OFFSET $4
         )
         SELECT m.total, r.id, m.id_customer, m.id_vehicle, m.n AS messages_in_window,
                r.frequency, r.last_message_date,
                coalesce(c.name, r.customer_name) AS customer_name,
                coalesce(v.plate_number, r.plate_number) AS plate_number
         FROM m
         LEFT JOIN whatsapp_report r ON r.id_customer = m.id_customer AND r.id_vehicle = m.id_vehicle
         LEFT JOIN customers c ON c.id = m.id_customer
         LEFT JOIN vehicles v ON v.id = m.id_vehicle
         ORDER BY m.n DESC, m.id_customer, m.id_vehicle",
    )
    .bind(since)
    .bind(max_frequency)
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(pool)
    .await?;
    let total = match rows.first() {
        Some(row) => row.total,
        // Past the last page (or none at all): count separately.
        None if page.offset > 0 => count_over_reminded(pool, since, max_frequency).await?,
        None => 0,
    };
    Ok((rows.into_iter().map(|r| r.pair).collect(), total))
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
