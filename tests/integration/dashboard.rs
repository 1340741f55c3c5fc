//! The dashboard in a real headless browser (Debian's Chromium): a workshop's month of
//! reminders is written through the tracker's write path, the API role serves the page, and the
//! rendered DOM must show the figures the data implies. Also writes a screenshot.
//!
//! `cargo test --test integration dashboard::a_screenshot -- --ignored` writes the README's
//! screenshot (`docs/dashboard.png`, or the path in `DASHBOARD_SCREENSHOT`).

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

// ---- a month of a workshop's reminders -------------------------------------------------------

const FIRST: &[&str] = &[
    "Budi", "Siti", "Agus", "Dewi", "Rudi", "Maya", "Joko", "Rina", "Hendra", "Putri", "Bambang",
    "Lina",
];
const LAST: &[&str] = &[
    "Santoso", "Rahayu", "Wijaya", "Lestari", "Hartono", "Kusuma", "Susilo", "Gunawan",
];
const MODELS: &[(&str, &str)] = &[
    ("Honda", "Vario 125"),
    ("Yamaha", "NMAX"),
    ("Toyota", "Avanza"),
    ("Honda", "Beat"),
    ("Suzuki", "Ertiga"),
    ("Daihatsu", "Xenia"),
    ("Mitsubishi", "Xpander"),
    ("Honda", "Scoopy"),
];
const REGIONS: &[&str] = &["B", "D", "L", "AB", "F", "N", "H", "E", "AG"];
/// A name the page must show as text, not run as markup.
pub const TRICKY_NAME: &str = "CV \"Maju Jaya\" <b>Fleet</b> & Co";
/// Vehicles at the end of the list are never reached: only failures.
const FAILURE_ONLY: usize = 3;

pub struct Pair {
    pub customer: Uuid,
    pub vehicle: Uuid,
    pub name: String,
    pub plate: String,
}

/// What the data implies the dashboard must show.
pub struct Sample {
    pub pairs: Vec<Pair>,
    pub outcomes: Vec<MessageOutcome>,
}

impl Sample {
    /// Customers with one or two vehicles, most reminded once to three times within the last
    /// four weeks, two well over the alert threshold (4), a few failures with the provider's
    /// reasons, some vehicles never reached, and one pair known only from its events.
    pub fn workshop(now: DateTime<Utc>) -> Sample {
        let mut pairs = Vec::new();
        for c in 0..36 {
            let customer = Uuid::new_v4();
            let name = format!(
                "{} {}",
                FIRST[c % FIRST.len()],
                LAST[(c * 5 + c / 8) % LAST.len()]
            );
            for v in 0..(1 + usize::from(c % 4 == 1)) {
                let n = pairs.len();
                pairs.push(Pair {
                    customer,
                    vehicle: Uuid::new_v4(),
                    name: name.clone(),
                    plate: format!(
                        "{} {} {}",
                        REGIONS[n % REGIONS.len()],
                        1000 + (n * 379 + v * 17) % 9000,
                        ["XY", "KM", "AB", "RT", "PQ", "JK"][n % 6]
                    ),
                });
            }
        }
        let last = pairs.len() - 1;
        pairs[last].name = TRICKY_NAME.to_string();
        let mut outcomes = Vec::new();
        let mut push = |pair: &Pair,
                        status: OutcomeStatus,
                        at: DateTime<Utc>,
                        error: Option<(&str, &str, i32)>| {
            let reminder_id = Uuid::new_v4().to_string();
            let (error_code, error_text, attempts) = match error {
                Some((code, text, attempts)) => {
                    (Some(code.to_string()), Some(text.to_string()), attempts)
                }
                None => (None, None, 1),
            };
            outcomes.push(MessageOutcome {
                event_id: reminder::domain::events::outcome_id(status.event_type(), &reminder_id),
                provider_message_id: (status == OutcomeStatus::Sent)
                    .then(|| format!("wamid.{reminder_id}")),
                reminder_id,
                customer_id: pair.customer,
                vehicle_id: pair.vehicle,
                status,
                provider: "cloud_api".into(),
                error_code,
                error: error_text,
                attempts,
                at,
                phone: None,
                customer_name: None,
                plate_number: None,
            });
        };
        for (v, pair) in pairs.iter().enumerate().take(pairs.len() - FAILURE_ONLY) {
            let sends = match v {
                0 => 7,
                1 => 6,
                _ => 1 + v % 3,
            };
            for k in 0..sends {
                let days = ((v * 7 + k * 5) % 28) as u64;
                let minutes = 1 + ((v * 37 + k * 11) % 600) as i64;
                let at =
                    now - chrono::Duration::days(days as i64) - chrono::Duration::minutes(minutes);
                push(pair, OutcomeStatus::Sent, at, None);
            }
        }
        let failures: &[(usize, u64, &str, &str, i32)] = &[
            (
                last,
                2,
                "131026",
                "Message undeliverable: the number is not on WhatsApp",
                1,
            ),
            (
                last - 1,
                5,
                "131026",
                "Message undeliverable: the number is not on WhatsApp",
                1,
            ),
            (
                last - 2,
                9,
                "100",
                "Invalid parameter: phone number is not valid",
                1,
            ),
            (
                last,
                16,
                "131026",
                "Message undeliverable: the number is not on WhatsApp",
                1,
            ),
            (5, 1, "http_503", "Service Unavailable", 5),
            (
                9,
                0,
                "timeout",
                "the provider did not answer within 10000 ms",
                5,
            ),
            (
                12,
                12,
                "131047",
                "Re-engagement message: more than 24 hours since the customer last replied",
                1,
            ),
        ];
        for &(v, days, code, text, attempts) in failures {
            let at =
                now - chrono::Duration::days(days as i64) - chrono::Duration::minutes(3 + v as i64);
            push(
                &pairs[v],
                OutcomeStatus::Failed,
                at,
                Some((code, text, attempts)),
            );
        }
        // A walk-in customer the master data does not know: the events carry the name.
        let walk_in = Pair {
            customer: Uuid::new_v4(),
            vehicle: Uuid::new_v4(),
            name: "Walk-in Eko Prasetyo".into(),
            plate: "B 7777 WI".into(),
        };
        for days in [3, 20] {
            push(
                &walk_in,
                OutcomeStatus::Sent,
                now - chrono::Duration::days(days) - chrono::Duration::minutes(5),
                None,
            );
        }
        for o in outcomes
            .iter_mut()
            .filter(|o| o.customer_id == walk_in.customer)
        {
            o.customer_name = Some(walk_in.name.clone());
            o.plate_number = Some(walk_in.plate.clone());
            o.phone = Some("6281299990000".into());
        }
        pairs.push(walk_in);
        Sample { pairs, outcomes }
    }

