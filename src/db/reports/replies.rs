//! Customers' replies, newest first, with who sent them and which reminder they answer.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::{Page, Period};

/// One reply, attributed where it could be (null ids otherwise).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ReplyRecord {
    pub provider: String,
    /// The provider's id of the reply itself.
    pub provider_message_id: String,
    /// The sender, E.164 digits.
    pub phone: String,
    pub id_customer: Option<Uuid>,
    pub id_vehicle: Option<Uuid>,
    /// The reminder the reply answers.
    pub reminder_id: Option<String>,
    /// `text`, `button`, `interactive` or `other`
    #[serde(rename = "type")]
    #[sqlx(rename = "type")]
    pub reply_type: String,
    pub text: Option<String>,
    pub button_payload: Option<String>,
    pub at: DateTime<Utc>,
    /// The customer's name from the master data, else what the pair's report recorded.
    pub customer_name: Option<String>,
    /// The plate number of the vehicle whose reminder was answered.
    pub plate_number: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ReplyFilter {
    pub customer: Option<Uuid>,
    pub period: Option<Period>,
}

fn push_filter(qb: &mut QueryBuilder<Postgres>, filter: &ReplyFilter) {
    let mut sep = " WHERE ";
    if let Some(customer) = filter.customer {
        qb.push(sep).push("p.id_customer = ").push_bind(customer);
        sep = " AND ";
    }
    if let Some(start) = filter.period.and_then(|p| p.start) {
        qb.push(sep).push("p.at >= ").push_bind(start);
        sep = " AND ";
    }
    if let Some(end) = filter.period.and_then(|p| p.end) {
        qb.push(sep).push("p.at < ").push_bind(end);
    }
}

/// One page of replies, newest first, and how many match the filter.
pub async fn replies(
    pool: &PgPool,
    filter: &ReplyFilter,
    page: Page,
) -> Result<(Vec<ReplyRecord>, i64), sqlx::Error> {
    let mut count = QueryBuilder::new("SELECT count(*) FROM replies p");
    push_filter(&mut count, filter);
    let total: i64 = count.build_query_scalar().fetch_one(pool).await?;
    if page.offset >= total {
        return Ok((Vec::new(), total));
    }
    let mut qb = QueryBuilder::new(
        "SELECT p.provider, p.provider_message_id, p.phone, p.id_customer, p.id_vehicle,
                p.reminder_id, p.type, p.text, p.button_payload, p.at,
                coalesce(c.name, r.customer_name) AS customer_name,
                coalesce(v.plate_number, r.plate_number) AS plate_number
         FROM replies p
         LEFT JOIN customers c ON c.id = p.id_customer
         LEFT JOIN vehicles v ON v.id = p.id_vehicle
         LEFT JOIN whatsapp_report r
                ON r.id_customer = p.id_customer AND r.id_vehicle = p.id_vehicle",
    );
    push_filter(&mut qb, filter);
    qb.push(" ORDER BY p.at DESC, p.event_id LIMIT ")
        .push_bind(page.limit)
        .push(" OFFSET ")
        .push_bind(page.offset);
    Ok((qb.build_query_as().fetch_all(pool).await?, total))
}
