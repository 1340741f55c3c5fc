//! The tracker against the real broker and database: each event counted once whatever is
//! redelivered, batches that survive a crash between commit and ack, poison events isolated,
//! and the CLI's reset and delete.

mod commands;
mod counting;
mod isolation;
use std::process::Command;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use reminder::broker::delivery::with_raw_message;
use reminder::db::reports::{self, Page, ReportFilter};
use reminder::domain::{IncomingEvent, MessageOutcome};
use reminder::startup::Role;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use reminder_harness::prelude::*;

async fn sum_frequency(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT coalesce(sum(frequency), 0)::bigint FROM whatsapp_report")
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn logged(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM message_log")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Waits until the tracker has taken `deliveries` messages through its batches (counted,
/// duplicate or dead-lettered), read from its own batch-size histogram.
async fn processed(app: &TestApp, deliveries: u64) {
    wait_until(Duration::from_secs(20), || async {
        let metrics = app.ctx.metrics.render();
        let sum = metrics
            .lines()
            .find_map(|l| l.strip_prefix("reminder_tracker_batch_size_sum "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        sum as u64 >= deliveries
    })
    .await;
}

fn message_failed(reminder_id: &str, customer: Uuid, vehicle: Uuid, code: &str, at: &str) -> Value {
    json!({
        "specversion": "1.0",
        "id": reminder::domain::events::outcome_id("message.failed", reminder_id),
        "source": "test/sender",
        "type": "message.failed",
        "time": at,
        "data": {
            "reminder_id": reminder_id,
            "customer_id": customer,
            "vehicle_id": vehicle,
            "provider": "cloud_api",
            "error_code": code,
            "error": "Message undeliverable",
            "attempts": 1,
            "failed_at": at
        }
    })
}
