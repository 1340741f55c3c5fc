//! Fonnte's webhook: no signature, so a token in the path guards it.

use super::*;
#[tokio::test]
async fn fonnte_statuses_and_replies_pass_only_with_the_path_token() {
    let env = webhook_env();
    let app = env.spawn(&[Role::Webhook, Role::Tracker, Role::Api]).await;
    let amqp = env.amqp().await;
    let (customer, vehicle) = (Uuid::new_v4(), Uuid::new_v4());
    let mut sent = message_sent("r-f", customer, vehicle, "2026-11-24T01:00:00Z");
    sent["data"]["provider"] = json!("fonnte");
    sent["data"]["provider_message_id"] = json!("80012345");
    amqp.publish_event(&sent).await;
    wait_until(Duration::from_secs(10), || async {
        scalar(app.pool(), "SELECT count(*) FROM message_log").await == 1
    })
    .await;
    let wrong = app
        .http
        .post(hook(&app, "/webhooks/fonnte/not-the-token"))
        .json(&json!({"id": "80012345", "status": "sent", "state": "read"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 404);
    let url = hook(&app, &format!("/webhooks/fonnte/{FONNTE_TOKEN}"));
    let status = app
        .http
        .post(&url)
        .json(&json!({"device": "628111", "id": "80012345", "stateid": "x", "status": "sent", "state": "read"}))
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), 200);
    let reply = app
        .http
        .post(&url)
        .form(&[
            ("device", "628111"),
            ("sender", "081234567890"),
            ("message", "Oke, Sabtu"),
            ("name", "Budi"),
            ("timestamp", "1795482900"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    wait_until(Duration::from_secs(10), || async {
        scalar(app.pool(), "SELECT count(*) FROM replies").await == 1
            && scalar(
                app.pool(),
                "SELECT count(*) FROM message_log WHERE delivery = 'read'",
            )
            .await
                == 1
    })
    .await;
    let replies = app.get_json("/whatsapp-report/replies").await;
    assert_eq!(replies[0]["provider"], "fonnte");
    assert_eq!(replies[0]["phone"], "6281234567890");
    assert_eq!(replies[0]["reminder_id"], "r-f");
    assert_eq!(replies[0]["text"], "Oke, Sabtu");
    app.stop().await;
}
