//! Sending policy against the real services: quiet hours hold reminders in the delay queues
//! until the window opens, across a sender restart.

use std::time::Duration;

use chrono::{Timelike, Utc};
use reminder::startup::Role;
use uuid::Uuid;
use wiremock::MockServer;

use reminder_harness::prelude::*;

#[tokio::test]
async fn outside_the_send_window_nothing_is_sent_until_it_opens_and_a_restart_loses_nothing() {
    let mock = MockServer::start().await;
    mock_cloud_api_ok(&mock).await;
    let mut env = TestEnv::new();
    env.use_cloud_api(&mock);
    // The window closed a minute ago and opens in two minutes (workshop time, minute steps).
    let tz = env.settings.producer.tz().unwrap();
    let now = Utc::now();
    let local = now.with_timezone(&tz);
    let hhmm = |t: chrono::DateTime<chrono_tz::Tz>| format!("{:02}:{:02}", t.hour(), t.minute());
    let opens_local = local + chrono::Duration::minutes(2);
    let opens = opens_local
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap()
        .with_timezone(&Utc);
    env.settings.sender.send_window = format!(
        "{}-{}",
        hhmm(opens_local),
        hhmm(local - chrono::Duration::minutes(1))
    );
    // Short park steps, so the reminders look at the window every few seconds.
    env.settings.sender.retry_max_ms = 3000;
    let amqp = env.amqp().await;
    let sender = env.spawn(&[Role::Sender]).await;
    let reminders: Vec<(String, Uuid, Uuid)> = (0..3)
        .map(|_| (Uuid::new_v4().to_string(), Uuid::new_v4(), Uuid::new_v4()))
        .collect();
    for (id, c, v) in &reminders {
        amqp.publish_event(&maintenance_due(id, *c, *v)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(mock.received_requests().await.unwrap().len(), 0);

    // A restart while they wait.
    sender.stop().await;
    let sender = env.spawn(&[Role::Sender]).await;

    let before_open = (opens - Utc::now() - chrono::Duration::seconds(3))
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(before_open).await;
    assert_eq!(
        mock.received_requests().await.unwrap().len(),
        0,
        "sent before the window opened"
    );
    wait_until(Duration::from_secs(60), || async {
        mock.received_requests().await.unwrap().len() >= 3
    })
    .await;
    assert!(Utc::now() >= opens);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(mock.received_requests().await.unwrap().len(), 3);
    assert!(amqp.drain_dead().await.is_empty());
    sender.stop().await;
}

#[tokio::test]
async fn each_locale_gets_its_template_and_its_date_and_an_unknown_one_the_defaults() {
    let mock = MockServer::start().await;
    mock_cloud_api_ok(&mock).await;
    let mut env = TestEnv::new();
    env.use_cloud_api(&mock);
    env.settings.whatsapp.locales.insert(
        "en".into(),
        reminder::configuration::LocaleSettings {
            template_name: Some("maintenance_reminder_en".into()),
            template_language: Some("en".into()),
            message_template: None,
        },
    );
    let amqp = env.amqp().await;
    let sender = env.spawn(&[Role::Sender]).await;
    for locale in ["en", "id", "xx"] {
        let mut due = maintenance_due(&Uuid::new_v4().to_string(), Uuid::new_v4(), Uuid::new_v4());
        due["data"]["due_date"] = serde_json::json!("2026-12-08");
        due["data"]["locale"] = serde_json::json!(locale);
        due["data"]["plate_number"] = serde_json::json!(format!("B {locale}"));
        amqp.publish_event(&due).await;
    }
    wait_until(Duration::from_secs(30), || async {
        mock.received_requests().await.unwrap().len() >= 3
    })
    .await;
    let mut seen = std::collections::BTreeMap::new();
    for r in mock.received_requests().await.unwrap() {
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        let t = &body["template"];
        let params = &t["components"][0]["parameters"];
        seen.insert(
            params[1]["text"].as_str().unwrap().to_string(),
            (
                t["name"].as_str().unwrap().to_string(),
                t["language"]["code"].as_str().unwrap().to_string(),
                params[2]["text"].as_str().unwrap().to_string(),
            ),
        );
    }
    let expect = |n: &str, l: &str, d: &str| (n.to_string(), l.to_string(), d.to_string());
    assert_eq!(
        seen["B en"],
        expect("maintenance_reminder_en", "en", "8 December 2026")
    );
    assert_eq!(
        seen["B id"],
        expect("maintenance_reminder", "id", "8 Desember 2026")
    );
    assert_eq!(
        seen["B xx"],
        expect("maintenance_reminder", "id", "8 Desember 2026")
    );
    sender.stop().await;
}
