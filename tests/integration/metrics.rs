//! `/metrics`: every role counts its work in the documented series, and a process without
//! the api role serves them on `http.metrics_bind`.

use std::collections::HashMap;
use std::time::Duration;

use lapin::BasicProperties;
use reminder::db::master_data::{self, NewCustomer, NewVehicle};
use reminder::producer::{Producer, Trigger};
use reminder::startup::{Application, Role};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer};

use reminder_harness::prelude::*;

/// `series{labels}` → value, from the Prometheus text format.
fn parse(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (key, value) = l.rsplit_once(' ').expect("`series value`");
            (key.to_string(), value.parse().expect("a number"))
        })
        .collect()
}

fn value(metrics: &HashMap<String, f64>, series: &str) -> f64 {
    *metrics
        .get(series)
        .unwrap_or_else(|| panic!("{series} is missing from /metrics"))
}

async fn scrape(http: &reqwest::Client, url: &str) -> HashMap<String, f64> {
    let r = http.get(url).send().await.expect("GET /metrics");
    assert_eq!(r.status(), 200);
    let content_type = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    parse(&r.text().await.unwrap())
}

#[tokio::test]
async fn after_one_reminder_flows_metrics_show_the_producer_sender_tracker_and_http_at_work() {
    let env = TestEnv::new();
    let app = env.spawn(&[Role::All]).await;
    let producer = Producer::new(app.ctx.clone()).unwrap();
    let today = producer.today();
    let customer = Uuid::new_v4();
    master_data::upsert_customers(
        app.pool(),
        &[NewCustomer {
            id: customer,
            name: "Budi Santoso".into(),
            phone: "0812-3456-7890".into(),
        }],
    )
    .await
    .unwrap();
    master_data::upsert_vehicles(
        app.pool(),
        &[NewVehicle {
            id: Uuid::new_v4(),
            id_customer: customer,
            plate_number: "B 1234 XYZ".into(),
            brand: Some("Honda".into()),
            model: Some("Vario 125".into()),
            next_maintenance_date: Some(today),
        }],
    )
    .await
    .unwrap();
    let before = scrape(&app.http, &app.url("/metrics")).await;
    assert_eq!(
        value(
            &before,
            "reminder_sends_total{provider=\"log\",outcome=\"sent\"}"
        ),
        0.0,
        "the series exist at zero before the first event"
    );

    let summary = producer
        .scan(today, Trigger::Manual, None, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(summary.events_published, 1);
    wait_until(Duration::from_secs(20), || async {
        app.get_json("/whatsapp-report/statistics").await["total_messages"] == 1
    })
    .await;

    let m = scrape(&app.http, &app.url("/metrics")).await;
    // Producer.
    assert_eq!(
        value(&m, "reminder_producer_runs_total{outcome=\"succeeded\"}"),
        1.0
    );
    assert_eq!(
        value(&m, "reminder_producer_scan_duration_seconds_count"),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "reminder_events_published_total{type=\"maintenance.due\"}"
        ),
        1.0
    );
    // Sender.
    assert_eq!(
        value(
            &m,
            "reminder_sends_total{provider=\"log\",outcome=\"sent\"}"
        ),
        1.0
    );
    assert_eq!(
        value(&m, "reminder_send_duration_seconds_count{provider=\"log\"}"),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "reminder_events_consumed_total{role=\"sender\",type=\"maintenance.due\",outcome=\"sent\"}"
        ),
        1.0
    );
    assert_eq!(
        value(&m, "reminder_events_published_total{type=\"message.sent\"}"),
        1.0
    );
    assert_eq!(
        value(&m, "reminder_send_retries_total{provider=\"log\"}"),
        0.0
    );
    // Tracker.
    assert_eq!(
        value(
            &m,
            "reminder_events_consumed_total{role=\"tracker\",type=\"message.sent\",outcome=\"counted\"}"
        ),
        1.0
    );
    assert_eq!(value(&m, "reminder_tracker_events_counted_total"), 1.0);
    assert_eq!(value(&m, "reminder_tracker_batch_size_sum"), 1.0);
    assert!(value(&m, "reminder_tracker_batch_size_count") >= 1.0);
    // Nothing went wrong.
    assert_eq!(
        value(
            &m,
            "reminder_dead_lettered_total{role=\"sender\",reason=\"invalid_json\"}"
        ),
        0.0
    );
    assert_eq!(
        value(
            &m,
            "reminder_dead_lettered_total{role=\"tracker\",reason=\"database_rejected\"}"
        ),
        0.0
    );
    // HTTP, by route template.
    assert!(
        value(
            &m,
            "http_requests_total{route=\"/whatsapp-report/statistics\",status=\"200\"}"
        ) >= 1.0
    );
    assert!(
        value(
            &m,
            "http_request_duration_seconds_count{route=\"/whatsapp-report/statistics\"}"
        ) >= 1.0
    );
    assert_eq!(
        value(&m, "http_requests_total{route=\"/metrics\",status=\"200\"}"),
        1.0
    );
    assert!(m.contains_key("reminder_over_reminded_pairs"));
    app.stop().await;
}

