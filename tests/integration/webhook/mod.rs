//! The webhook role and the tracker's recording of what it hears, against the real services:
//! Meta's handshake and signatures, statuses in any order and twice, replies attributed, Fonnte
//! behind its path token (`fonnte`), a 503 when the broker cannot take the events (`outage`), and
//! the mock provider's own status webhooks through the whole pipeline (`mock_statuses`).

mod fonnte;
mod mock_statuses;
mod outage;

use std::time::Duration;

use reminder::configuration::Secret;
use reminder::startup::Role;
use reminder::webhook::signature::sign;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use reminder_harness::prelude::*;

const APP_SECRET: &str = "test-app-secret";
const VERIFY_TOKEN: &str = "test-verify-token";
const FONNTE_TOKEN: &str = "fonnte-path-token-0123456789";

fn webhook_env() -> TestEnv {
    let mut env = TestEnv::new();
    let s = &mut env.settings;
    s.webhook.bind = "127.0.0.1:0".into();
    s.whatsapp.cloud_api.app_secret = Secret::new(APP_SECRET);
    s.whatsapp.cloud_api.verify_token = Secret::new(VERIFY_TOKEN);
    s.whatsapp.fonnte.webhook_token = Secret::new(FONNTE_TOKEN);
    env
}

fn hook(app: &TestApp, path: &str) -> String {
    format!(
        "{}{path}",
        app.webhook.as_deref().expect("the webhook role runs")
    )
}

/// POSTs `body` to Meta's route with `signature` (none when `None`).
async fn post_meta(app: &TestApp, body: &[u8], signature: Option<String>) -> reqwest::Response {
    let mut request = app
        .http
        .post(hook(app, "/webhooks/whatsapp"))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(s) = signature {
        request = request.header("X-Hub-Signature-256", s);
    }
    request.send().await.expect("request")
}

async fn post_signed(app: &TestApp, body: &Value) -> reqwest::Response {
    let bytes = serde_json::to_vec(body).unwrap();
    post_meta(app, &bytes, Some(sign(APP_SECRET.as_bytes(), &bytes))).await
}

fn envelope(value: Value) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "1029", "changes": [
        {"field": "messages", "value": value}]}]})
}

fn status(wamid: &str, status: &str, reminder: Option<&str>, ts: i64) -> Value {
    let mut s = json!({"id": wamid, "status": status, "timestamp": ts.to_string(),
                       "recipient_id": "6281234567890"});
    if let Some(r) = reminder {
        s["biz_opaque_callback_data"] = json!(r);
    }
    if status == "failed" {
        s["errors"] = json!([{"code": 131026, "title": "Message undeliverable"}]);
    }
    envelope(json!({"messaging_product": "whatsapp", "statuses": [s]}))
}

fn reply(wamid: &str, from: &str, text: &str, context: Option<&str>, ts: i64) -> Value {
    let mut m = json!({"from": from, "id": wamid, "timestamp": ts.to_string(), "type": "text",
                       "text": {"body": text}});
    if let Some(c) = context {
        m["context"] = json!({"from": "15550001111", "id": c});
    }
    envelope(json!({"messaging_product": "whatsapp", "messages": [m]}))
}

