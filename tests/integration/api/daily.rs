//! Counts by calendar day in the workshop's time zone, and the list of pairs reminded more
//! often than the alert threshold.

use super::*;

#[tokio::test]
async fn daily_counts_include_zero_days_and_use_the_workshop_time_zone() {
    let s = scenario().await;
    let (_, days) = json_with(
        &s.app,
        "/whatsapp-report/daily?from=2026-11-23&to=2026-11-26",
        StatusCode::OK,
    )
    .await;
    // 2026-11-24T17:30Z is already the 25th in Asia/Jakarta (UTC+7); 16:59:59Z is still the 24th.
    assert_eq!(
        days,
        json!([
            {"date": "2026-11-23", "sent": 0, "failed": 0, "delivered": 0, "read": 0, "replies": 0},
            {"date": "2026-11-24", "sent": 1, "failed": 0, "delivered": 0, "read": 0, "replies": 0},
            {"date": "2026-11-25", "sent": 2, "failed": 1, "delivered": 0, "read": 0, "replies": 0},
            {"date": "2026-11-26", "sent": 0, "failed": 0, "delivered": 0, "read": 0, "replies": 0}
        ])
    );
    let (_, one) = json_with(
        &s.app,
        "/whatsapp-report/daily?from=2026-11-10&to=2026-11-10",
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        one,
        json!([{"date": "2026-11-10", "sent": 1, "failed": 0, "delivered": 0, "read": 0, "replies": 0}])
    );

    // By default the last 30 days, ending today in the workshop's zone.
    let (_, default) = json_with(&s.app, "/whatsapp-report/daily", StatusCode::OK).await;
    let default = default.as_array().unwrap();
    assert_eq!(default.len(), 30);
    let today = Utc::now()
        .with_timezone(&chrono_tz::Asia::Jakarta)
        .date_naive()
        .to_string();
    let last = default.last().unwrap()["date"]
        .as_str()
        .unwrap()
        .to_string();
    // The day may turn between the two readings of the clock.
    assert!(last <= today, "{last} vs {today}");
}

#[tokio::test]
async fn daily_counts_follow_the_configured_time_zone() {
    let s = scenario_with(|settings| settings.producer.timezone = "UTC".into()).await;
    let (_, days) = json_with(
        &s.app,
        "/whatsapp-report/daily?from=2026-11-24&to=2026-11-25",
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        days,
        json!([
            {"date": "2026-11-24", "sent": 3, "failed": 1, "delivered": 0, "read": 0, "replies": 0},
            {"date": "2026-11-25", "sent": 0, "failed": 0, "delivered": 0, "read": 0, "replies": 0}
        ])
    );
}

#[tokio::test]
async fn over_reminded_lists_pairs_sent_more_than_the_threshold_in_the_window_most_first() {
    let env = TestEnv::new();
    let app = env.spawn(&[Role::Tracker, Role::Api]).await;
    let amqp = env.amqp().await;
    let (c, x, y, z) = (
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    let now = Utc::now();
    let ago = |hours: i64| (now - chrono::Duration::hours(hours)).to_rfc3339();
    let mut published = 0;
    for (vehicle, count) in [(x, 6), (y, 5), (z, 4)] {
        for i in 0..count {
            amqp.publish_event(&sent(c, vehicle, &ago(24 * i + 1), "Budi", "B 1 X"))
                .await;
            published += 1;
        }
    }
    // Outside the default 30-day window, and a failure: neither counts.
    amqp.publish_event(&sent(c, x, &ago(24 * 40), "Budi", "B 1 X"))
        .await;
    amqp.publish_event(&failed(c, z, &ago(2))).await;
    wait_for_messages(app.pool(), published + 2).await;

    let (headers, pairs) = json_with(&app, "/whatsapp-report/over-reminded", StatusCode::OK).await;
    assert_eq!(total_count(&headers), 2);
    let pairs = pairs.as_array().unwrap();
    assert_eq!(pairs.len(), 2);
    assert_eq!(pairs[0]["id_vehicle"], x.to_string());
    assert_eq!(pairs[0]["messages_in_window"], 6);
    assert_eq!(pairs[0]["frequency"], 7);
    assert_eq!(pairs[0]["customer_name"], "Budi");
    assert!(pairs[0]["id"].as_str().is_some());
    assert_eq!(pairs[1]["id_vehicle"], y.to_string());
    assert_eq!(pairs[1]["messages_in_window"], 5);

    // Over 60 days x has 7; y's 5 do not exceed a threshold of 5.
    let (headers, wider) = json_with(
        &app,
        "/whatsapp-report/over-reminded?days=60&max=5",
        StatusCode::OK,
    )
    .await;
    assert_eq!(total_count(&headers), 1);
    assert_eq!(wider[0]["id_vehicle"], x.to_string());
    assert_eq!(wider[0]["messages_in_window"], 7);
    let (headers, second) = json_with(
        &app,
        "/whatsapp-report/over-reminded?limit=1&offset=1",
        StatusCode::OK,
    )
    .await;
    assert_eq!(total_count(&headers), 2);
    assert_eq!(second[0]["id_vehicle"], y.to_string());
    let (headers, past_the_end) = json_with(
        &app,
        "/whatsapp-report/over-reminded?offset=5",
        StatusCode::OK,
    )
    .await;
    assert_eq!((total_count(&headers), past_the_end), (2, json!([])));
}
