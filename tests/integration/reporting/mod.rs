//! Management reporting against the real services: the never-reminded list and its reasons
//! (`never_reminded`), the monthly PDF read back with poppler, its figures equal to
//! `/statistics` for the month (`monthly`), and the retention prune leaving `/daily` and
//! `/statistics` unchanged for pruned days (`retention`).

mod monthly;
mod never_reminded;
mod retention;

use std::process::Command;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use reminder_harness::prelude::*;

pub fn midnight(tz: Tz, day: NaiveDate) -> DateTime<Utc> {
    tz.from_local_datetime(&day.and_hms_opt(0, 0, 0).unwrap())
        .earliest()
        .unwrap()
        .with_timezone(&Utc)
}

pub fn failed(customer: Uuid, vehicle: Uuid, at: &str, code: &str) -> Value {
    let reminder_id = Uuid::new_v4().to_string();
    json!({
        "specversion": "1.0",
        "id": reminder::domain::events::outcome_id("message.failed", &reminder_id),
        "source": "test/sender",
        "type": "message.failed",
        "time": at,
        "datacontenttype": "application/json",
        "data": {
            "reminder_id": reminder_id, "customer_id": customer, "vehicle_id": vehicle,
            "provider": "cloud_api", "error_code": code, "error": "Message undeliverable",
            "attempts": 1, "failed_at": at
        }
    })
}

pub async fn logged(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM message_log")
        .fetch_one(pool)
        .await
        .unwrap()
}

pub fn reminder_cli(
    env: &TestEnv,
    args: &[&str],
    extra: &[(&str, &str)],
) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_reminder"))
        .args(args)
        .env("REMINDER__DATABASE__URL", &env.settings.database.url)
        .envs(extra.iter().copied())
        .output()
        .expect("the reminder binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
