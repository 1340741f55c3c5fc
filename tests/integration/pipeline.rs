//! The whole pipeline in one process: an upstream `maintenance.due` becomes a counted report.

use std::time::Duration;

use reminder::startup::Role;
use uuid::Uuid;

use reminder_harness::prelude::*;

#[tokio::test]
async fn a_published_maintenance_due_is_sent_and_counted_in_the_statistics() {
    let env = TestEnv::new();
    let app = env.spawn(&[Role::All]).await;
    let amqp = env.amqp().await;
    let (customer, vehicle) = (Uuid::new_v4(), Uuid::new_v4());

    amqp.publish_event(&maintenance_due(
        &Uuid::new_v4().to_string(),
        customer,
        vehicle,
    ))
    .await;

    wait_until(Duration::from_secs(20), || async {
        app.get_json("/whatsapp-report/statistics").await["total_messages"] == 1
    })
    .await;
    let stats = app.get_json("/whatsapp-report/statistics").await;
    assert_eq!(stats["total_reports"], 1);
    assert_eq!(stats["unique_customers"], 1);
    let report = app
        .get_json(&format!(
            "/whatsapp-report/customer/{customer}/vehicle/{vehicle}"
        ))
        .await;
    assert_eq!(report["frequency"], 1);
    app.stop().await;
}
