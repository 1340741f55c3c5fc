//! The message history: newest first, its filters, and deep pages that must match a plain
//! offset scan over bulk data.

use super::*;

/// One page of `/whatsapp-report/messages?{query}`: `X-Total-Count` and the rows.
async fn history(app: &TestApp, query: &str) -> (i64, Vec<Value>) {
    let (headers, rows) = json_with(
        app,
        &format!("/whatsapp-report/messages?{query}"),
        StatusCode::OK,
    )
    .await;
    (total_count(&headers), rows.as_array().unwrap().clone())
}

#[tokio::test]
async fn the_message_history_is_newest_first_and_filters_by_status_customer_vehicle_and_period() {
    let s = scenario().await;
    let (headers, all) = json_with(&s.app, "/whatsapp-report/messages", StatusCode::OK).await;
    assert_eq!(total_count(&headers), 7);
    let times: Vec<DateTime<Utc>> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|m| at(m["at"].as_str().unwrap()))
        .collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted, "newest first");
    let newest = &all[0];
    assert_eq!(newest["status"], "failed");
    assert_eq!(newest["id_customer"], s.b.to_string());
    assert_eq!(newest["id_vehicle"], s.b1.to_string());
    assert_eq!(newest["provider"], "cloud_api");
    assert_eq!(newest["provider_message_id"], Value::Null);
    assert_eq!(newest["error_code"], "131026");
    assert_eq!(newest["error"], "Message undeliverable");
    assert_eq!(newest["attempts"], 1);
    assert!(
        newest["reminder_id"]
            .as_str()
            .is_some_and(|r| !r.is_empty())
    );
    let sent = &all[1];
    assert_eq!(sent["status"], "sent");
    assert!(
        sent["provider_message_id"]
            .as_str()
            .unwrap()
            .starts_with("wamid.")
    );
    assert_eq!(
        (sent["error_code"].clone(), sent["error"].clone()),
        (Value::Null, Value::Null)
    );
    assert_eq!(at(sent["at"].as_str().unwrap()), at("2026-11-24T19:00:00Z"));

    let count = |query: String| {
        let app = &s.app;
        async move {
            let (total, rows) = history(app, &query).await;
            (total, rows.len() as i64)
        }
    };
    assert_eq!(count("status=failed".into()).await, (2, 2));
    assert_eq!(count("status=sent".into()).await, (5, 5));
    assert_eq!(count(format!("customer={}", s.a)).await, (5, 5));
    assert_eq!(count(format!("vehicle={}", s.a2)).await, (2, 2));
    assert_eq!(count(format!("customer={}&status=sent", s.b)).await, (1, 1));
    assert_eq!(count("from=2026-11-25&to=2026-11-25".into()).await, (3, 3));
    assert_eq!(
        count("from=2026-11-24&to=2026-11-24&status=sent".into()).await,
        (1, 1)
    );
    assert_eq!(
        count(format!("from=2026-11-21&customer={}", s.a)).await,
        (4, 4)
    );
    assert_eq!(count("to=2026-11-19".into()).await, (1, 1));
    assert_eq!(count("limit=2&offset=5".into()).await, (7, 2));
    assert_eq!(count("offset=7".into()).await, (7, 0));

    let (_, page) = json_with(
        &s.app,
        "/whatsapp-report/messages?limit=2&offset=1",
        StatusCode::OK,
    )
    .await;
    assert_eq!(page, json!(all.as_array().unwrap()[1..3]));
}

