//! The message history: pages of it newest first, filtered by status, customer, vehicle or
//! period, and how many messages match.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::{BUCKET_SECS, DEEP_OFFSET, Page, Period, push_bucket_range};
use crate::domain::OutcomeStatus;

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
    /// How far a sent message got, as the provider reported it: `accepted` (no report yet),
    /// `failed` (failed after the provider accepted it), `delivered` or `read`; null for a
    /// `failed` row.
    pub delivery: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub read_at: Option<DateTime<Utc>>,
    /// The provider's code for a failure after sending.
    pub delivery_error_code: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    pub status: Option<OutcomeStatus>,
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

/// The filter limited to the history still kept: the quarter-hour totals still count pruned
/// messages, which the list no longer has. The horizon is on a quarter-hour, so a filter the
/// totals could answer still can.
async fn within_history(
    pool: &PgPool,
    filter: &MessageFilter,
) -> Result<MessageFilter, sqlx::Error> {
    let horizon: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT pruned_before FROM history_horizon")
            .fetch_optional(pool)
            .await?;
    let mut filter = filter.clone();
    if let Some(horizon) = horizon {
        let period = filter.period.get_or_insert(Period {
            start: None,
            end: None,
        });
        period.start = Some(period.start.map_or(horizon, |s| s.max(horizon)));
    }
    Ok(filter)
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
        Some(OutcomeStatus::Sent) => "sent",
        Some(OutcomeStatus::Failed) => "failed",
    })
}

/// Messages matching the filter, all pages. Status and period alone are answered by the
/// quarter-hour buckets, without touching the history.
pub async fn count_messages(pool: &PgPool, filter: &MessageFilter) -> Result<i64, sqlx::Error> {
    let filter = &within_history(pool, filter).await?;
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
    let filter = &within_history(pool, filter).await?;
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
                      coalesce(v.plate_number, r.plate_number) AS plate_number,
                      CASE WHEN m.status = 'sent' THEN coalesce(m.delivery, 'accepted') END
                          AS delivery,
                      m.delivered_at, m.read_at, m.delivery_error_code
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
