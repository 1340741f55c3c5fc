//! `reminder preview [--date D] [--limit N]`: what a scan on day D would send and what it would
//! skip, and why, through the scan's own selection. It reads only: nothing is written,
//! published or sent, and no broker is needed.

use anyhow::Context as _;
use chrono::{Days, NaiveDate, Utc};
use clap::Args;

use crate::configuration::{ProviderKind, Settings, locale_section};
use crate::db::master_data::{self, DueVehicle};
use crate::domain::message_template::{MessageVars, format_date};
use crate::domain::{CountryCode, MaintenanceDue, MessageTemplate, mask_phone};
use crate::producer::selection::{self, Decision};

/// Vehicles read per statement, as the scan does.
const PAGE: i64 = 20_000;

#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// Preview the scan of this date (YYYY-MM-DD); default today in producer.timezone.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub date: Option<NaiveDate>,
    /// Print at most this many vehicles of each list (the counts are always complete).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

pub async fn run(settings: Settings, args: PreviewArgs) -> anyhow::Result<()> {
    let tz = settings.producer.tz()?;
    let date = args
        .date
        .unwrap_or_else(|| Utc::now().with_timezone(&tz).date_naive());
    let p = &settings.producer;
    let from = date
        .checked_sub_days(Days::new(u64::from(p.overdue_days)))
        .context("date out of range")?;
    let to = date
        .checked_add_days(Days::new(u64::from(p.days_ahead)))
        .context("date out of range")?;
    let country = CountryCode::parse(&settings.whatsapp.default_country_code)?;
    let pool = crate::db::pool(&settings.database)?;
    let mut conn = pool.acquire().await.context("connecting to the database")?;
    let limit = args.limit.unwrap_or(usize::MAX);
    let mut reminded = 0usize;
    let mut skipped: Vec<(DueVehicle, &'static str)> = Vec::new();
    let mut after = None;
    println!("a scan on {date} would remind:");
    loop {
        let page = master_data::due_vehicles_page(&mut conn, from, to, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some((last.next_maintenance_date, last.vehicle_id));
        let full = page.len() as i64 == PAGE;
        for (vehicle, decision) in selection::select(&mut conn, p, &country, date, page).await? {
            match decision {
                Decision::Remind(due) => {
                    reminded += 1;
                    if reminded <= limit {
                        println!("  {}", describe(&settings, &due));
                    }
                }
                Decision::Skip(reason) => skipped.push((vehicle, reason.as_str())),
            }
        }
        if !full {
            break;
        }
    }
    println!("{reminded} reminder(s)");
    println!("it would skip:");
    for (v, reason) in skipped.iter().take(limit) {
        println!(
            "  {} | {} | {} | due {} | {}",
            v.customer_name.trim(),
            mask_phone(v.phone.trim()),
            v.plate_number.trim(),
            v.next_maintenance_date,
            reason.replace('_', " ")
        );
    }
    println!("{} skipped", skipped.len());
    // Closing waits for every connection to come back, this one included.
    drop(conn);
    pool.close().await;
    Ok(())
}

/// One reminder as the sender would send it: template and parameters, or the rendered text.
fn describe(settings: &Settings, due: &MaintenanceDue) -> String {
    let w = &settings.whatsapp;
    let locale = due.locale.as_deref().unwrap_or(&w.default_locale);
    let section = locale_section(&w.locales, locale);
    let date = format_date(due.due_date, locale);
    let template_name = section
        .and_then(|s| s.template_name.as_deref())
        .unwrap_or(&w.cloud_api.template_name);
    let message = if w.provider == ProviderKind::CloudApi && !template_name.trim().is_empty() {
        let language = section
            .and_then(|s| s.template_language.as_deref())
            .unwrap_or(&w.cloud_api.template_language);
        format!(
            "template {template_name} ({language}) [{}, {}, {date}]",
            due.customer_name, due.plate_number
        )
    } else {
        let text = section
            .and_then(|s| s.message_template.as_deref())
            .unwrap_or(&w.message_template);
        let rendered = MessageTemplate::parse(text)
            .map(|t| {
                t.render(&MessageVars {
                    customer_name: &due.customer_name,
                    plate_number: &due.plate_number,
                    vehicle: due.vehicle.as_deref(),
                    due_date: due.due_date,
                    locale,
                })
            })
            .unwrap_or_default();
        format!("text {rendered:?}")
    };
    format!(
        "{} | {} | {} | due {} | locale {locale} | {message}",
        due.customer_name,
        due.phone.masked(),
        due.plate_number,
        due.due_date
    )
}
