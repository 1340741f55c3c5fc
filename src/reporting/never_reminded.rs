//! The vehicles that fell due and were never reminded: due in a period, with no `sent` message
//! to their customer and vehicle in the reminder window before the due date, and why (the phone
//! is opted out, the sends failed, or nothing was attempted), so the front desk can phone them.

use chrono::NaiveDate;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::db::reports::Page;
use crate::domain::{CountryCode, PhoneNumber};

/// Why a due vehicle was not reminded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The customer's phone is opted out now.
    OptedOut,
    /// Reminders were attempted in the window and failed (`error_code` is the latest one's).
    Failed,
    /// No reminder was attempted in the window.
    NotAttempted,
}

/// One vehicle that should have been reminded and was not.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct NeverReminded {
    pub id_customer: Uuid,
    pub id_vehicle: Uuid,
    pub customer_name: String,
    pub plate_number: String,
    pub next_maintenance_date: NaiveDate,
    pub reason: Reason,
    /// The latest failure's error code in the window (only with reason `failed`).
    pub error_code: Option<String>,
}

/// Which vehicles to look at and how their reminder window is drawn.
#[derive(Debug, Clone)]
pub struct Window {
    /// First and last due date, both inclusive.
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// A vehicle due on day D counts as reminded by a message sent from D - days_ahead through
    /// the end of D (the producer's own reminder window).
    pub days_ahead: i32,
    /// The workshop's time zone, in which those days are counted.
    pub tz: String,
}

/// `missed` holds the vehicles due in the period with no sent message in their window, as
/// (`id_vehicle`, `id_customer`, `customer_name`, `phone`, `plate_number`, `d`, `win_start`,
/// `win_end`). Binds: $1 from, $2 to, $3 days_ahead, $4 time zone.
const MISSED: &str = "
    missed AS (
        SELECT v.id AS id_vehicle, v.id_customer, c.name AS customer_name, c.phone,
               v.plate_number, v.next_maintenance_date AS d,
               ((v.next_maintenance_date - $3::int)::timestamp AT TIME ZONE $4) AS win_start,
               ((v.next_maintenance_date + 1)::timestamp AT TIME ZONE $4) AS win_end
        FROM vehicles v JOIN customers c ON c.id = v.id_customer
        WHERE v.next_maintenance_date BETWEEN $1 AND $2
          AND NOT EXISTS (
              SELECT 1 FROM message_log m
              WHERE ARRAY[m.id_customer, m.id_vehicle] @> ARRAY[v.id_customer, v.id]
                AND m.id_customer = v.id_customer AND m.id_vehicle = v.id
                AND m.status = 'sent'
                AND m.at >= ((v.next_maintenance_date - $3::int)::timestamp AT TIME ZONE $4)
                AND m.at < ((v.next_maintenance_date + 1)::timestamp AT TIME ZONE $4))
    )";

#[derive(sqlx::FromRow)]
struct Row {
    total: i64,
    id_customer: Uuid,
    id_vehicle: Uuid,
    customer_name: String,
    phone: String,
    plate_number: String,
    d: NaiveDate,
    failed: bool,
    error_code: Option<String>,
}

/// How many vehicles due in the window were never reminded.
pub async fn count(pool: &PgPool, window: &Window) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "WITH {MISSED} SELECT count(*) FROM missed"
    )))
    .bind(window.from)
    .bind(window.to)
    .bind(window.days_ahead)
    .bind(&window.tz)
    .fetch_one(pool)
    .await
}

/// One page of the never-reminded vehicles, by due date then vehicle id, and how many there are.
pub async fn page(
    pool: &PgPool,
    window: &Window,
    country: &CountryCode,
    page: Page,
) -> Result<(Vec<NeverReminded>, i64), sqlx::Error> {
    // The page first (the total rides along), then each page row's latest failure.
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "WITH {MISSED},
         p AS (SELECT missed.*, count(*) OVER () AS total FROM missed
               ORDER BY d, id_vehicle LIMIT $5 OFFSET $6)
         SELECT p.total, p.id_customer, p.id_vehicle, p.customer_name, p.phone, p.plate_number,
                p.d, f.event_id IS NOT NULL AS failed, f.error_code
         FROM p LEFT JOIN LATERAL (
             SELECT m.event_id, m.error_code FROM message_log m
             WHERE ARRAY[m.id_customer, m.id_vehicle] @> ARRAY[p.id_customer, p.id_vehicle]
               AND m.id_customer = p.id_customer AND m.id_vehicle = p.id_vehicle
               AND m.status = 'failed' AND m.at >= p.win_start AND m.at < p.win_end
             ORDER BY m.at DESC LIMIT 1) f ON true
         ORDER BY p.d, p.id_vehicle"
    )))
    .bind(window.from)
    .bind(window.to)
    .bind(window.days_ahead)
    .bind(&window.tz)
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(pool)
    .await?;
    let total = match rows.first() {
        Some(row) => row.total,
        None if page.offset > 0 => count(pool, window).await?,
        None => 0,
    };
    // Customers' phones are stored as people wrote them; consent is keyed by E.164 digits, so
    // each phone is normalised the way the producer does before it is looked up.
    let phones: Vec<Option<String>> = rows
        .iter()
        .map(|r| {
            PhoneNumber::parse(&r.phone, country)
                .ok()
                .map(|p| p.as_str().to_string())
        })
        .collect();
    let wanted: Vec<String> = phones.iter().flatten().cloned().collect();
    let opted_out: Vec<String> = if wanted.is_empty() {
        Vec::new()
    } else {
        sqlx::query_scalar("SELECT phone FROM consent WHERE opted_out AND phone = ANY($1)")
            .bind(&wanted)
            .fetch_all(pool)
            .await?
    };
    let out = rows
        .into_iter()
        .zip(phones)
        .map(|(r, phone)| {
            let reason = if phone.is_some_and(|p| opted_out.contains(&p)) {
                Reason::OptedOut
            } else if r.failed {
                Reason::Failed
            } else {
                Reason::NotAttempted
            };
            NeverReminded {
                id_customer: r.id_customer,
                id_vehicle: r.id_vehicle,
                customer_name: r.customer_name,
                plate_number: r.plate_number,
                next_maintenance_date: r.d,
                error_code: if reason == Reason::Failed {
                    r.error_code
                } else {
                    None
                },
                reason,
            }
        })
        .collect();
    Ok((out, total))
}
