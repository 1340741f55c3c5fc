//! The CSV export (`GET /whatsapp-report/export.csv` and `reminder report export`): header,
//! RFC 4180 quoting, spreadsheet-formula defusing, filters and sort, and both paths agreeing.

use chrono::{Duration, Utc};
use reminder::commands::ReportCommand;
use reminder::db::master_data::{self, NewCustomer, NewVehicle};
use reminder::db::tracking::apply_batch;
use reminder::domain::{MessageOutcome, OutcomeStatus};
use reminder::startup::Role;
use serde_json::Value;
use uuid::Uuid;

use reminder_harness::prelude::*;

const HEADER: &str = "id,id_customer,id_vehicle,customer_name,customer_phone,plate_number,brand,model,next_maintenance_date,frequency,failed_count,last_message_date,created_at,updated_at,delivered,read,replies,opted_out\r\n";

/// A strict RFC 4180 reader: every record ends in CRLF, quotes double inside quoted fields.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut field) = (Vec::new(), Vec::new(), String::new());
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' => {
                assert!(
                    field.is_empty(),
                    "a quote inside an unquoted field: {field}"
                );
                quoted = true;
            }
            ',' => row.push(std::mem::take(&mut field)),
            '\r' => {
                assert_eq!(chars.next(), Some('\n'), "CR without LF");
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            '\n' => panic!("a bare LF ends a record"),
            _ => field.push(c),
        }
    }
    assert!(
        !quoted && field.is_empty() && row.is_empty(),
        "the last record ends in CRLF"
    );
    rows
}

struct Shop {
    tricky: (Uuid, Uuid),
    formula: (Uuid, Uuid),
    fleet: Uuid,
    fleet_vehicles: [Uuid; 2],
    walk_in: (Uuid, Uuid),
}

fn outcome(
    customer: Uuid,
    vehicle: Uuid,
    status: OutcomeStatus,
    minutes_ago: i64,
) -> MessageOutcome {
    let reminder_id = Uuid::new_v4().to_string();
    MessageOutcome {
        event_id: reminder::domain::events::outcome_id(status.event_type(), &reminder_id),
        provider_message_id: (status == OutcomeStatus::Sent)
            .then(|| format!("wamid.{reminder_id}")),
        reminder_id,
        customer_id: customer,
        vehicle_id: vehicle,
        status,
        provider: "cloud_api".into(),
        error_code: (status == OutcomeStatus::Failed).then(|| "131026".into()),
        error: (status == OutcomeStatus::Failed).then(|| "Message undeliverable".into()),
        attempts: 1,
        at: Utc::now() - Duration::minutes(minutes_ago),
        phone: None,
        customer_name: None,
        plate_number: None,
    }
}