async fn scalar(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn the_handshake_echoes_the_challenge_only_for_the_right_token() {
    let env = webhook_env();
    let app = env.spawn(&[Role::Webhook]).await;
    let url = |token: &str| {
        hook(
            &app,
            &format!(
                "/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444"
            ),
        )
    };
    let ok = app.http.get(url(VERIFY_TOKEN)).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(
        ok.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(ok.text().await.unwrap(), "1158201444");
    let wrong = app.http.get(url("guess")).send().await.unwrap();
    assert_eq!(wrong.status(), 403);
    let health = app.http.get(hook(&app, "/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn only_a_body_signed_as_received_is_published() {
    let env = webhook_env();
    let amqp = env.amqp().await;
    let app = env.spawn(&[Role::Webhook]).await;
    let tracker_queue = env.topology().tracker_queue;
    let body =
        serde_json::to_vec(&status("wamid.S1", "delivered", Some("r-1"), 1_800_000_000)).unwrap();
    let signature = sign(APP_SECRET.as_bytes(), &body);

    assert_eq!(post_meta(&app, &body, None).await.status(), 401);
    let wrong = sign(b"another-secret", &body);
    assert_eq!(post_meta(&app, &body, Some(wrong)).await.status(), 401);
    // A proxy that parses and re-serialises the JSON changes the bytes the signature covers.
    let reserialised =
        serde_json::to_vec_pretty(&serde_json::from_slice::<Value>(&body).unwrap()).unwrap();
    assert_eq!(
        post_meta(&app, &reserialised, Some(signature.clone()))
            .await
            .status(),
        401
    );
    let not_json = b"entry=1";
    let r = post_meta(&app, not_json, Some(sign(APP_SECRET.as_bytes(), not_json))).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "bad_request");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(amqp.depth(&tracker_queue).await, 0, "nothing published");

    assert_eq!(post_meta(&app, &body, Some(signature)).await.status(), 200);
    // A signed body of a kind reminder does not handle is acknowledged and ignored.
    let other = json!({"object": "whatsapp_business_account", "entry": [{"changes": [
        {"field": "message_template_status_update", "value": {"event": "APPROVED"}}]}]});
    assert_eq!(post_signed(&app, &other).await.status(), 200);
    wait_until(Duration::from_secs(5), || async {
        amqp.depth(&tracker_queue).await == 1
    })
    .await;
    let too_large = vec![b' '; 1024 * 1024 + 1];
    let r = post_meta(
        &app,
        &too_large,
        Some(sign(APP_SECRET.as_bytes(), &too_large)),
    )
    .await;
    assert_eq!(r.status(), 413);
    let metrics = app.ctx.metrics.render();
    for outcome in [
        "accepted\"} 2",
        "bad_signature\"} 3",
        "bad_request\"} 1",
        "too_large\"} 1",
    ] {
        assert!(
            metrics.contains(&format!(
                "reminder_webhook_requests_total{{provider=\"cloud_api\",outcome=\"{outcome}"
            )),
            "{outcome}\n{metrics}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn statuses_twice_and_out_of_order_before_the_send_count_once_with_the_highest_state() {
    let env = webhook_env();
    let app = env.spawn(&[Role::Webhook, Role::Tracker, Role::Api]).await;
    let amqp = env.amqp().await;
    let (customer, vehicle) = (Uuid::new_v4(), Uuid::new_v4());
    let sent_at = "2026-11-24T01:00:00Z";
    let t = 1795482000; // 2026-11-24T01:00:00Z
    // r-1: read, then delivered, then sent, each twice, all before its message.sent.
    for s in ["read", "delivered", "sent", "read", "delivered", "sent"] {
        let r = post_signed(&app, &status("wamid.r-1", s, Some("r-1"), t + 60)).await;
        assert_eq!(r.status(), 200, "{s}");
    }
    wait_until(Duration::from_secs(10), || async {
        scalar(app.pool(), "SELECT count(*) FROM message_statuses").await == 3
    })
    .await;
    amqp.publish_event(&message_sent("r-1", customer, vehicle, sent_at))
        .await;
    // r-2: sent first, then failed by the provider, then a late delivered raises it.
    amqp.publish_event(&message_sent("r-2", customer, vehicle, sent_at))
        .await;
    wait_until(Duration::from_secs(10), || async {
        scalar(app.pool(), "SELECT count(*) FROM message_log").await == 2
    })
    .await;
    for s in ["failed", "sent"] {
        // Without a reminder id: found by the provider's message id.
        let r = post_signed(&app, &status("wamid.r-2", s, None, t + 30)).await;
        assert_eq!(r.status(), 200);
    }
    wait_until(Duration::from_secs(10), || async {
        scalar(app.pool(), "SELECT count(*) FROM message_statuses").await == 5
    })
    .await;

    wait_until(Duration::from_secs(10), || async {
        let m = app.get_json("/whatsapp-report/messages").await;
        m.as_array()
            .unwrap()
            .iter()
            .all(|m| m["delivery"] != "accepted")
    })
    .await;
    let messages = app.get_json("/whatsapp-report/messages").await;
    let find = |id: &str| {
        messages
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["reminder_id"] == id)
            .cloned()
            .unwrap()
    };
    let r1 = find("r-1");
    assert_eq!(r1["delivery"], "read");
    assert_eq!(r1["delivered_at"], "2026-11-24T01:01:00Z");
    assert_eq!(r1["read_at"], "2026-11-24T01:01:00Z");
    let r2 = find("r-2");
    assert_eq!(r2["delivery"], "failed");
    assert_eq!(r2["delivery_error_code"], "131026");
    assert_eq!(r2["delivered_at"], Value::Null);

    // A late delivered raises a failed message; a late sent lowers nothing.
    post_signed(&app, &status("wamid.r-2", "delivered", None, t + 90)).await;
    wait_until(Duration::from_secs(10), || async {
        let stats = app.get_json("/whatsapp-report/statistics").await;
        stats["total_delivered"] == 2
    })
    .await;
    let stats = app.get_json("/whatsapp-report/statistics").await;
    assert_eq!(stats["total_read"], 1);
    assert_eq!(stats["total_failed_after_send"], 0);
    let period = app
        .get_json("/whatsapp-report/statistics?from=2026-11-24&to=2026-11-24")
        .await;
    assert_eq!(period["total_delivered"], 2);
    assert_eq!(period["total_read"], 1);
    let daily = app
        .get_json("/whatsapp-report/daily?from=2026-11-23&to=2026-11-24")
        .await;
    assert_eq!(daily[0]["delivered"], 0);
    assert_eq!(daily[1]["sent"], 2);
    assert_eq!(daily[1]["delivered"], 2);
    assert_eq!(daily[1]["read"], 1);
    let detail = app.get_json("/whatsapp-report/detail").await;
    assert_eq!(detail[0]["delivered"], 2);
    assert_eq!(detail[0]["read"], 1);
    assert_eq!(
        scalar(app.pool(), "SELECT count(*) FROM message_statuses").await,
        6
    );
    app.stop().await;
}

#[tokio::test]
async fn replies_go_to_the_message_they_name_else_the_latest_to_that_phone_else_nobody() {
    let env = webhook_env();
    let app = env.spawn(&[Role::Webhook, Role::Tracker, Role::Api]).await;
    let amqp = env.amqp().await;
    let (customer, older, newer) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    amqp.publish_event(&message_sent(
        "r-old",
        customer,
        older,
        "2026-11-20T01:00:00Z",
    ))
    .await;
    amqp.publish_event(&message_sent(
        "r-new",
        customer,
        newer,
        "2026-11-24T01:00:00Z",
    ))
    .await;
    wait_until(Duration::from_secs(10), || async {
        scalar(app.pool(), "SELECT count(*) FROM message_log").await == 2
    })
    .await;
    let t = 1795482000; // 2026-11-24T01:00:00Z
    // Names the older reminder: goes to it, although a newer one went to the same phone.
    post_signed(
        &app,
        &reply(
            "wamid.A",
            "6281234567890",
            "Booking Sabtu",
            Some("wamid.r-old"),
            t + 600,
        ),
    )
    .await;
    // No context: the latest message to that phone within the week.
    post_signed(
        &app,
        &reply("wamid.B", "+62 812-3456-7890", "Jam berapa?", None, t + 700),
    )
    .await;
    // A phone reminder never wrote to: kept, attributed to nobody.
    post_signed(
        &app,
        &reply("wamid.C", "6289999999999", "Siapa ini?", None, t + 800),
    )
    .await;
    // The same reply again.
    post_signed(
        &app,
        &reply("wamid.C", "6289999999999", "Siapa ini?", None, t + 800),
    )
    .await;
    wait_until(Duration::from_secs(10), || async {
        scalar(app.pool(), "SELECT count(*) FROM replies").await == 3
    })
    .await;
    let r = app.get("/whatsapp-report/replies").await;
    assert_eq!(r.headers()["x-total-count"], "3");
    let replies: Value = r.json().await.unwrap();
    assert_eq!(replies[0]["provider_message_id"], "wamid.C", "newest first");
    assert_eq!(replies[0]["id_customer"], Value::Null);
    assert_eq!(replies[0]["reminder_id"], Value::Null);
    assert_eq!(replies[1]["text"], "Jam berapa?");
    assert_eq!(replies[1]["phone"], "6281234567890");
    assert_eq!(replies[1]["id_vehicle"], json!(newer));
    assert_eq!(replies[1]["reminder_id"], "r-new");
    assert_eq!(replies[2]["id_vehicle"], json!(older));
    assert_eq!(replies[2]["reminder_id"], "r-old");
    assert_eq!(replies[2]["type"], "text");
    let mine = app
        .get_json(&format!("/whatsapp-report/replies?customer={customer}"))
        .await;
    assert_eq!(mine.as_array().unwrap().len(), 2);
    let stats = app.get_json("/whatsapp-report/statistics").await;
    assert_eq!(stats["total_replies"], 3);
    let detail = app.get_json("/whatsapp-report/detail").await;
    for pair in detail.as_array().unwrap() {
        assert_eq!(pair["replies"], 1, "{pair}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_reply_naming_a_message_not_yet_recorded_is_attached_when_it_is() {
    let env = webhook_env();
    let app = env.spawn(&[Role::Webhook, Role::Tracker]).await;
    let amqp = env.amqp().await;
    let (customer, vehicle) = (Uuid::new_v4(), Uuid::new_v4());
    post_signed(
        &app,
        &reply(
            "wamid.A",
            "6281299999999",
            "Ya",
            Some("wamid.r-9"),
            1795482600,
        ),
    )
    .await;
    wait_until(Duration::from_secs(10), || async {
        scalar(app.pool(), "SELECT count(*) FROM replies").await == 1
    })
    .await;
    amqp.publish_event(&message_sent(
        "r-9",
        customer,
        vehicle,
        "2026-11-24T01:00:00Z",
    ))
    .await;
    wait_until(Duration::from_secs(10), || async {
        scalar(
            app.pool(),
            "SELECT count(*) FROM replies WHERE reminder_id = 'r-9'",
        )
        .await
            == 1
    })
    .await;
    assert_eq!(
        scalar(app.pool(), "SELECT replies::bigint FROM whatsapp_report").await,
        1
    );
    app.stop().await;
}
