//! Reads of the workshop's master data (customers and vehicles) for the producer, and the
//! writes the demo and tests use to fill it.

use chrono::NaiveDate;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// A vehicle due for maintenance, joined with its owner.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueVehicle {
    pub vehicle_id: Uuid,
    pub customer_id: Uuid,
    pub plate_number: String,
    pub brand: Option<String>,
    pub model: Option<String>,
    pub next_maintenance_date: NaiveDate,
    pub customer_name: String,
    pub phone: String,
}

/// One page of the vehicles due between `from` and `to` (inclusive), in (due date, vehicle id)
/// order, starting after `after`. The producer reads the fleet page by page rather than in one
/// statement held open while it publishes: each statement is short, no snapshot stays open for
/// the whole scan, and a slow broker does not show up as a slow query.
pub async fn due_vehicles_page(
    conn: &mut PgConnection,
    from: NaiveDate,
    to: NaiveDate,
    after: Option<(NaiveDate, Uuid)>,
    limit: i64,
) -> Result<Vec<DueVehicle>, sqlx::Error> {
    // The first page starts before the window, so every page is the same index range query
    // (an `OR` for "no start" would keep the planner from using the row comparison).
    let (after_date, after_id) = after.unwrap_or((from - chrono::Days::new(1), Uuid::nil()));
    sqlx::query_as(
        "SELECT v.id AS vehicle_id, v.id_customer AS customer_id, v.plate_number, v.brand,
                v.model, v.next_maintenance_date, c.name AS customer_name, c.phone
         FROM vehicles v JOIN customers c ON c.id = v.id_customer
         WHERE v.next_maintenance_date BETWEEN $1 AND $2
           AND (v.next_maintenance_date, v.id) > ($3, $4)
         ORDER BY v.next_maintenance_date, v.id
         LIMIT $5",
    )
    .bind(from)
    .bind(to)
    .bind(after_date)
    .bind(after_id)
    .bind(limit)
    .fetch_all(conn)
    .await
}

#[derive(Debug, Clone)]
pub struct NewCustomer {
    pub id: Uuid,
    pub name: String,
    pub phone: String,
}

#[derive(Debug, Clone)]
pub struct NewVehicle {
    pub id: Uuid,
    pub id_customer: Uuid,
    pub plate_number: String,
    pub brand: Option<String>,
    pub model: Option<String>,
    pub next_maintenance_date: Option<NaiveDate>,
}

pub async fn upsert_customers(pool: &PgPool, customers: &[NewCustomer]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO customers (id, name, phone)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[])
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, phone = excluded.phone, updated_at = now()",
    )
    .bind(customers.iter().map(|c| c.id).collect::<Vec<_>>())
    .bind(customers.iter().map(|c| c.name.clone()).collect::<Vec<_>>())
    .bind(customers.iter().map(|c| c.phone.clone()).collect::<Vec<_>>())
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn upsert_vehicles(pool: &PgPool, vehicles: &[NewVehicle]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO vehicles (id, id_customer, plate_number, brand, model, next_maintenance_date)
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::date[])
         ON CONFLICT (id) DO UPDATE SET id_customer = excluded.id_customer,
             plate_number = excluded.plate_number, brand = excluded.brand, model = excluded.model,
             next_maintenance_date = excluded.next_maintenance_date, updated_at = now()",
    )
    .bind(vehicles.iter().map(|v| v.id).collect::<Vec<_>>())
    .bind(vehicles.iter().map(|v| v.id_customer).collect::<Vec<_>>())
    .bind(vehicles.iter().map(|v| v.plate_number.clone()).collect::<Vec<_>>())
    .bind(vehicles.iter().map(|v| v.brand.clone()).collect::<Vec<_>>())
    .bind(vehicles.iter().map(|v| v.model.clone()).collect::<Vec<_>>())
    .bind(vehicles.iter().map(|v| v.next_maintenance_date).collect::<Vec<_>>())
    .execute(pool)
    .await?;
    Ok(())
}
