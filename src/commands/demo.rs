//! `reminder demo`: a sample fleet, one producer scan, the whole pipeline (sender with the `log`
//! provider, tracker, API) in this process, and the resulting statistics.
//!
//! The fleet has fixed ids, so running the demo again updates it instead of adding more; on the
//! same day the scan publishes the same reminder ids and nothing is sent twice.

use std::time::Duration;

use anyhow::Context as _;
use chrono::{Days, NaiveDate};
use clap::Args;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::configuration::{ProviderKind, Settings};
use crate::db::master_data::{self, NewCustomer, NewVehicle};
use crate::db::reports;
use crate::domain::events::maintenance_due_id;
use crate::domain::{CountryCode, PhoneNumber};
use crate::producer::{Producer, Trigger};
use crate::startup::{self, Application, Role};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Exit after printing the statistics instead of serving the API.
    #[arg(long)]
    pub exit: bool,
}

/// (name, phone, [(plate, brand, model, days from today or None)])
type DemoCustomer = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str, &'static str, Option<i64>)],
);

const FLEET: &[DemoCustomer] = &[
    (
        "Budi Santoso",
        "0812-3456-7890",
        &[("B 1234 XYZ", "Honda", "Vario 125", Some(0))],
    ),
    (
        "Siti Rahayu",
        "+62 813 1111 2222",
        &[("D 4321 ABC", "Yamaha", "NMAX", Some(1))],
    ),
    (
        "Agus Wijaya",
        "6281355556666",
        &[
            ("L 7788 KM", "Toyota", "Avanza", Some(3)),
            ("L 9911 KM", "Honda", "Beat", Some(2)),
        ],
    ),
    (
        "Dewi Lestari",
        "0857 2222 3333",
        &[("AB 5566 CD", "Suzuki", "Ertiga", Some(4))],
    ),
    (
        "Rudi Hartono",
        "0811-777-888-99",
        &[("F 1122 GH", "Daihatsu", "Xenia", Some(10))],
    ),
    (
        "Maya Sari",
        "082133334444",
        &[("N 3344 PQ", "Honda", "Scoopy", None)],
    ),
    (
        "Joko Susilo",
        "0878 9999 0000",
        &[("H 5678 JK", "Mitsubishi", "Xpander", Some(-1))],
    ),
    (
        "Rina Marlina",
        "+62 812 5555 6666",
        &[("B 2468 RM", "Toyota", "Innova", Some(2))],
    ),
    (
        "Hendra Gunawan",
        "0813-8888-1212",
        &[("D 1357 HG", "Honda", "PCX", Some(30))],
    ),
    (
        "Putri Ayu",
        "12",
        &[("B 9090 PA", "Yamaha", "Aerox", Some(1))],
    ),
    (
        "Bambang Pamungkas",
        "0819 3030 4040",
        &[("E 8080 BP", "Suzuki", "Satria", Some(0))],
    ),
    (
        "Lina Kusuma",
        "0856-7070-8080",
        &[("AG 6060 LK", "Honda", "CR-V", Some(5))],
    ),
];

fn demo_id(kind: &str, n: usize) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("reminder-demo/{kind}/{n}").as_bytes(),
    )
}

/// Inserts (or refreshes) the sample fleet with dates relative to `today`, and returns the
/// reminder ids a scan for `today` will produce.
pub async fn insert_fleet(
    pool: &sqlx::PgPool,
    today: NaiveDate,
    settings: &Settings,
) -> anyhow::Result<Vec<String>> {
    let country = CountryCode::parse(&settings.whatsapp.default_country_code)?;
    let p = &settings.producer;
    let first = today
        .checked_sub_days(Days::new(p.overdue_days as u64))
        .context("date")?;
    let last = today
        .checked_add_days(Days::new(p.days_ahead as u64))
        .context("date")?;
    let mut customers = Vec::new();
    let mut vehicles = Vec::new();
    let mut expected = Vec::new();
    let mut v = 0;
    for (c, (name, phone, fleet)) in FLEET.iter().enumerate() {
        let customer_id = demo_id("customer", c);
        customers.push(NewCustomer {
            id: customer_id,
            name: name.to_string(),
            phone: phone.to_string(),
        });
        for (plate, brand, model, days) in fleet.iter() {
            let id = demo_id("vehicle", v);
            v += 1;
            let date = days.and_then(|d| {
                if d >= 0 {
                    today.checked_add_days(Days::new(d as u64))
                } else {
                    today.checked_sub_days(Days::new(d.unsigned_abs()))
                }
            });
            if let Some(d) = date
                && d >= first
                && d <= last
                && PhoneNumber::parse(phone, &country).is_ok()
            {
                expected.push(maintenance_due_id(id, d, today));
            }
            vehicles.push(NewVehicle {
                id,
                id_customer: customer_id,
                plate_number: plate.to_string(),
                brand: Some(brand.to_string()),
                model: Some(model.to_string()),
                next_maintenance_date: date,
            });
        }
    }
    master_data::upsert_customers(pool, &customers).await?;
    master_data::upsert_vehicles(pool, &vehicles).await?;
    Ok(expected)
}

pub async fn run(mut settings: Settings, args: DemoArgs) -> anyhow::Result<()> {
    settings.whatsapp.provider = ProviderKind::Log;
    let shutdown = startup::shutdown_on_signals();
    let app =
        Application::build(settings.clone(), &[Role::Sender, Role::Tracker, Role::Api]).await?;
    let ctx = app.context().clone();
    let port = app.port();
    let running = tokio::spawn(app.run(shutdown.clone()));

    let producer = Producer::new(ctx.clone())?;
    let today = producer.today();
    let expected = insert_fleet(&ctx.pool, today, &settings).await?;
    println!(
        "demo fleet: {} customers, {} vehicles; {} due between {} and {}",
        FLEET.len(),
        FLEET.iter().map(|c| c.2.len()).sum::<usize>(),
        expected.len(),
        today,
        today + Days::new(settings.producer.days_ahead as u64)
    );
    let summary = producer
        .scan(today, Trigger::Manual, None, &shutdown)
        .await?;
    println!("{summary}");

    wait_until_recorded(&ctx.pool, &expected, &shutdown).await?;
    let stats = reports::statistics(&ctx.pool, None, (None, None)).await?;
    println!("statistics: {}", serde_json::to_string_pretty(&stats)?);

    if args.exit {
        shutdown.cancel();
    } else if let Some(port) = port {
        println!(
            "the API and dashboard are at http://127.0.0.1:{port}/ (statistics: http://127.0.0.1:{port}/whatsapp-report/statistics); Ctrl-C to stop"
        );
    }
    running.await.context("the demo's roles panicked")?
}

/// Waits until every expected reminder has its outcome in the message history.
async fn wait_until_recorded(
    pool: &sqlx::PgPool,
    reminder_ids: &[String],
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let recorded: i64 = sqlx::query_scalar(
            "SELECT count(DISTINCT reminder_id) FROM message_log WHERE reminder_id = ANY($1)",
        )
        .bind(reminder_ids)
        .fetch_one(pool)
        .await?;
        if recorded as usize >= reminder_ids.len() {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!(
                "only {recorded} of {} reminders were recorded within 60 s; is RabbitMQ up?",
                reminder_ids.len()
            );
        }
        tokio::select! {
            _ = shutdown.cancelled() => anyhow::bail!("interrupted"),
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}
