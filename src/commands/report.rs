//! `reminder report delete | reset-frequency | export | monthly`: the writes to the report, kept
//! off the read-only HTTP API, the CSV export and the monthly PDF report. Each prints what it did.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use futures::StreamExt;
use uuid::Uuid;

use crate::configuration::Settings;
use crate::db::reports::{self, ReportFilter, export};
use crate::reporting::monthly;

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Delete one report row (its message history stays).
    Delete {
        /// The report's id.
        report_id: Uuid,
    },
    /// Set frequency to 0 on matching reports (all when no filter), keeping the rows, their
    /// last message date and the message history.
    ResetFrequency {
        /// Only this customer's reports.
        #[arg(long, value_name = "ID")]
        customer: Option<Uuid>,
        /// Only this vehicle's reports.
        #[arg(long, value_name = "ID")]
        vehicle: Option<Uuid>,
    },
    /// Write the detail view as CSV, streamed (default: to stdout).
    Export {
        /// Write to this file instead of stdout.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Write the monthly management report as PDF.
    Monthly {
        /// The month, YYYY-MM (default: the previous month in producer.timezone).
        #[arg(long, value_name = "YYYY-MM", value_parser = crate::reporting::monthly::parse_month)]
        month: Option<chrono::NaiveDate>,
        /// The PDF file to write.
        #[arg(long, value_name = "FILE")]
        output: PathBuf,
    },
}

pub async fn run(settings: Settings, command: ReportCommand) -> anyhow::Result<()> {
    let pool = if settings.database.migrate_on_start {
        crate::db::migrate(&settings.database).await?
    } else {
        crate::db::pool(&settings.database)?
    };
    match command {
        ReportCommand::Delete { report_id } => {
            let deleted = reports::delete(&pool, report_id)
                .await?
                .with_context(|| format!("no report with id {report_id}"))?;
            println!(
                "deleted report {} (customer {}, vehicle {}, frequency {}, last message {}); its message history is kept",
                deleted.id,
                deleted.id_customer,
                deleted.id_vehicle,
                deleted.frequency,
                deleted.last_message_date.to_rfc3339()
            );
        }
        ReportCommand::ResetFrequency { customer, vehicle } => {
            let (rows, cleared) = reports::reset_frequency(&pool, customer, vehicle).await?;
            let scope = match (customer, vehicle) {
                (None, None) => "all reports".to_string(),
                (Some(c), None) => format!("customer {c}"),
                (None, Some(v)) => format!("vehicle {v}"),
                (Some(c), Some(v)) => format!("customer {c}, vehicle {v}"),
            };
            println!(
                "reset frequency to 0 on {rows} report(s) of {scope} ({cleared} message(s) cleared from the counts; message history kept)"
            );
        }
        ReportCommand::Export { output } => {
            let mut out: Box<dyn Write> = match &output {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("cannot create {}", path.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            out.write_all(export::csv_header().as_bytes())?;
            let mut rows = export::detail_stream(&pool, ReportFilter::default());
            let mut n = 0u64;
            while let Some(row) = rows.next().await {
                out.write_all(export::csv_row(&row?).as_bytes())?;
                n += 1;
            }
            out.flush()?;
            if let Some(path) = output {
                println!("exported {n} report(s) to {}", path.display());
            }
        }
        ReportCommand::Monthly { month, output } => {
            let tz = settings.producer.tz()?;
            let first = month.unwrap_or_else(|| monthly::previous_month(tz, chrono::Utc::now()));
            let bytes = monthly::pdf(&pool, tz, settings.producer.days_ahead, first).await?;
            std::fs::write(&output, &bytes)
                .with_context(|| format!("cannot write {}", output.display()))?;
            println!(
                "wrote the report of {} to {} ({} bytes)",
                first.format("%Y-%m"),
                output.display(),
                bytes.len()
            );
        }
    }
    pool.close().await;
    Ok(())
}
