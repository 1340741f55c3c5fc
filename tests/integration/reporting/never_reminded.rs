//! `/whatsapp-report/never-reminded`: who fell due without a successful reminder, and why.

use std::time::Duration;

use chrono::{Days, Utc};
use chrono_tz::Tz;
use reminder::db::master_data::{NewCustomer, NewVehicle, upsert_customers, upsert_vehicles};
use reminder::startup::Role;
use serde_json::Value;
use uuid::Uuid;

use reminder_harness::prelude::*;

use super::{failed, logged, midnight};

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
