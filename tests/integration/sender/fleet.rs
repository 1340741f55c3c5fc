//! A fleet customer with hundreds of vehicles on one phone: that phone's reminders go out a
//! recipient gap apart, and waiting for the gap holds nobody else's reminders up.

use super::*;
use reminder_harness::mock_provider::MockCloudApi;

const FLEET: usize = 300;
const OTHERS: usize = 3000;

#[tokio::test]
async fn one_phone_with_300_vehicles_is_paced_while_3000_others_go_out_at_once() {
    let sends = MockCloudApi::start(Duration::from_millis(5), false)
        .await
        .unwrap();
    let mut env = TestEnv::new();
    env.use_cloud_api(&sends);
    env.settings.sender.recipient_interval_ms = 1000;
    env.settings.whatsapp.max_per_second = 0;
    let app = env.spawn(&[Role::Sender]).await;
    let amqp = env.amqp().await;

    // The fleet's reminders first, so that they reach the sending slots before anyone else's.
    let fleet_phone = "081299990000";
    let mut events = Vec::new();
    for _ in 0..FLEET {
        let mut e = maintenance_due(&new_id(), Uuid::new_v4(), Uuid::new_v4());
        e["data"]["phone"] = json!(fleet_phone);
        events.push(e);
    }
    for i in 0..OTHERS {
        let mut e = maintenance_due(&new_id(), Uuid::new_v4(), Uuid::new_v4());
        e["data"]["phone"] = json!(format!("0813{:08}", i));
        events.push(e);
    }
    let started = Instant::now();
    for chunk in events.chunks(200) {
        futures::future::join_all(chunk.iter().map(|e| amqp.publish_event(e))).await;
    }

    let sent_to = |fleet: bool| {
        let pool = app.pool().clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM reminder_dispatch
                 WHERE status = 'sent' AND (phone = '6281299990000') = $1",
            )
            .bind(fleet)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    wait_until(Duration::from_secs(60), || async {
        sent_to(false).await == OTHERS as i64
    })
    .await;
    let others_took = started.elapsed();

    // The fleet's phone went at its own pace meanwhile: about one a second, never faster.
    let fleet_sent = sent_to(true).await;
    assert!(
        fleet_sent >= 1 && fleet_sent <= others_took.as_secs() as i64 + 2,
        "{fleet_sent} sent to the fleet's phone in {others_took:?}"
    );
    let times: Vec<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
        "SELECT outcome_at FROM reminder_dispatch
         WHERE status = 'sent' AND phone = '6281299990000' ORDER BY outcome_at",
    )
    .fetch_all(app.pool())
    .await
    .unwrap();
    for pair in times.windows(2) {
        assert!(
            pair[1] - pair[0] >= chrono::TimeDelta::milliseconds(900),
            "two messages to one phone {:?} apart",
            pair[1] - pair[0]
        );
    }
    assert_eq!(sends.repeated(), vec![], "nothing was sent twice");
    app.stop().await;
    sends.stop().await;
}
