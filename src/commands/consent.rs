//! `reminder consent list | opt-out PHONE | opt-in PHONE`: the opt-out list, and consent
//! changes recorded by hand (source `cli`, at the current time).

use chrono::Utc;
use clap::Subcommand;

use crate::configuration::Settings;
use crate::db::consent;
use crate::domain::consent::{ConsentChanged, ConsentSource};
use crate::domain::{CountryCode, PhoneNumber};

#[derive(Debug, Subcommand)]
pub enum ConsentCommand {
    /// The phones opted out now, newest first.
    List,
    /// Opt a phone out of reminders.
    OptOut {
        /// The phone number, in any common form.
        phone: String,
    },
    /// Opt a phone back in (later reminders only).
    OptIn {
        /// The phone number, in any common form.
        phone: String,
    },
}

pub async fn run(settings: Settings, command: ConsentCommand) -> anyhow::Result<()> {
    let pool = if settings.database.migrate_on_start {
        crate::db::migrate(&settings.database).await?
    } else {
        crate::db::pool(&settings.database)?
    };
    let code = &settings.whatsapp.default_country_code;
    let (raw, opted_out) = match command {
        ConsentCommand::List => {
            let (rows, total) = consent::opt_outs(&pool, code, i64::MAX, 0).await?;
            for r in &rows {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    r.phone,
                    r.at.to_rfc3339(),
                    r.source,
                    r.id_customer.map(|c| c.to_string()).unwrap_or_default(),
                    r.customer_name.as_deref().unwrap_or("")
                );
            }
            println!("{total} phone(s) opted out");
            return Ok(());
        }
        ConsentCommand::OptOut { phone } => (phone, true),
        ConsentCommand::OptIn { phone } => (phone, false),
    };
    let country = CountryCode::parse(code)?;
    let phone = PhoneNumber::parse(&raw, &country)
        .map_err(|e| anyhow::anyhow!("{raw:?} is not a usable phone number: {e}"))?;
    let change = ConsentChanged {
        phone: phone.clone(),
        opted_out,
        source: ConsentSource::Cli,
        at: Utc::now(),
    };
    let changed = consent::apply(&pool, std::slice::from_ref(&change)).await?;
    let what = if opted_out { "opted out" } else { "opted in" };
    if changed == 1 {
        println!("{} {what}", phone.as_str());
    } else {
        println!(
            "{} unchanged: a newer consent change is recorded",
            phone.as_str()
        );
    }
    Ok(())
}
