//! The `consent` table: one row per phone number (E.164 digits) holding its latest consent
//! change. Changes apply in `at` order, so a late, older change never undoes a newer one.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::consent::ConsentChanged;

/// Records the changes; per phone only the newest counts, and only if it is newer than the one
/// recorded. Returns how many rows changed.
pub async fn apply(pool: &PgPool, changes: &[ConsentChanged]) -> Result<u64, sqlx::Error> {
    // One row per phone in the statement: an upsert may not touch a row twice.
    let mut newest: HashMap<&str, &ConsentChanged> = HashMap::new();
    for c in changes {
        let slot = newest.entry(c.phone.as_str()).or_insert(c);
        if c.at > slot.at {
            *slot = c;
        }
    }
    if newest.is_empty() {
        return Ok(0);
    }
    let mut rows: Vec<&ConsentChanged> = newest.into_values().collect();
    // A fixed order keeps two concurrent batches from deadlocking on the same phones.
    rows.sort_by(|a, b| a.phone.as_str().cmp(b.phone.as_str()));
    let done = sqlx::query(
        r#"
        INSERT INTO consent AS c (phone, opted_out, source, at)
        SELECT * FROM UNNEST($1::text[], $2::bool[], $3::text[], $4::timestamptz[])
        ON CONFLICT (phone) DO UPDATE SET
            opted_out = excluded.opted_out, source = excluded.source, at = excluded.at,
            updated_at = now()
        WHERE c.at < excluded.at
        "#,
    )
    .bind(rows.iter().map(|c| c.phone.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|c| c.opted_out).collect::<Vec<_>>())
    .bind(rows.iter().map(|c| c.source.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|c| c.at).collect::<Vec<_>>())
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Whether the phone (E.164 digits) is opted out now.
pub async fn is_opted_out(pool: &PgPool, phone: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM consent WHERE phone = $1 AND opted_out)")
        .bind(phone)
        .fetch_one(pool)
        .await
}

/// Which of these phones (E.164 digits) are opted out now.
pub async fn opted_out_among<'e>(
    conn: impl sqlx::PgExecutor<'e>,
    phones: &[&str],
) -> Result<HashSet<String>, sqlx::Error> {
    if phones.is_empty() {
        return Ok(HashSet::new());
    }
    let rows: Vec<String> =
        sqlx::query_scalar("SELECT phone FROM consent WHERE opted_out AND phone = ANY($1)")
            .bind(phones)
            .fetch_all(conn)
            .await?;
    Ok(rows.into_iter().collect())
}

/// A phone opted out now, with the customer who has it (when one does).
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct OptOut {
    /// E.164 digits.
    pub phone: String,
    pub id_customer: Option<Uuid>,
    pub customer_name: Option<String>,
    /// keyword, user_preferences, provider_error, upstream or cli.
    pub source: String,
    /// When the phone opted out.
    pub at: DateTime<Utc>,
}

/// The phones opted out now, newest first, and how many there are in all.
pub async fn opt_outs(
    pool: &PgPool,
    country_code: &str,
    limit: i64,
    offset: i64,
) -> Result<(Vec<OptOut>, i64), sqlx::Error> {
    // The page is cut first; then each phone's customer is found through the phone the sender
    // last used for them (normalised), failing that through a master-data phone that
    // normalises to it (an index on the normalised form).
    let rows: Vec<OptOut> = sqlx::query_as(
        r#"
        SELECT c.phone, cu.id AS id_customer, cu.name AS customer_name, c.source, c.at
        FROM (SELECT phone, source, at FROM consent WHERE opted_out
              ORDER BY at DESC, phone LIMIT $1 OFFSET $2) c
        LEFT JOIN LATERAL (
            SELECT id_customer FROM reminder_dispatch r WHERE r.phone = c.phone
            ORDER BY r.created_at DESC LIMIT 1
        ) d ON true
        LEFT JOIN LATERAL (
            SELECT m.id FROM customers m
            WHERE d.id_customer IS NULL
              AND regexp_replace(m.phone, '[^0-9]', '', 'g')
                  IN (c.phone, '0' || substr(c.phone, length($3) + 1))
            LIMIT 1
        ) byphone ON true
        LEFT JOIN customers cu ON cu.id = coalesce(d.id_customer, byphone.id)
        ORDER BY c.at DESC, c.phone
        "#,
    )
    .bind(limit)
    .bind(offset)
    .bind(country_code)
    .fetch_all(pool)
    .await?;
    let total = count_opted_out(pool).await?;
    Ok((rows, total))
}

/// How many phones are opted out now.
pub async fn count_opted_out(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM consent WHERE opted_out")
        .fetch_one(pool)
        .await
}
