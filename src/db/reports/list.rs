//! Pages of reports and of their detail view (reports with their customer and vehicle), and
//! single reports by id, customer or pair.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::{DEEP_OFFSET, Page};

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
    /// Sent messages the provider reported delivered (read ones included).
    pub delivered: i32,
    /// Sent messages the provider reported read.
    pub read: i32,
    /// Customers' replies attributed to this pair.
    pub replies: i32,
    /// The phone the pair's reminders went to is opted out now.
    pub opted_out: bool,
}

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

pub(super) const REPORT_COLUMNS: &str = "r.id, r.id_customer, r.id_vehicle, r.last_message_date, r.frequency, r.created_at, r.updated_at";

/// The detail view's columns: master data first, then what the latest event said.
pub(super) const DETAIL_COLUMNS: &str = r#"
       r.id, r.id_customer, r.id_vehicle, r.last_message_date, r.frequency, r.created_at,
       r.updated_at,
       coalesce(c.name, r.customer_name) AS customer_name,
       coalesce(c.phone, r.customer_phone) AS customer_phone,
       coalesce(v.plate_number, r.plate_number) AS plate_number,
       v.brand, v.model, v.next_maintenance_date,
       coalesce(f.failed_count, 0) AS failed_count,
       r.delivered, r.read, r.replies,
       EXISTS (SELECT 1 FROM consent k WHERE k.phone = r.customer_phone AND k.opted_out)
           AS opted_out
"#;

pub(super) const DETAIL_JOINS: &str = r#"
LEFT JOIN customers c ON c.id = r.id_customer
LEFT JOIN vehicles v ON v.id = r.id_vehicle
LEFT JOIN whatsapp_failure_report f ON f.id_customer = r.id_customer AND f.id_vehicle = r.id_vehicle
"#;

pub(super) fn order_by(sort: ReportSort) -> &'static str {
    match sort {
        ReportSort::Recent => " ORDER BY r.last_message_date DESC, r.id ",
        ReportSort::Frequency => " ORDER BY r.frequency DESC, r.id ",
    }
}

/// Appends the filter's conditions. Only the conditions actually given are written (no
/// `$1 IS NULL OR ...`), so every variant gets its own plan using the matching index, also
/// when PostgreSQL switches a cached statement to a generic plan.
pub(super) fn push_report_filter(qb: &mut QueryBuilder<Postgres>, filter: &ReportFilter) {
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
/// history, so it would hash the whole report instead of looking up the walked pairs.
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

/// The most sent messages a recent-first page reads from the history before it sorts the whole
/// report instead: past this, walking the history costs more than the sort it saves.
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
