//! Management reporting against the real services: the never-reminded list and its reasons,
//! the monthly PDF read back with poppler (its figures equal `/statistics` for the month), and
//! the retention prune leaving `/daily` and `/statistics` unchanged for pruned days.

use std::process::Command;
use std::time::Duration;

use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use reminder::db::master_data::{NewCustomer, NewVehicle, upsert_customers, upsert_vehicles};
use reminder::startup::Role;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::monthly_pdf::{assert_rasterises, numbers_in, page_count, scratch_dir, text_of};
use reminder_harness::prelude::*;

fn midnight(tz: Tz, day: NaiveDate) -> DateTime<Utc> {
    tz.from_local_datetime(&day.and_hms_opt(0, 0, 0).unwrap())
        .earliest()
        .unwrap()
        .with_timezone(&Utc)
}

fn failed(customer: Uuid, vehicle: Uuid, at: &str, code: &str) -> Value {
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

async fn logged(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM message_log")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Four vehicles due five days ago: reminded, failed with 131026, opted out, never published.
#[tokio::test]
async fn never_reminded_lists_the_failed_the_opted_out_and_the_unpublished_with_their_reasons() {
    let env = TestEnv::new();
    let app = env.spawn(&[Role::Tracker, Role::Api]).await;
    let pool = app.pool().clone();
    let tz: Tz = env.settings.producer.timezone.parse().unwrap();
    let today = Utc::now().with_timezone(&tz).date_naive();
    let due = today - Days::new(5);
    let ids: Vec<(Uuid, Uuid)> = (0..4).map(|_| (Uuid::new_v4(), Uuid::new_v4())).collect();
    let customers: Vec<NewCustomer> = ids
        .iter()
        .enumerate()
        .map(|(i, (c, _))| NewCustomer {
            id: *c,
            name: format!("Customer {i}"),
            // Written the way people do; consent holds E.164 digits.
            phone: format!("0812-3456-700{i}"),
        })
        .collect();
    let vehicles: Vec<NewVehicle> = ids
        .iter()
        .enumerate()
        .map(|(i, (c, v))| NewVehicle {
            id: *v,
            id_customer: *c,
            plate_number: format!("B {i}00 XY"),
            brand: None,
            model: None,
            next_maintenance_date: Some(due),
        })
        .collect();
    upsert_customers(&pool, &customers).await.unwrap();
    upsert_vehicles(&pool, &vehicles).await.unwrap();
    sqlx::query(
        "INSERT INTO consent (phone, opted_out, source, at) VALUES ($1, true, 'cli', now())",
    )
    .bind("6281234567002")
    .execute(&pool)
    .await
    .unwrap();
    let in_window = (midnight(tz, due - Days::new(2)) + chrono::Duration::hours(9)).to_rfc3339();
    let amqp = env.amqp().await;
    let (reminded, failing, opted, silent) = (ids[0], ids[1], ids[2], ids[3]);
    // The reminded vehicle also had a failure first: the later success is what counts.
    amqp.publish_event(&failed(reminded.0, reminded.1, &in_window, "131000"))
        .await;
    amqp.publish_event(&message_sent(
        &Uuid::new_v4().to_string(),
        reminded.0,
        reminded.1,
        &in_window,
    ))
    .await;
    amqp.publish_event(&failed(failing.0, failing.1, &in_window, "131026"))
        .await;
    // A success to the failing vehicle long before its window does not count.
    let early = (midnight(tz, due - Days::new(20)) + chrono::Duration::hours(9)).to_rfc3339();
    amqp.publish_event(&message_sent(
        &Uuid::new_v4().to_string(),
        failing.0,
        failing.1,
        &early,
    ))
    .await;
    wait_until(Duration::from_secs(10), || async {
        logged(&pool).await == 4
    })
    .await;

    let response = app.get("/whatsapp-report/never-reminded").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-total-count"], "3");
    let rows: Vec<Value> = response.json().await.unwrap();
    let mut expected = vec![
        (failing.1, "failed", Some("131026")),
        (opted.1, "opted_out", None),
        (silent.1, "not_attempted", None),
    ];
    expected.sort_by_key(|(v, _, _)| *v);
    let got: Vec<(Uuid, &str, Option<&str>)> = rows
        .iter()
        .map(|r| {
            (
                r["id_vehicle"].as_str().unwrap().parse().unwrap(),
                r["reason"].as_str().unwrap(),
                r["error_code"].as_str(),
            )
        })
        .collect();
    assert_eq!(got, expected, "{rows:#?}");
    assert!(
        rows.iter()
            .all(|r| r["next_maintenance_date"] == due.to_string())
    );
    let opted_row = rows.iter().find(|r| r["reason"] == "opted_out").unwrap();
    assert_eq!(opted_row["customer_name"], "Customer 2");
    assert_eq!(opted_row["plate_number"], "B 200 XY");

    // Paged like the other lists; a period before the due date holds nobody.
    let page = app
        .get("/whatsapp-report/never-reminded?limit=1&offset=2")
        .await;
    assert_eq!(page.headers()["x-total-count"], "3");
    let page: Vec<Value> = page.json().await.unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0]["id_vehicle"], expected[2].0.to_string());
    let before = (due - Days::new(1)).to_string();
    let none = app
        .get(&format!("/whatsapp-report/never-reminded?to={before}"))
        .await;
    assert_eq!(none.headers()["x-total-count"], "0");
    for bad in [
        "from=2026-13-01",
        "limit=0",
        "from=2026-12-02&to=2026-12-01",
        "offset=-1",
    ] {
        let r = app
            .get(&format!("/whatsapp-report/never-reminded?{bad}"))
            .await;
        assert_eq!(r.status(), 400, "{bad}");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["error"].is_string() && body["message"].is_string(),
            "{bad}"
        );
    }
    app.stop().await;
}