/// The history's customer and vehicle filters go through one index keyed by both ids of a row
/// (migration `20261130000002_history_recipient_index.sql`); an id used for a customer and for
/// some other pair's vehicle must still select only what the filter names.
#[tokio::test]
async fn the_history_filters_tell_a_customer_from_a_vehicle_with_the_same_id() {
    let env = TestEnv::new();
    let app = env.spawn(&[Role::Api]).await;
    let (x, v1, v2, c2) = (
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    let outcome = |n: i64, customer: Uuid, vehicle: Uuid| {
        let reminder_id = Uuid::new_v4().to_string();
        reminder::domain::MessageOutcome {
            event_id: reminder::domain::events::outcome_id("message.sent", &reminder_id),
            reminder_id,
            customer_id: customer,
            vehicle_id: vehicle,
            status: reminder::domain::OutcomeStatus::Sent,
            provider: "cloud_api".into(),
            provider_message_id: Some(format!("wamid.{n}")),
            error_code: None,
            error: None,
            attempts: 1,
            at: Utc::now() - chrono::Duration::minutes(n),
            phone: None,
            customer_name: None,
            plate_number: None,
        }
    };
    // Customer x with vehicles v1 (twice) and v2; customer c2 with a vehicle whose id is x.
    let batch = [
        outcome(1, x, v1),
        outcome(2, x, v1),
        outcome(3, x, v2),
        outcome(4, c2, x),
    ];
    reminder::db::tracking::apply_batch(app.pool(), &batch)
        .await
        .unwrap();
    let select = |query: String| {
        let app = &app;
        async move {
            let (total, rows) = history(app, &query).await;
            let pairs: Vec<(String, String)> = rows
                .iter()
                .map(|m| {
                    (
                        m["id_customer"].as_str().unwrap().to_string(),
                        m["id_vehicle"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            (total, pairs)
        }
    };
    let pair = |c: Uuid, v: Uuid| (c.to_string(), v.to_string());
    assert_eq!(
        select(format!("customer={x}")).await,
        (3, vec![pair(x, v1), pair(x, v1), pair(x, v2)])
    );
    assert_eq!(select(format!("vehicle={x}")).await, (1, vec![pair(c2, x)]));
    assert_eq!(
        select(format!("customer={x}&vehicle={v2}")).await,
        (1, vec![pair(x, v2)])
    );
    assert_eq!(
        select(format!("customer={x}&vehicle={x}")).await,
        (0, vec![])
    );
    assert_eq!(
        select(format!("customer={c2}&status=sent&limit=1")).await,
        (1, vec![pair(c2, x)])
    );
}

/// Deep pages of the history seek through the quarter-hour buckets; they must be exactly the
/// rows a plain `OFFSET` over the whole history returns. The data comes from the scale loader
/// (`reminder_harness::fixtures::reports`), whose aggregates must agree with a recount.
#[tokio::test]
async fn deep_pages_of_the_message_history_match_a_plain_offset_scan() {
    let env = TestEnv::new();
    let app = env.spawn(&[Role::Api]).await;
    let size = FixtureSize {
        reports: 2_000,
        messages: 24_000,
        days: 60,
        chunk: 10_000,
    };
    fixtures::load(app.pool(), &size, Utc::now()).await.unwrap();
    assert_eq!(aggregate_drift(app.pool()).await.unwrap(), vec![]);
    let stats = app.get_json("/whatsapp-report/statistics").await;
    assert_eq!(stats["total_reports"], 2_000);
    assert_eq!(
        stats["total_messages"].as_i64().unwrap() + stats["total_failed"].as_i64().unwrap(),
        24_000
    );
    let (customer, _) = fixtures::pair_ids(app.pool(), 7).await.unwrap();
    let (headers, mine) = json_with(
        &app,
        &format!("/whatsapp-report/customer/{customer}"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(total_count(&headers), 2, "pairs 6 and 7 share a customer");
    assert_eq!(mine.as_array().unwrap().len(), 2);

    let today = Utc::now()
        .with_timezone(&chrono_tz::Asia::Jakarta)
        .date_naive();
    let month_ago = today - chrono::Days::new(30);
    for (query, status, from) in [
        ("offset=15000&limit=50", None, None),
        ("offset=23990&limit=50", None, None),
        ("status=sent&offset=12345&limit=100", Some("sent"), None),
        (
            &*format!("from={month_ago}&offset=10001&limit=7"),
            None,
            Some(month_ago),
        ),
    ] {
        let (headers, page) = json_with(
            &app,
            &format!("/whatsapp-report/messages?{query}"),
            StatusCode::OK,
        )
        .await;
        let params: std::collections::HashMap<&str, &str> = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .collect();
        let (offset, limit): (i64, i64) = (
            params["offset"].parse().unwrap(),
            params["limit"].parse().unwrap(),
        );
        let start = from.map(|d| reminder::api::params::start_of_day(chrono_tz::Asia::Jakarta, d));
        let expected: Vec<String> = sqlx::query_scalar(
            "SELECT reminder_id FROM message_log
             WHERE ($1::text IS NULL OR status = $1) AND ($2::timestamptz IS NULL OR at >= $2)
             ORDER BY at DESC, event_id OFFSET $3 LIMIT $4",
        )
        .bind(status)
        .bind(start)
        .bind(offset)
        .bind(limit)
        .fetch_all(app.pool())
        .await
        .unwrap();
        let total: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM message_log
             WHERE ($1::text IS NULL OR status = $1) AND ($2::timestamptz IS NULL OR at >= $2)",
        )
        .bind(status)
        .bind(start)
        .fetch_one(app.pool())
        .await
        .unwrap();
        let got: Vec<String> = page
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["reminder_id"].as_str().unwrap().to_string())
            .collect();
        assert!(!expected.is_empty(), "{query}");
        assert_eq!(got, expected, "{query}");
        assert_eq!(total_count(&headers), total, "{query}");
    }
}