async fn shop(pool: &sqlx::PgPool) -> Shop {
    let ids = || (Uuid::new_v4(), Uuid::new_v4());
    let s = Shop {
        tricky: ids(),
        formula: ids(),
        fleet: Uuid::new_v4(),
        fleet_vehicles: [Uuid::new_v4(), Uuid::new_v4()],
        walk_in: ids(),
    };
    master_data::upsert_customers(
        pool,
        &[
            NewCustomer {
                id: s.tricky.0,
                name: "Toko \"Maju\", Jaya".into(),
                phone: "+62 812 3456 7890".into(),
            },
            NewCustomer {
                id: s.formula.0,
                name: "=HYPERLINK(\"http://x\")".into(),
                phone: "0812-1111-2222".into(),
            },
            NewCustomer {
                id: s.fleet,
                name: "Bengkel Sejahtera\nCabang 2".into(),
                phone: "081233334444".into(),
            },
        ],
    )
    .await
    .unwrap();
    let vehicle = |id, customer, plate: &str, brand: Option<&str>| NewVehicle {
        id,
        id_customer: customer,
        plate_number: plate.into(),
        brand: brand.map(Into::into),
        model: Some("Avanza, 1.3 G".into()),
        next_maintenance_date: chrono::NaiveDate::from_ymd_opt(2027, 1, 15),
    };
    master_data::upsert_vehicles(
        pool,
        &[
            vehicle(s.tricky.1, s.tricky.0, "B 1234 XYZ", Some("Toyota")),
            vehicle(s.formula.1, s.formula.0, "-D 1 AB", None),
            vehicle(s.fleet_vehicles[0], s.fleet, "L 1 FL", Some("Toyota")),
            vehicle(s.fleet_vehicles[1], s.fleet, "L 2 FL", Some("Toyota")),
        ],
    )
    .await
    .unwrap();
    let mut outcomes = vec![
        outcome(s.tricky.0, s.tricky.1, OutcomeStatus::Sent, 50),
        outcome(s.formula.0, s.formula.1, OutcomeStatus::Sent, 40),
        outcome(s.formula.0, s.formula.1, OutcomeStatus::Sent, 30),
        outcome(s.formula.0, s.formula.1, OutcomeStatus::Failed, 35),
        outcome(s.fleet, s.fleet_vehicles[0], OutcomeStatus::Sent, 20),
        outcome(s.fleet, s.fleet_vehicles[0], OutcomeStatus::Sent, 19),
        outcome(s.fleet, s.fleet_vehicles[0], OutcomeStatus::Sent, 18),
        outcome(s.fleet, s.fleet_vehicles[1], OutcomeStatus::Sent, 10),
    ];
    let mut walk_in = outcome(s.walk_in.0, s.walk_in.1, OutcomeStatus::Sent, 5);
    walk_in.customer_name = Some("Eko, walk-in".into());
    walk_in.plate_number = Some("B 7777 WI".into());
    walk_in.phone = Some("6281299990000".into());
    outcomes.push(walk_in);
    apply_batch(pool, &outcomes).await.unwrap();
    sqlx::query(
        "INSERT INTO consent (phone, opted_out, source, at) VALUES ('6281299990000', true, 'cli', now())",
    )
    .execute(pool)
    .await
    .unwrap();
    s
}

async fn export(app: &TestApp, query: &str) -> (reqwest::StatusCode, String, String) {
    let r = app
        .get(&format!("/whatsapp-report/export.csv{query}"))
        .await;
    let status = r.status();
    let content_type = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, content_type, r.text().await.unwrap())
}

fn column(rows: &[Vec<String>], name: &str) -> Vec<String> {
    let i = rows[0].iter().position(|c| c == name).expect("column");
    rows[1..].iter().map(|r| r[i].clone()).collect()
}

