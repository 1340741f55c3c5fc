//! The statistics: aggregates of the whole report or of a period, messages per day, and the
//! pairs reminded more often than the alert allows.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::{PgPool, QueryBuilder};
use uuid::Uuid;

use super::{Page, Period, push_bucket_range};

/// Aggregate statistics of the report, or of the messages of a period.
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
    /// Sent messages the provider reported delivered, read ones included (with a period: of
    /// the messages sent in it).
    pub total_delivered: i64,
    /// Sent messages the provider reported read (with a period: of the messages sent in it).
    pub total_read: i64,
    /// Sent messages the provider reported failed after accepting them (with a period: of the
    /// messages sent in it).
    pub total_failed_after_send: i64,
    /// Customers' replies (with a period: received in it).
    pub total_replies: i64,
    /// Phones opted out now (whatever the period).
    pub opted_out: i64,
    /// The period's first day, when restricted.
    pub from: Option<NaiveDate>,
    /// The period's last day, when restricted.
    pub to: Option<NaiveDate>,
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
        qb.push(
            "p.sent, p.failed, p.last,
             p.delivered, p.read, p.failed_after_send, p.replies FROM ",
        );
    } else {
        qb.push(
            "NULL::bigint, NULL::bigint, NULL::timestamptz,
             t.delivered, t.read, t.failed_after_send, t.replies FROM ",
        );
    }
    qb.push(
        "(SELECT coalesce(sum(total_reports), 0)::bigint AS reports,
                 coalesce(sum(total_messages), 0)::bigint AS messages,
                 coalesce(sum(unique_customers), 0)::bigint AS customers,
                 coalesce(sum(unique_vehicles), 0)::bigint AS vehicles,
                 coalesce(sum(total_failed), 0)::bigint AS failed,
                 max(max_frequency) AS max_frequency,
                 max(last_message_date) AS last_message_date,
                 coalesce(sum(total_delivered), 0)::bigint AS delivered,
                 coalesce(sum(total_read), 0)::bigint AS read,
                 coalesce(sum(total_failed_after_send), 0)::bigint AS failed_after_send,
                 coalesce(sum(total_replies), 0)::bigint AS replies
          FROM report_totals) t",
    );
    if period.is_some() {
        qb.push(
            " CROSS JOIN (SELECT coalesce(sum(sent), 0)::bigint AS sent,
                                 coalesce(sum(failed), 0)::bigint AS failed,
                                 max(last_sent_at) AS last,
                                 coalesce(sum(delivered), 0)::bigint AS delivered,
                                 coalesce(sum(read), 0)::bigint AS read,
                                 coalesce(sum(failed_after_send), 0)::bigint AS failed_after_send,
                                 coalesce(sum(replies), 0)::bigint AS replies
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
        i64,
        i64,
        i64,
        i64,
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
        total_delivered: row.10,
        total_read: row.11,
        total_failed_after_send: row.12,
        total_replies: row.13,
        opted_out: crate::db::consent::count_opted_out(pool).await?,
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

/// One day's message counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct DayCounts {
    pub day: NaiveDate,
    pub sent: i64,
    pub failed: i64,
    /// Of the messages sent that day, those the provider reported delivered (read included).
    pub delivered: i64,
    /// Of the messages sent that day, those the provider reported read.
    pub read: i64,
    /// Replies received that day.
    pub replies: i64,
}

/// Messages sent and failed per calendar day in `tz`, for days in `[start, end)`, with the
/// funnel counts of the messages sent each day and the replies received.
pub async fn daily(
    pool: &PgPool,
    tz: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Vec<DayCounts>, sqlx::Error> {
    sqlx::query_as(
        "SELECT (bucket AT TIME ZONE $1)::date AS day, sum(sent)::bigint AS sent,
                sum(failed)::bigint AS failed, sum(delivered)::bigint AS delivered,
                sum(read)::bigint AS read, sum(replies)::bigint AS replies
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
