//! The whole loop with the mock provider reporting as Meta does: the sender sends, the mock
//! posts signed status webhooks (each twice, the last one first, and before the send's own
//! answer), the webhook role publishes them and the tracker records each once, attributing
//! statuses that arrived before their `message.sent` when it comes.

use reminder_harness::mock_provider::{Behaviour, MockCloudApi, StatusWebhooks};
use reminder_harness::tally::{Tally, tally};

use super::*;

const SENDS: i64 = 40;

#[tokio::test]
async fn statuses_posted_twice_out_of_order_and_before_the_answer_are_each_recorded_once() {
    let mock = MockCloudApi::start_with(Behaviour::default())
        .await
        .unwrap();
    let mut env = webhook_env();
    env.use_cloud_api(&mock);
    env.settings.whatsapp.max_per_second = 1000;
    // Each answer waits for its six webhooks to be taken; under a busy machine that can outlast
    // the usual time-out, and a timed-out send would be retried and sent twice.
    env.settings.whatsapp.request_timeout_ms = 30_000;
    let amqp = env.amqp().await;
    let app = env
        .spawn(&[Role::Sender, Role::Tracker, Role::Webhook])
        .await;
    mock.report_statuses_to(StatusWebhooks {
        url: hook(&app, "/webhooks/whatsapp"),
        app_secret: APP_SECRET.into(),
        duplicate: true,
        out_of_order: true,
        before_answer: true,
    });
    for i in 0..SENDS {
        let mut e = maintenance_due(&Uuid::new_v4().to_string(), Uuid::new_v4(), Uuid::new_v4());
        e["data"]["phone"] = json!(format!("0815{i:08}"));
        amqp.publish_event(&e).await;
    }

    wait_until(Duration::from_secs(30), || async {
        scalar(
            app.pool(),
            "SELECT count(*) FROM message_log WHERE delivery = 'read'",
        )
        .await
            == SENDS
    })
    .await;
    assert_eq!(tally(app.pool()).await.unwrap(), Tally::each_once(SENDS));
    assert_eq!(mock.calls(), SENDS as u64);
    // Three statuses a message, each posted twice and taken each time, recorded once.
    assert_eq!(mock.statuses_posted(), 6 * SENDS as u64);
    assert_eq!(mock.status_attempts_failed(), 0);
    assert_eq!(recorded_statuses(app.pool()).await, 3 * SENDS);
    // Every status was confirmed by the broker before its send was answered, so before its
    // message.sent was published: the tracker met each message's statuses first.
    let status_first = scalar(
        app.pool(),
        "SELECT count(*) FROM message_log m WHERE m.recorded_at >= (
             SELECT min(s.recorded_at) FROM message_statuses s WHERE s.reminder_id = m.reminder_id)",
    )
    .await;
    assert_eq!(status_first, SENDS);
    app.stop().await;
    mock.stop().await;
}

async fn recorded_statuses(pool: &PgPool) -> i64 {
    scalar(pool, "SELECT count(*) FROM message_statuses").await
}