    /// Writes the master data (all pairs but the walk-in) and the outcomes through the
    /// tracker's write path.
    pub async fn load(&self, pool: &PgPool, today: NaiveDate) {
        let known = &self.pairs[..self.pairs.len() - 1];
        let mut customers: Vec<NewCustomer> = Vec::new();
        for (i, p) in known.iter().enumerate() {
            if customers.iter().any(|c| c.id == p.customer) {
                continue;
            }
            customers.push(NewCustomer {
                id: p.customer,
                name: p.name.clone(),
                phone: format!("0812{:08}", 10_000_000 + i * 7919),
            });
        }
        let vehicles: Vec<NewVehicle> = known
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let (brand, model) = MODELS[i % MODELS.len()];
                NewVehicle {
                    id: p.vehicle,
                    id_customer: p.customer,
                    plate_number: p.plate.clone(),
                    brand: Some(brand.into()),
                    model: Some(model.into()),
                    next_maintenance_date: today
                        .checked_add_days(Days::new(30 + (i as u64 * 11) % 150)),
                }
            })
            .collect();
        master_data::upsert_customers(pool, &customers)
            .await
            .expect("customers");
        master_data::upsert_vehicles(pool, &vehicles)
            .await
            .expect("vehicles");
        for batch in self.outcomes.chunks(40) {
            let applied = apply_batch(pool, batch).await.expect("the tracker's write");
            assert_eq!(applied.counted as usize, batch.len());
        }
    }

    fn sent(&self) -> impl Iterator<Item = &MessageOutcome> {
        self.outcomes
            .iter()
            .filter(|o| o.status == OutcomeStatus::Sent)
    }

    fn failed(&self) -> impl Iterator<Item = &MessageOutcome> {
        self.outcomes
            .iter()
            .filter(|o| o.status == OutcomeStatus::Failed)
    }

    fn frequencies(&self) -> HashMap<(Uuid, Uuid), usize> {
        let mut f = HashMap::new();
        for o in self.sent() {
            *f.entry((o.customer_id, o.vehicle_id)).or_default() += 1;
        }
        f
    }

    /// (sent, failed) per calendar day in the workshop's zone.
    fn per_day(&self, tz: Tz) -> BTreeMap<NaiveDate, (u64, u64)> {
        let mut days = BTreeMap::new();
        for o in &self.outcomes {
            let e: &mut (u64, u64) = days
                .entry(o.at.with_timezone(&tz).date_naive())
                .or_default();
            match o.status {
                OutcomeStatus::Sent => e.0 += 1,
                OutcomeStatus::Failed => e.1 += 1,
            }
        }
        days
    }

    fn pair(&self, vehicle: Uuid) -> &Pair {
        self.pairs
            .iter()
            .find(|p| p.vehicle == vehicle)
            .expect("known pair")
    }
}

// ---- the browser -----------------------------------------------------------------------------

/// Headless Chromium with a fresh profile (removed on drop).
pub struct Chromium {
    binary: PathBuf,
    profile: PathBuf,
}