#[tokio::test]
async fn a_sender_replica_without_the_api_serves_its_metrics_on_the_metrics_bind() {
    let mut env = TestEnv::new();
    let mock = MockServer::start().await;
    // One transient error (retried), then success.
    Mock::given(method("POST"))
        .and(path(messages_path()))
        .respond_with(cloud_api_error(503, 131000, "Something went wrong"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&mock)
        .await;
    mock_cloud_api_ok(&mock).await;
    env.use_cloud_api(&mock);
    env.settings.http.metrics_bind = "127.0.0.1:0".into();
    let app = Application::build(env.settings.clone(), &[Role::Sender, Role::Tracker])
        .await
        .unwrap();
    assert_eq!(app.port(), None, "no API in this process");
    let base = format!(
        "http://127.0.0.1:{}",
        app.metrics_port().expect("metrics served")
    );
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(app.run(shutdown.clone()));
    let http = reqwest::Client::new();
    let amqp = env.amqp().await;

    amqp.publish_event(&maintenance_due(
        &Uuid::new_v4().to_string(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    ))
    .await;
    amqp.publish(
        "maintenance.due",
        b"{not json",
        BasicProperties::default().with_content_type("application/cloudevents+json".into()),
    )
    .await;

    let metrics = format!("{base}/metrics");
    wait_until(Duration::from_secs(30), || async {
        let m = scrape(&http, &metrics).await;
        m.get("reminder_events_consumed_total{role=\"tracker\",type=\"message.sent\",outcome=\"counted\"}")
            == Some(&1.0)
            && m.get("reminder_dead_lettered_total{role=\"sender\",reason=\"invalid_json\"}") == Some(&1.0)
    })
    .await;
    let m = scrape(&http, &metrics).await;
    assert_eq!(
        value(
            &m,
            "reminder_sends_total{provider=\"cloud_api\",outcome=\"transient_error\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "reminder_sends_total{provider=\"cloud_api\",outcome=\"sent\"}"
        ),
        1.0
    );
    assert_eq!(
        value(&m, "reminder_send_retries_total{provider=\"cloud_api\"}"),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "reminder_events_consumed_total{role=\"sender\",type=\"maintenance.due\",outcome=\"retry\"}"
        ),
        1.0
    );
    assert!(value(&m, "reminder_tracker_batch_size_count") >= 1.0);

    // Health checks for an orchestrator, and nothing else on this port.
    assert_eq!(
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        http.get(format!("{base}/")).send().await.unwrap().status(),
        404
    );
    assert_eq!(
        http.get(format!("{base}/whatsapp-report/statistics"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    shutdown.cancel();
    running.await.unwrap().unwrap();
    assert!(
        amqp.drain_dead().await.len() == 1,
        "the bad message waits in the dead-letter queue"
    );
}