#[tokio::test]
async fn the_csv_export_has_a_header_quotes_every_field_right_and_applies_the_filters() {
    let env = TestEnv::new();
    let pool = env.pool().await;
    let s = shop(&pool).await;
    let app = env.spawn(&[Role::Api]).await;

    let (status, content_type, body) = export(&app, "").await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "text/csv; charset=utf-8");
    assert!(body.starts_with(HEADER));
    // Quotes doubled, commas and newlines inside quotes, formulas defused, plain text bare.
    assert!(body.contains(",\"Toko \"\"Maju\"\", Jaya\",+62 812 3456 7890,B 1234 XYZ,Toyota,\"Avanza, 1.3 G\",2027-01-15,1,0,"));
    assert!(body.contains(",\"'=HYPERLINK(\"\"http://x\"\")\",0812-1111-2222,'-D 1 AB,,\"Avanza, 1.3 G\",2027-01-15,2,1,"));
    assert!(body.contains(",\"Bengkel Sejahtera\nCabang 2\",081233334444,L 1 FL,"));
    assert!(body.contains(",\"Eko, walk-in\",6281299990000,B 7777 WI,,,,1,0,"));

    // Every report once, the same values as the JSON detail view, newest first.
    let rows = parse_csv(&body);
    assert_eq!(rows[0].join(",") + "\r\n", HEADER);
    assert!(rows.iter().all(|r| r.len() == 18));
    assert_eq!(
        column(&rows, "opted_out")
            .iter()
            .filter(|v| *v == "true")
            .count(),
        1,
        "the walk-in's phone is opted out"
    );
    let detail: Value = app.get_json("/whatsapp-report/detail?limit=1000").await;
    let detail = detail.as_array().unwrap();
    assert_eq!(rows.len() - 1, detail.len());
    assert_eq!(detail.len(), 5);
    for (row, json) in rows[1..].iter().zip(detail) {
        for (i, name) in rows[0].iter().enumerate() {
            let expected = match &json[name] {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let shown = row[i]
                .strip_prefix('\'')
                .filter(|_| expected.starts_with(['=', '-']))
                .unwrap_or(&row[i]);
            // Times are the same instant, written `Z` in JSON and `+00:00` in the CSV.
            match (
                chrono::DateTime::parse_from_rfc3339(shown),
                chrono::DateTime::parse_from_rfc3339(&expected),
            ) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{name}"),
                _ => assert_eq!(shown, expected, "{name}"),
            }
        }
    }

    // Filters and sort, as in the list routes.
    let (_, _, fleet) = export(&app, &format!("?customer={}", s.fleet)).await;
    let fleet = parse_csv(&fleet);
    assert_eq!(column(&fleet, "id_customer"), vec![s.fleet.to_string(); 2]);
    let (_, _, one) = export(&app, &format!("?vehicle={}", s.fleet_vehicles[1])).await;
    assert_eq!(
        column(&parse_csv(&one), "id_vehicle"),
        vec![s.fleet_vehicles[1].to_string()]
    );
    let (_, _, none) = export(
        &app,
        &format!("?customer={}&vehicle={}", s.fleet, s.tricky.1),
    )
    .await;
    assert_eq!(none, HEADER, "no match: the header alone");
    let (_, _, by_frequency) = export(&app, "?sort=frequency").await;
    let frequencies: Vec<i32> = column(&parse_csv(&by_frequency), "frequency")
        .iter()
        .map(|f| f.parse().unwrap())
        .collect();
    assert_eq!(frequencies, vec![3, 2, 1, 1, 1]);

    // Bad filters are refused before any CSV starts.
    for bad in ["?customer=42", "?sort=name", "?vehicle="] {
        let (status, content_type, body) = export(&app, bad).await;
        assert_eq!(status, 400, "{bad}");
        assert!(content_type.starts_with("application/json"), "{bad}");
        assert!(body.contains("\"error\""), "{bad}: {body}");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_cli_export_writes_the_same_csv_as_the_http_export() {
    let env = TestEnv::new();
    let pool = env.pool().await;
    shop(&pool).await;
    let app = env.spawn(&[Role::Api]).await;
    let (_, _, http) = export(&app, "").await;

    let path =
        std::env::temp_dir().join(format!("reminder-export-{}.csv", Uuid::new_v4().simple()));
    reminder::commands::report::run(
        env.settings.clone(),
        ReportCommand::Export {
            output: Some(path.clone()),
        },
    )
    .await
    .expect("the export command succeeds");
    let file = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();

    assert_eq!(file, http);
    assert_eq!(parse_csv(&file).len(), 6);
    app.stop().await;
}

#[tokio::test]
async fn the_csv_export_needs_the_token_when_one_is_set() {
    let mut env = TestEnv::new();
    env.settings.http.api_token = reminder::configuration::Secret::new("export-token");
    let app = env.spawn(&[Role::Api]).await;

    let (status, _, _) = export(&app, "").await;
    assert_eq!(status, 401);
    let r = app
        .http
        .get(app.url("/whatsapp-report/export.csv"))
        .bearer_auth("export-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), HEADER);
    app.stop().await;
}