impl Chromium {
    pub fn new() -> Chromium {
        let binary = find_chromium().unwrap_or_else(|| {
            panic!(
                "the dashboard tests need Chromium and found none: install it with \
                 `apt-get install -y chromium` (.ci/run does), or set CHROMIUM=/path/to/chromium"
            )
        });
        let profile =
            std::env::temp_dir().join(format!("reminder-chromium-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&profile).expect("a profile directory");
        Chromium { binary, profile }
    }

    async fn run(&self, extra: &[String], url: &str) -> std::process::Output {
        let mut command = tokio::process::Command::new(&self.binary);
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--lang=en-US",
                // Virtual time runs only while no fetch is pending: the budget is page time
                // after the data arrived, not a wall-clock wait.
                "--virtual-time-budget=10000",
            ])
            .arg(format!("--user-data-dir={}", self.profile.display()))
            .args(extra)
            .arg(url)
            .env("TZ", "UTC")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let output = tokio::time::timeout(Duration::from_secs(120), command.output())
            .await
            .expect("Chromium finished within 120 s")
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.binary.display()));
        assert!(
            output.status.success(),
            "Chromium failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// The DOM after the page's scripts ran.
    pub async fn dom(&self, url: &str) -> String {
        let output = self
            .run(
                &["--window-size=1280,2000".into(), "--dump-dom".into()],
                url,
            )
            .await;
        String::from_utf8(output.stdout).expect("the DOM is UTF-8")
    }

    pub async fn screenshot(&self, url: &str, path: &Path, width: u32, height: u32) {
        let _ = std::fs::remove_file(path);
        self.run(
            &[
                format!("--window-size={width},{height}"),
                format!("--screenshot={}", path.display()),
            ],
            url,
        )
        .await;
        let png = std::fs::read(path).expect("Chromium wrote the screenshot");
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{} is not a PNG",
            path.display()
        );
        assert!(
            png.len() > 20_000,
            "the screenshot is suspiciously small ({} bytes)",
            png.len()
        );
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn find_chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    let dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ]
    .iter()
    .flat_map(|name| dirs.iter().map(move |d| d.join(name)))
    .find(|p| p.is_file())
}

// ---- reading the DOM -------------------------------------------------------------------------

/// Every opening tag that contains `marker` (e.g. `class="top-row"`).
fn tags<'a>(dom: &'a str, marker: &str) -> Vec<&'a str> {
    dom.match_indices(marker)
        .filter_map(|(at, _)| {
            let start = dom[..=at].rfind('<')?;
            let end = at + dom[at..].find('>')?;
            // Inside a tag, not in text.
            (!dom[start..at].contains('>')).then_some(&dom[start..=end])
        })
        .collect()
}

fn tag<'a>(dom: &'a str, marker: &str) -> &'a str {
    let found = tags(dom, marker);
    assert_eq!(
        found.len(),
        1,
        "expected one tag with {marker}, found {found:?}"
    );
    found[0]
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let start = tag.find(&key)? + key.len();
    let len = tag[start..].find('"')?;
    Some(
        tag[start..start + len]
            .replace("&quot;", "\"")
            .replace("&amp;", "&"),
    )
}

/// The text right after the tag with `marker`, up to the next tag.
fn text_after(dom: &str, marker: &str) -> String {
    let t = tag(dom, marker);
    let at = dom.find(t).expect("the tag is in the DOM") + t.len();
    let end = dom[at..].find('<').map_or(dom.len(), |e| at + e);
    dom[at..end].trim().to_string()
}

/// The `<tr>` elements with `class`, each as its whole markup.
fn rows<'a>(dom: &'a str, class: &str) -> Vec<&'a str> {
    let marker = format!("<tr class=\"{class}\"");
    dom.match_indices(&marker)
        .map(|(at, _)| {
            let end = at + dom[at..].find("</tr>").expect("closed row") + 5;
            &dom[at..end]
        })
        .collect()
}

fn stat(dom: &str, name: &str) -> (String, String) {
    let marker = format!("data-stat=\"{name}\"");
    let value =
        attr(tag(dom, &marker), "data-value").unwrap_or_else(|| panic!("{name} has no value"));
    (value, text_after(dom, &marker))
}

// ---- tests -----------------------------------------------------------------------------------

async fn workshop_app(env: &TestEnv) -> (TestApp, Sample) {
    workshop_app_with(env, Sample::workshop(Utc::now())).await
}

async fn workshop_app_with(env: &TestEnv, sample: Sample) -> (TestApp, Sample) {
    let pool = env.pool().await;
    let tz: Tz = env.settings.producer.timezone.parse().expect("zone");
    sample
        .load(&pool, Utc::now().with_timezone(&tz).date_naive())
        .await;
    pool.close().await;
    (env.spawn(&[Role::Api]).await, sample)
}

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

fn stat_text(dom: &str, name: &str) -> String {
    text_after(dom, &format!("data-stat=\"{name}\""))
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
        4,
        "each section says why it is empty"
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
        .screenshot(&app.url("/?search=siti"), &path, 1280, 2980)
        .await;
    println!("wrote {}", path.display());
    app.stop().await;
}
