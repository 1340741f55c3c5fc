//! The dashboard in a real headless browser (Debian's Chromium): a workshop's month of
//! reminders is written through the tracker's write path, the API role serves the page, and the
//! rendered DOM must show the figures the data implies. Also writes a screenshot.
//!
//! `cargo test --test integration dashboard::a_screenshot -- --ignored` writes the README's
//! screenshot (`docs/dashboard.png`, or the path in `DASHBOARD_SCREENSHOT`).

mod browser;
mod hearing;
mod sample;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use chrono::{DateTime, Days, NaiveDate, Utc};
use chrono_tz::Tz;
use reminder::db::master_data::{self, NewCustomer, NewVehicle};
use reminder::db::tracking::apply_batch;
use reminder::domain::{MessageOutcome, OutcomeStatus};
use reminder::startup::Role;
use sqlx::PgPool;
use uuid::Uuid;

use reminder_harness::prelude::*;

use browser::*;
use hearing::*;
use sample::*;

// ---- tests -----------------------------------------------------------------------------------

#[tokio::test]
async fn the_dashboard_shows_the_months_reminders_in_a_real_browser() {
    let env = TestEnv::new();
    let (app, sample) = workshop_app(&env).await;
    let tz: Tz = env.settings.producer.timezone.parse().unwrap();
    let browser = Chromium::new();

    let today_before = Utc::now().with_timezone(&tz).date_naive();
    let dom = browser.dom(&app.url("/")).await;
    let today_after = Utc::now().with_timezone(&tz).date_naive();

    assert_eq!(
        attr(tag(&dom, "<body"), "data-state").as_deref(),
        Some("ready"),
        "{dom}"
    );
    // Headline figures.
    let frequencies = sample.frequencies();
    let sent = sample.sent().count();
    let failed = sample.failed().count();
    assert_eq!(
        stat(&dom, "total_messages"),
        (sent.to_string(), sent.to_string())
    );
    assert_eq!(
        stat(&dom, "total_failed"),
        (failed.to_string(), failed.to_string())
    );
    let customers: HashSet<Uuid> = frequencies.keys().map(|k| k.0).collect();
    assert_eq!(
        stat(&dom, "unique_customers").0,
        customers.len().to_string()
    );
    let max = *frequencies.values().max().unwrap();
    assert!(dom.contains(&format!("most for one vehicle: {max}")));

    // The chart: one group per day of the last 30, bars where there were messages.
    let days = tags(&dom, "class=\"day\"");
    assert_eq!(days.len(), 30);
    let per_day = sample.per_day(tz);
    // The last day is today in the workshop's zone (either side of midnight if it struck).
    let today: NaiveDate = attr(days[29], "data-date").unwrap().parse().unwrap();
    assert!(today == today_before || today == today_after);
    for day in days {
        let date: NaiveDate = attr(day, "data-date").unwrap().parse().unwrap();
        assert!(date <= today && (today - date).num_days() < 30);
        let (s, f) = per_day.get(&date).copied().unwrap_or_default();
        assert_eq!(
            attr(day, "data-sent").unwrap(),
            s.to_string(),
            "sent on {date}"
        );
        assert_eq!(
            attr(day, "data-failed").unwrap(),
            f.to_string(),
            "failed on {date}"
        );
    }
    let days_with_sent = per_day.values().filter(|(s, _)| *s > 0).count();
    assert_eq!(tags(&dom, "class=\"bar sent\"").len(), days_with_sent);
    let days_with_failed = per_day.values().filter(|(_, f)| *f > 0).count();
    assert_eq!(tags(&dom, "class=\"bar failed\"").len(), days_with_failed);
    assert_eq!(stat(&dom, "last_30_days").0, sent.to_string());

    // Reminded most often: the highest frequency first, with its customer's name.
    let top = rows(&dom, "top-row");
    assert_eq!(top.len(), 10);
    assert_eq!(attr(top[0], "data-frequency").unwrap(), max.to_string());
    let top_vehicle: Uuid = attr(top[0], "data-vehicle").unwrap().parse().unwrap();
    assert!(top[0].contains(&sample.pair(top_vehicle).name));
    assert!(top[0].contains(&sample.pair(top_vehicle).plate));

    // Over-reminded: exactly the pairs with more than 4 in the window.
    let over: HashSet<Uuid> = rows(&dom, "over-row")
        .iter()
        .map(|r| attr(r, "data-vehicle").unwrap().parse().unwrap())
        .collect();
    let expected: HashSet<Uuid> = frequencies
        .iter()
        .filter(|(_, n)| **n > 4)
        .map(|(k, _)| k.1)
        .collect();
    assert_eq!(over, expected);
    assert_eq!(over.len(), 2);

    // Recent failures: every one, with its code, its reason and who it was for, even for a
    // customer never reached (no report row: the name comes from the master data).
    let failure_rows = rows(&dom, "failure-row");
    assert_eq!(failure_rows.len(), failed);
    for f in sample.failed() {
        let row = failure_rows
            .iter()
            .find(|r| attr(r, "data-reminder").as_deref() == Some(f.reminder_id.as_str()))
            .unwrap_or_else(|| panic!("failure {} is listed", f.reminder_id));
        assert!(row.contains(f.error_code.as_deref().unwrap()));
        assert!(row.contains(f.error.as_deref().unwrap()), "{row}");
        assert!(row.contains(&sample.pair(f.vehicle_id).plate), "{row}");
    }
    // The funnel: sent, then what the provider reported of them, then the replies.
    let heard = hearing(&sample).2;
    for (step, n) in [
        ("sent", sent),
        ("delivered", heard.delivered),
        ("read", heard.read),
        ("replied", heard.replies.len()),
    ] {
        let marker = format!("data-funnel=\"{step}\"");
        assert_eq!(
            attr(tag(&dom, &marker), "data-value").as_deref(),
            Some(n.to_string().as_str()),
            "{step}"
        );
    }
    assert!(heard.read > 0 && heard.read < heard.delivered && heard.delivered < sent);
    // Per day, delivered and read of the messages sent that day add up to the same.
    let day_sum = |key: &str| -> usize {
        tags(&dom, "class=\"day\"")
            .iter()
            .map(|d| attr(d, key).unwrap().parse::<usize>().unwrap())
            .sum()
    };
    assert_eq!(day_sum("data-delivered"), heard.delivered);
    assert_eq!(day_sum("data-read"), heard.read);
    assert_eq!(day_sum("data-replies"), heard.replies.len());
    assert_eq!(tags(&dom, "class=\"line delivered\"").len(), 1);
    // Replies: each with its text and the plate of the vehicle whose reminder it answers.
    let reply_rows = rows(&dom, "reply-row");
    assert_eq!(reply_rows.len(), heard.replies.len());
    for reply in &heard.replies {
        let row = reply_rows
            .iter()
            .find(|r| attr(r, "data-reminder").as_deref() == Some(reply.reminder_id.as_str()))
            .unwrap_or_else(|| panic!("the reply to {} is listed", reply.reminder_id));
        assert!(row.contains(&reply.plate), "{row}");
        let shown = reply.text.replace('<', "&lt;").replace('>', "&gt;");
        assert!(row.contains(&shown), "{row}");
    }
    // Text from the database is shown as text, never run as markup.
    assert!(!dom.contains("<b>Fleet</b>"));
    assert!(dom.contains("CV \"Maju Jaya\" &lt;b&gt;Fleet&lt;/b&gt; &amp; Co"));

    // And a picture of it, to look at.
    let png = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-test.png");
    browser.screenshot(&app.url("/"), &png, 1280, 2300).await;
    app.stop().await;
}

