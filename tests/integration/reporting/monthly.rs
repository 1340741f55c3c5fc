//! The monthly management report as a PDF, from the API and from the command line.

use std::time::Duration;

use chrono::NaiveDate;
use chrono_tz::Tz;
use reminder::startup::Role;
use serde_json::Value;
use uuid::Uuid;

use crate::monthly_pdf::{assert_rasterises, numbers_in, page_count, scratch_dir, text_of};
use reminder_harness::prelude::*;

use super::{failed, logged, midnight, reminder_cli};

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
