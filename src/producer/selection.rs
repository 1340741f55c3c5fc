//! Which due vehicles a scan on a given day reminds, and why it skips the others: the one
//! selection `reminder produce` and `reminder preview` share, so what the preview shows is what
//! the scan publishes.
//!
//! Per page of due vehicles: the cadence (`producer.remind_days_before`) keeps the vehicles
//! whose due date is one of those days away; master data that cannot make a valid reminder is
//! skipped; then, with one statement each for the whole page, opted-out phones and (with
//! `producer.skip_after_reply`) customers who replied since the first reminder for this due date.

use std::collections::HashSet;

use chrono::{Days, NaiveDate};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::configuration::ProducerSettings;
use crate::db::consent;
use crate::db::master_data::DueVehicle;
use crate::domain::events::maintenance_due_id;
use crate::domain::{CountryCode, MaintenanceDue, PhoneNumber};

/// Why a due vehicle is not reminded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    OptedOut,
    InvalidPhone,
    InvalidData,
    AlreadyReplied,
}

impl SkipReason {
    /// The metric label and the preview's wording.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::OptedOut => "opted_out",
            SkipReason::InvalidPhone => "invalid_phone",
            SkipReason::InvalidData => "invalid_data",
            SkipReason::AlreadyReplied => "already_replied",
        }
    }
}

/// What the scan does with one due vehicle.
#[derive(Debug, Clone)]
pub enum Decision {
    Remind(Box<MaintenanceDue>),
    Skip(SkipReason),
}

/// Whether the cadence reminds a vehicle due on `due` on `run_date`.
pub fn on_cadence(settings: &ProducerSettings, run_date: NaiveDate, due: NaiveDate) -> bool {
    let before = (due - run_date).num_days();
    settings
        .remind_days_before
        .iter()
        .any(|d| i64::from(*d) == before)
}

/// The decisions for one page of due vehicles (those off the cadence are left out).
pub async fn select(
    conn: &mut PgConnection,
    settings: &ProducerSettings,
    country: &CountryCode,
    run_date: NaiveDate,
    page: Vec<DueVehicle>,
) -> Result<Vec<(DueVehicle, Decision)>, sqlx::Error> {
    let mut decided: Vec<(DueVehicle, Decision)> = page
        .into_iter()
        .filter(|v| on_cadence(settings, run_date, v.next_maintenance_date))
        .map(|v| {
            let d = to_event(&v, country);
            (v, d)
        })
        .collect();
    let phones: Vec<&str> = reminded(&decided).map(|d| d.phone.as_str()).collect();
    let opted_out = consent::opted_out_among(&mut *conn, &phones).await?;
    for (_, d) in decided.iter_mut() {
        if let Decision::Remind(due) = d
            && opted_out.contains(due.phone.as_str())
        {
            *d = Decision::Skip(SkipReason::OptedOut);
        }
    }
    if settings.skip_after_reply {
        let replied = replied_since_first_reminder(conn, settings, run_date, &decided).await?;
        for (v, d) in decided.iter_mut() {
            if matches!(d, Decision::Remind(_)) && replied.contains(&v.vehicle_id) {
                *d = Decision::Skip(SkipReason::AlreadyReplied);
            }
        }
    }
    Ok(decided)
}

fn reminded(decided: &[(DueVehicle, Decision)]) -> impl Iterator<Item = &MaintenanceDue> {
    decided.iter().filter_map(|(_, d)| match d {
        Decision::Remind(due) => Some(due.as_ref()),
        Decision::Skip(_) => None,
    })
}

/// The vehicles (among those to remind) whose customer replied after the first reminder sent
/// for the same due date. Earlier reminders for a due date are found by their ids, derived
/// from (vehicle, due date, scan date) for every earlier scan date that could have reminded it.
async fn replied_since_first_reminder(
    conn: &mut PgConnection,
    settings: &ProducerSettings,
    run_date: NaiveDate,
    decided: &[(DueVehicle, Decision)],
) -> Result<HashSet<Uuid>, sqlx::Error> {
    let mut ids = Vec::new();
    let mut vehicles = Vec::new();
    for due in reminded(decided) {
        // A due date is reminded from days_ahead before it to overdue_days after it.
        let first = due
            .due_date
            .checked_sub_days(Days::new(u64::from(settings.days_ahead)))
            .unwrap_or(due.due_date);
        let mut day = first;
        while day < run_date {
            ids.push(maintenance_due_id(due.vehicle_id, due.due_date, day));
            vehicles.push(due.vehicle_id);
            day = day.succ_opt().unwrap_or(run_date);
        }
    }
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let rows: Vec<Uuid> = sqlx::query_scalar(
        r#"
        SELECT c.vehicle
        FROM UNNEST($1::text[], $2::uuid[]) AS c(rid, vehicle)
        JOIN reminder_dispatch d ON d.reminder_id = c.rid AND d.status = 'sent'
        GROUP BY c.vehicle, d.id_customer
        HAVING EXISTS (
            SELECT 1 FROM replies r
            WHERE r.id_customer = d.id_customer AND r.at > min(d.outcome_at)
        )
        "#,
    )
    .bind(&ids)
    .bind(&vehicles)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().collect())
}

/// The event for one due vehicle, or the reason its master data cannot make a valid reminder.
fn to_event(v: &DueVehicle, country: &CountryCode) -> Decision {
    let phone = match PhoneNumber::parse(&v.phone, country) {
        Ok(p) => p,
        Err(_) => return Decision::Skip(SkipReason::InvalidPhone),
    };
    let name = v.customer_name.trim();
    let plate = v.plate_number.trim();
    if name.is_empty() || plate.is_empty() {
        return Decision::Skip(SkipReason::InvalidData);
    }
    let vehicle = [v.brand.as_deref(), v.model.as_deref()]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    Decision::Remind(Box::new(MaintenanceDue {
        customer_id: v.customer_id,
        vehicle_id: v.vehicle_id,
        customer_name: name.chars().take(200).collect(),
        phone,
        plate_number: plate.chars().take(200).collect(),
        vehicle: (!vehicle.is_empty()).then(|| vehicle.chars().take(200).collect()),
        due_date: v.next_maintenance_date,
        locale: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::configuration::Settings;

    #[test]
    fn the_cadence_keeps_only_the_listed_days() {
        let mut s = Settings::defaults().producer;
        s.remind_days_before = vec![3, 0];
        let today = NaiveDate::from_ymd_opt(2026, 12, 5).unwrap();
        let days = |n| today + Days::new(n);
        assert!(on_cadence(&s, today, days(3)));
        assert!(!on_cadence(&s, today, days(2)));
        assert!(!on_cadence(&s, today, days(1)));
        assert!(on_cadence(&s, today, today));
    }
}