#[tokio::test]
async fn the_dashboard_search_finds_customers_by_name_plate_phone_and_id() {
    let env = TestEnv::new();
    let (app, sample) = workshop_app(&env).await;
    let browser = Chromium::new();
    // A customer with two vehicles.
    let owner = &sample.pairs[1];
    assert_eq!(sample.pairs[2].customer, owner.customer);

    let dom = browser
        .dom(&app.url(&format!("/?search={}", owner.name.replace(' ', "+"))))
        .await;
    let found = rows(&dom, "search-row");
    assert!(
        found
            .iter()
            .any(|r| attr(r, "data-customer") == Some(owner.customer.to_string())),
        "{dom}"
    );
    assert!(found.iter().all(|r| r.contains(&owner.name)));

    let plate = sample.pairs[7].plate.replace(' ', "");
    let dom = browser.dom(&app.url(&format!("/?search={plate}"))).await;
    let found = rows(&dom, "search-row");
    assert_eq!(found.len(), 1, "{dom}");
    assert_eq!(
        attr(found[0], "data-vehicle"),
        Some(sample.pairs[7].vehicle.to_string())
    );

    // By id: every report of that customer and their latest messages, failures included.
    let failed_pair = &sample.pairs[5];
    let dom = browser
        .dom(&app.url(&format!("/?search={}", failed_pair.customer)))
        .await;
    assert!(!rows(&dom, "search-row").is_empty(), "{dom}");
    let history = rows(&dom, "history-row");
    let expected = sample
        .outcomes
        .iter()
        .filter(|o| o.customer_id == failed_pair.customer)
        .count();
    assert_eq!(history.len(), expected);
    assert!(history.iter().any(|r| r.contains("Service Unavailable")));

    let dom = browser.dom(&app.url("/?search=Nobody+Here")).await;
    assert!(rows(&dom, "search-row").is_empty());
    assert!(dom.contains("Nobody matches"));
    app.stop().await;
}