fn reminder_cli(env: &TestEnv, args: &[&str], extra: &[(&str, &str)]) -> (bool, String, String) {
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

/// The number printed right after `label` in the text (the figures table reads label, count).
fn figure_after(text: &str, label: &str) -> Option<String> {
    let at = text
        .find(&format!("\n{label}\n"))
        .or_else(|| text.find(label))?;
    numbers_in(&text[at + label.len() + 1..])
        .first()
        .map(|s| s.to_string())
}

#[tokio::test]
async fn the_monthly_pdf_shows_the_months_statistics_and_says_when_a_month_was_empty() {
    let env = TestEnv::new();
    let app = env.spawn(&[Role::Tracker, Role::Api]).await;
    let pool = app.pool().clone();
    let tz: Tz = env.settings.producer.timezone.parse().unwrap();
    let amqp = env.amqp().await;
    // October 2026: 7 sent over three days to three pairs, 3 failed; plus traffic on the last
    // evening of September and the first morning of November (workshop time), which it excludes.
    let pairs: Vec<(Uuid, Uuid)> = (0..3).map(|_| (Uuid::new_v4(), Uuid::new_v4())).collect();
    let at = |y, m, d, h| {
        (midnight(tz, NaiveDate::from_ymd_opt(y, m, d).unwrap()) + chrono::Duration::hours(h))
            .to_rfc3339()
    };
    let mut events = Vec::new();
    for (i, day) in [1u32, 1, 2, 15, 15, 15, 31].into_iter().enumerate() {
        let (c, v) = pairs[i % 3];
        events.push(message_sent(
            &Uuid::new_v4().to_string(),
            c,
            v,
            &at(2026, 10, day, 10),
        ));
    }
    for (day, code) in [(2u32, "131026"), (15, "131026"), (31, "131049")] {
        events.push(failed(pairs[0].0, pairs[0].1, &at(2026, 10, day, 11), code));
    }
    events.push(message_sent(
        &Uuid::new_v4().to_string(),
        pairs[1].0,
        pairs[1].1,
        &at(2026, 9, 30, 23),
    ));
    events.push(message_sent(
        &Uuid::new_v4().to_string(),
        pairs[2].0,
        pairs[2].1,
        &at(2026, 11, 1, 0),
    ));
    for e in &events {
        amqp.publish_event(e).await;
    }
    wait_until(Duration::from_secs(10), || async {
        logged(&pool).await == 12
    })
    .await;

    let stats = app
        .get_json("/whatsapp-report/statistics?from=2026-10-01&to=2026-10-31")
        .await;
    assert_eq!(stats["total_messages"], 7);
    assert_eq!(stats["total_failed"], 3);
    let response = app.get("/whatsapp-report/monthly.pdf?month=2026-10").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/pdf");
    let dir = scratch_dir(&format!("monthly-{}", env.id));
    let pdf = dir.join("report.pdf");
    std::fs::write(&pdf, response.bytes().await.unwrap()).unwrap();
    let text = text_of(&pdf);
    assert!(text.contains("October 2026"), "{text}");
    let expect = |label: &str, field: &str| {
        let want = stats
            .get(field)
            .and_then(Value::as_i64)
            .unwrap_or(0)
            .to_string();
        assert_eq!(
            figure_after(&text, label),
            Some(want),
            "{label} in:\n{text}"
        );
    };
    expect("Sent", "total_messages");
    expect("Failed", "total_failed");
    expect("Delivered", "total_delivered");
    expect("Read", "total_read");
    expect("Replies", "total_replies");
    expect("Opted out", "opted_out");
    expect("Unique customers", "unique_customers");
    expect("Unique vehicles", "unique_vehicles");
    assert!(text.contains("131026") && text.contains("131049"), "{text}");
    let pages = page_count(&pdf);
    assert_rasterises(&pdf, &dir, pages);

    // The command line writes the same report.
    let out = dir.join("cli.pdf");
    let (ok, stdout, stderr) = reminder_cli(
        &env,
        &[
            "report",
            "monthly",
            "--month",
            "2026-10",
            "--output",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert!(ok, "{stdout}{stderr}");
    let cli_text = text_of(&out);
    for label in ["Sent", "Failed", "Unique customers"] {
        assert_eq!(
            figure_after(&cli_text, label),
            figure_after(&text, label),
            "{label}"
        );
    }

    // An empty month is a valid one-page PDF that says so; a bad month is a JSON 400.
    let empty = app.get("/whatsapp-report/monthly.pdf?month=2026-01").await;
    assert_eq!(empty.status(), 200);
    let empty_dir = scratch_dir(&format!("monthly-empty-{}", env.id));
    let empty_pdf = empty_dir.join("report.pdf");
    std::fs::write(&empty_pdf, empty.bytes().await.unwrap()).unwrap();
    assert!(text_of(&empty_pdf).contains("No messages were sent in January 2026."));
    assert_eq!(page_count(&empty_pdf), 1);
    assert_rasterises(&empty_pdf, &empty_dir, 1);
    for bad in ["2026-13", "2026-1", "last", "2026-10-01"] {
        let r = app
            .get(&format!("/whatsapp-report/monthly.pdf?month={bad}"))
            .await;
        assert_eq!(r.status(), 400, "{bad}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid_month", "{bad}");
    }
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(empty_dir);
    app.stop().await;
}

/// Inserts `n` history rows of one pair at `at` (half sent, half failed) and as many finished
/// dispatch records, as the tracker and the sender would have left them.
async fn history_at(pool: &PgPool, at: DateTime<Utc>, n: i64) {
    let (c, v) = (Uuid::new_v4(), Uuid::new_v4());
    sqlx::query(
        "INSERT INTO message_log (event_id, reminder_id, id_customer, id_vehicle, status, provider,
                                  provider_message_id, error_code, attempts, at)
         SELECT 'e-' || r, r, $1, $2, CASE WHEN i % 2 = 0 THEN 'sent' ELSE 'failed' END, 'log',
                CASE WHEN i % 2 = 0 THEN 'wamid.' || r END, CASE WHEN i % 2 = 1 THEN '131026' END,
                1, $3
         FROM (SELECT i, gen_random_uuid()::text AS r FROM generate_series(1, $4) i) s",
    )
    .bind(c)
    .bind(v)
    .bind(at)
    .bind(n)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO reminder_dispatch (reminder_id, id_customer, id_vehicle, phone, status,
                                        provider, outcome_at, created_at, updated_at)
         SELECT gen_random_uuid()::text, $1, $2, '6281234567890', 'sent', 'log', $3, $3, $3
         FROM generate_series(1, $4)",
    )
    .bind(c)
    .bind(v)
    .bind(at)
    .bind(n)
    .execute(pool)
    .await
    .unwrap();
}

async fn count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_prune_removes_exactly_the_history_past_retention_and_keeps_the_daily_figures() {
    let env = TestEnv::new();
    let pool = env.pool().await;
    let now = Utc::now();
    history_at(&pool, now - chrono::Duration::days(420), 40).await;
    history_at(&pool, now - chrono::Duration::days(401), 30).await;
    history_at(&pool, now - chrono::Duration::days(300), 20).await;
    history_at(&pool, now - chrono::Duration::days(2), 10).await;
    // A dispatch still retrying is live work, however old.
    sqlx::query(
        "INSERT INTO reminder_dispatch (reminder_id, id_customer, id_vehicle, phone, status,
                                        provider, created_at, updated_at)
         VALUES ('live', gen_random_uuid(), gen_random_uuid(), '6281234567890', 'retrying', 'log',
                 now() - interval '500 days', now() - interval '500 days')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let app = env.spawn(&[Role::Api]).await;
    let tz: Tz = env.settings.producer.timezone.parse().unwrap();
    let today = now.with_timezone(&tz).date_naive();
    let ranges = [
        (today - Days::new(430), today - Days::new(390)),
        (today - Days::new(430), today),
        (today - Days::new(420), today - Days::new(420)),
    ];
    let mut before = Vec::new();
    for (from, to) in ranges {
        before.push(
            app.get_json(&format!("/whatsapp-report/statistics?from={from}&to={to}"))
                .await,
        );
        before.push(
            app.get_json(&format!("/whatsapp-report/daily?from={from}&to={to}"))
                .await,
        );
    }
    assert_eq!(before[0]["total_messages"], 35);
    assert_eq!(before[0]["total_failed"], 35);

    // A dry run prints what would go and deletes nothing.
    let (ok, stdout, stderr) = reminder_cli(
        &env,
        &["history", "prune", "--older-than-days", "365", "--dry-run"],
        &[],
    );
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains("would delete") && stdout.contains("message_log: 70"),
        "{stdout}"
    );
    assert!(stdout.contains("reminder_dispatch: 70"), "{stdout}");
    assert_eq!(count(&pool, "message_log").await, 100);
    assert_eq!(count(&pool, "reminder_dispatch").await, 101);

    // The configured retention prunes exactly the rows older than 365 days.
    let (ok, stdout, stderr) = reminder_cli(
        &env,
        &["history", "prune"],
        &[("REMINDER__RETENTION__HISTORY_DAYS", "365")],
    );
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains("deleted") && stdout.contains("message_log: 70"),
        "{stdout}"
    );
    assert!(stdout.contains("reminder_dispatch: 70"), "{stdout}");
    assert_eq!(count(&pool, "message_log").await, 30);
    let old: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM message_log WHERE at < now() - interval '365 days'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(old, 0);
    assert_eq!(
        count(&pool, "reminder_dispatch").await,
        31,
        "the retrying one stays"
    );

    let mut after = Vec::new();
    for (from, to) in ranges {
        after.push(
            app.get_json(&format!("/whatsapp-report/statistics?from={from}&to={to}"))
                .await,
        );
        after.push(
            app.get_json(&format!("/whatsapp-report/daily?from={from}&to={to}"))
                .await,
        );
    }
    assert_eq!(before, after);

    // The message list counts only what it can still list.
    for query in ["limit=1000", "limit=1000&status=failed"] {
        let r = app.get(&format!("/whatsapp-report/messages?{query}")).await;
        let total: i64 = r.headers()["x-total-count"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let listed = r.json::<Value>().await.unwrap().as_array().unwrap().len() as i64;
        assert_eq!(total, listed, "{query}");
    }
    let r = app.get("/whatsapp-report/messages?limit=1").await;
    assert_eq!(r.headers()["x-total-count"], "30");

    // Retention off and no --older-than-days: nothing to do, said plainly.
    let (ok, _, stderr) = reminder_cli(&env, &["history", "prune"], &[]);
    assert!(!ok && stderr.contains("retention.history_days"), "{stderr}");
    app.stop().await;
}
