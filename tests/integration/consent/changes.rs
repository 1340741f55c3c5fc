//! How a phone's consent changes: whole-text keywords in replies, upstream `consent.changed`
//! and Meta's `user_preferences` in `at` order, and error 131050.

use std::time::Duration;

use chrono::Utc;
use reminder::startup::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use reminder_harness::prelude::*;

use super::*;

#[tokio::test]
async fn whole_text_keywords_opt_out_and_back_in_and_other_texts_change_nothing() {
    let env = TestEnv::new();
    let app = env.spawn(&[Role::Tracker]).await;
    let amqp = env.amqp().await;
    let pool = app.pool();
    let t0 = Utc::now();

    amqp.publish_event(&reply("6281211110001", "STOP", t0))
        .await;
    amqp.publish_event(&reply("6281211110002", "berhenti ", t0))
        .await;
    amqp.publish_event(&reply("6281211110003", "jangan stop dulu", t0))
        .await;
    wait_for_consent(pool, "6281211110001", Some((true, "keyword"))).await;
    wait_for_consent(pool, "6281211110002", Some((true, "keyword"))).await;
    wait_for_tracker(&amqp).await;
    assert_eq!(consent_of(pool, "6281211110003").await, None);

    amqp.publish_event(&reply(
        "6281211110001",
        "MULAI",
        t0 + chrono::Duration::seconds(5),
    ))
    .await;
    wait_for_consent(pool, "6281211110001", Some((false, "keyword"))).await;
    assert!(amqp.drain_dead().await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_late_older_change_does_not_undo_a_newer_one_and_131050_opts_out() {
    let env = TestEnv::new();
    let app = env.spawn(&[Role::Tracker]).await;
    let amqp = env.amqp().await;
    let pool = app.pool();
    let newer = Utc::now();
    let older = newer - chrono::Duration::hours(1);

    amqp.publish_event(&consent_changed("081222220001", true, "upstream", newer))
        .await;
    wait_for_consent(pool, "6281222220001", Some((true, "upstream"))).await;
    amqp.publish_event(&consent_changed(
        "081222220001",
        false,
        "user_preferences",
        older,
    ))
    .await;
    wait_for_tracker(&amqp).await;
    assert_eq!(
        consent_of(pool, "6281222220001").await,
        Some((true, "upstream".into()))
    );
    // A newer Meta preference change does apply.
    amqp.publish_event(&consent_changed(
        "081222220001",
        false,
        "user_preferences",
        newer + chrono::Duration::seconds(1),
    ))
    .await;
    wait_for_consent(pool, "6281222220001", Some((false, "user_preferences"))).await;

    let (customer, vehicle) = (Uuid::new_v4(), Uuid::new_v4());
    amqp.publish_event(&event(
        "message.failed",
        json!({"reminder_id": Uuid::new_v4().to_string(), "customer_id": customer,
               "vehicle_id": vehicle, "provider": "cloud_api", "error_code": "131050",
               "error": "the user stopped business messages", "attempts": 1,
               "failed_at": Utc::now().to_rfc3339(), "phone": "6281222220002"}),
    ))
    .await;
    wait_for_consent(pool, "6281222220002", Some((true, "provider_error"))).await;
    assert!(amqp.drain_dead().await.is_empty());
    app.stop().await;
}

/// A signed `user_preferences` change, as Meta posts it to the webhook.
fn preference(wa_id: &str, value: &str, at: i64) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "1029", "changes": [{
        "field": "user_preferences",
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": "15550001111", "phone_number_id": "1065"},
                  "contacts": [{"wa_id": wa_id, "profile": {"name": "Budi"}}],
                  "user_preferences": [{"wa_id": wa_id, "detail": "User requested to stop marketing messages",
                                        "category": "marketing_messages", "value": value,
                                        "timestamp": at}]}}]}]})
}

#[tokio::test]
async fn a_stop_and_a_resume_posted_to_the_webhook_opt_the_phone_out_and_back_in() {
    use reminder::configuration::Secret;
    use reminder::webhook::signature::sign;
    const SECRET: &str = "consent-app-secret";
    let mut env = TestEnv::new();
    env.settings.webhook.bind = "127.0.0.1:0".into();
    env.settings.whatsapp.cloud_api.app_secret = Secret::new(SECRET);
    let app = env.spawn(&[Role::Webhook, Role::Tracker]).await;
    let post = |body: Value| {
        let app = &app;
        async move {
            let bytes = serde_json::to_vec(&body).unwrap();
            let url = format!("{}/webhooks/whatsapp", app.webhook.as_deref().unwrap());
            app.http
                .post(url)
                .header("content-type", "application/json")
                .header("X-Hub-Signature-256", sign(SECRET.as_bytes(), &bytes))
                .body(bytes)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let now = Utc::now().timestamp();

    assert_eq!(
        post(preference("6281255550001", "stop", now - 60)).await,
        200
    );
    wait_for_consent(
        app.pool(),
        "6281255550001",
        Some((true, "user_preferences")),
    )
    .await;

    assert_eq!(
        post(preference("6281255550001", "resume", now - 30)).await,
        200
    );
    wait_for_consent(
        app.pool(),
        "6281255550001",
        Some((false, "user_preferences")),
    )
    .await;

    // Delivered again late, the older stop does not undo the newer resume.
    assert_eq!(
        post(preference("6281255550001", "stop", now - 60)).await,
        200
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        consent_of(app.pool(), "6281255550001").await,
        Some((false, "user_preferences".to_string()))
    );
    app.stop().await;
}