#[tokio::test]
async fn the_dashboard_asks_for_the_api_token_and_remembers_it() {
    let mut env = TestEnv::new();
    env.settings.http.api_token = reminder::configuration::Secret::new("s3cret-token");
    let (app, sample) = workshop_app(&env).await;
    let browser = Chromium::new();

    let dom = browser.dom(&app.url("/")).await;
    assert_eq!(
        attr(tag(&dom, "<body"), "data-state").as_deref(),
        Some("auth")
    );
    assert_eq!(
        attr(tag(&dom, "id=\"auth\""), "hidden"),
        None,
        "the token form shows"
    );
    assert!(
        attr(tag(&dom, "id=\"content\""), "hidden").is_some(),
        "the report hides"
    );
    assert_eq!(stat_text(&dom, "total_messages"), "–");

    let dom = browser.dom(&app.url("/#token=wrong")).await;
    assert_eq!(
        attr(tag(&dom, "<body"), "data-state").as_deref(),
        Some("auth")
    );
    assert!(dom.contains("did not accept the token"));

    let dom = browser.dom(&app.url("/#token=s3cret-token")).await;
    assert_eq!(
        attr(tag(&dom, "<body"), "data-state").as_deref(),
        Some("ready"),
        "{dom}"
    );
    assert_eq!(
        stat(&dom, "total_messages").0,
        sample.sent().count().to_string()
    );

    // The same browser profile, no token in the address: localStorage kept it.
    let dom = browser.dom(&app.url("/")).await;
    assert_eq!(
        attr(tag(&dom, "<body"), "data-state").as_deref(),
        Some("ready"),
        "{dom}"
    );
    assert_eq!(attr(tag(&dom, "id=\"forget-token\""), "hidden"), None);
    app.stop().await;
}

#[tokio::test]
async fn the_dashboard_of_an_empty_database_says_so_instead_of_failing() {
    let env = TestEnv::new();
    let app = env.spawn(&[Role::Api]).await;
    let browser = Chromium::new();

    let dom = browser.dom(&app.url("/")).await;

    assert_eq!(
        attr(tag(&dom, "<body"), "data-state").as_deref(),
        Some("ready"),
        "{dom}"
    );
    assert_eq!(stat(&dom, "total_messages"), ("0".into(), "0".into()));
    assert_eq!(stat_text(&dom, "last_message_date"), "none yet");
    assert_eq!(tags(&dom, "class=\"day\"").len(), 30);
    assert!(tags(&dom, "class=\"bar ").is_empty());
    assert!(dom.contains("No reminders in the last 30 days."));
    assert!(dom.contains("No reminder has been sent yet."));
    assert!(dom.contains("No failed reminders."));
    assert!(dom.contains("Nobody is over the threshold."));
    app.stop().await;
}

#[tokio::test]
async fn the_dashboard_explains_when_the_database_is_unreachable() {
    let env = TestEnv::new();
    let mut settings = env.settings.clone();
    // Nothing listens on port 1: every query fails as "unreachable" (503), like an outage.
    settings.database.url = "postgres://postgres@127.0.0.1:1/reminder".into();
    settings.database.migrate_on_start = false;
    settings.database.acquire_timeout_ms = 300;
    let app = env.spawn_with(settings, &[Role::Api]).await;
    let browser = Chromium::new();

    let dom = browser.dom(&app.url("/")).await;

    assert_eq!(
        attr(tag(&dom, "<body"), "data-state").as_deref(),
        Some("error"),
        "{dom}"
    );
    assert_eq!(
        attr(tag(&dom, "id=\"banner\""), "hidden"),
        None,
        "the banner shows"
    );
    assert!(dom.contains("The report is not available right now"));
    assert_eq!(
        tags(&dom, "class=\"error\"").len(),
        7,
        "each section (the funnel, the replies and the never-reminded panel too) says why it is empty"
    );
    app.stop().await;
}

/// Writes the README's screenshot: `cargo test --test integration dashboard::a_screenshot --
/// --ignored` (to `docs/dashboard.png`, or `DASHBOARD_SCREENSHOT`).
#[tokio::test]
#[ignore = "writes docs/dashboard.png; run on demand"]
async fn a_screenshot_of_the_dashboard_is_written_for_the_readme() {
    let env = TestEnv::new();
    let mut sample = Sample::workshop(Utc::now());
    // The tricky name is for the escaping test; the picture gets an ordinary one.
    let last = sample.pairs.len() - 2;
    sample.pairs[last].name = "CV Maju Jaya".into();
    let (app, _sample) = workshop_app_with(&env, sample).await;
    let path = std::env::var_os("DASHBOARD_SCREENSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/dashboard.png"));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("the screenshot's directory");
    }
    // With a search, to show that part too.
    Chromium::new()
        .screenshot(&app.url("/?search=siti"), &path, 1280, 3560)
        .await;
    println!("wrote {}", path.display());
    app.stop().await;
}
