//! How the sender acts on each kind of provider answer: a template through the Cloud API or
//! text through Fonnte, throttling and transient errors retried with back-off (and the
//! provider's Retry-After), permanent errors failing at once, time-outs and an unreachable
//! provider.

use super::*;

#[tokio::test]
async fn a_maintenance_due_is_sent_as_a_template_and_its_message_sent_carries_the_provider_id() {
    let (mock, _env, outcomes, app) = sender_with_ok_provider().await;
    let (id, customer, vehicle) = (new_id(), Uuid::new_v4(), Uuid::new_v4());

    let events = outcomes
        .after(&maintenance_due(&id, customer, vehicle), 1)
        .await;
    let sent = &events[0];
    assert_eq!(sent["type"], "message.sent");
    assert_eq!(sent["specversion"], "1.0");
    assert_eq!(sent["id"], outcome_id("message.sent", &id));
    let data = &sent["data"];
    assert_eq!(data["reminder_id"], id);
    assert_eq!(data["customer_id"], customer.to_string());
    assert_eq!(data["vehicle_id"], vehicle.to_string());
    assert_eq!(data["phone"], "6281234567890");
    assert_eq!(data["provider"], "cloud_api");
    assert_eq!(
        data["provider_message_id"],
        "wamid.HBgLNjI4MTIzNDU2Nzg5MBUCABEYEjA"
    );
    assert_eq!(data["attempts"], 1);
    let requests = mock.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body["to"], "6281234567890");
    assert_eq!(body["biz_opaque_callback_data"], id);
    assert_eq!(
        body["template"]["components"][0]["parameters"],
        json!([
            {"type": "text", "text": "Budi Santoso"},
            {"type": "text", "text": "B 1234 XYZ"},
            {"type": "text", "text": "26 November 2026"}
        ])
    );
    app.stop().await;
}

#[tokio::test]
async fn a_maintenance_due_is_sent_through_fonnte_when_configured() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/send"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "detail": "success! message in queue",
            "id": ["80367170"],
            "process": "pending",
            "requestid": 2937124,
            "status": true,
            "target": ["6281234567890"]
        })))
        .mount(&mock)
        .await;
    let mut env = TestEnv::new();
    env.settings.whatsapp.provider = ProviderKind::Fonnte;
    env.settings.whatsapp.fonnte.base_url = mock.uri();
    env.settings.whatsapp.fonnte.token = Secret::new("fonnte-token");
    let outcomes = Outcomes::observe(&env).await;
    let app = env.spawn(&[Role::Sender]).await;
    let id = new_id();

    let events = outcomes
        .after(&maintenance_due(&id, Uuid::new_v4(), Uuid::new_v4()), 1)
        .await;
    assert_eq!(events[0]["type"], "message.sent");
    assert_eq!(events[0]["data"]["provider"], "fonnte");
    assert_eq!(events[0]["data"]["provider_message_id"], "80367170");
    let requests = mock.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let form: std::collections::BTreeMap<String, String> =
        serde_urlencoded::from_bytes(&requests[0].body).unwrap();
    assert_eq!(form["target"], "6281234567890");
    assert_eq!(
        form["message"],
        "Halo Budi Santoso, kendaraan B 1234 XYZ Anda dijadwalkan servis berkala pada 26 November 2026. Balas pesan ini untuk booking jadwal. Terima kasih."
    );
    app.stop().await;
}

#[tokio::test]
async fn a_429_then_200_is_sent_once_and_counted_once() {
    let mock = MockServer::start().await;
    fail_then_succeed(
        &mock,
        cloud_api_error(429, 4, "(#4) Application request limit reached"),
        1,
    )
    .await;
    let env = cloud_api_env(&mock);
    let app = env.spawn(&[Role::Sender, Role::Tracker, Role::Api]).await;
    let amqp = env.amqp().await;
    let (id, customer, vehicle) = (new_id(), Uuid::new_v4(), Uuid::new_v4());

    amqp.publish_event(&maintenance_due(&id, customer, vehicle))
        .await;

    wait_until(WAIT, || async {
        report_frequency(&app, customer, vehicle).await == Some(1)
    })
    .await;
    assert_eq!(calls(&mock).await, 2);
    let history = app.get_json("/whatsapp-report/messages").await;
    let history = history.as_array().unwrap();
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0]["reminder_id"], id);
    assert_eq!(history[0]["status"], "sent");
    assert_eq!(history[0]["attempts"], 2);
    let stats = app.get_json("/whatsapp-report/statistics").await;
    assert_eq!(stats["total_messages"], 1);
    assert_eq!(stats["total_failed"], 0);
    assert_eq!(consumed(&app, "retry"), 1);
    assert_eq!(consumed(&app, "sent"), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_130429_throughput_error_is_retried() {
    let mock = MockServer::start().await;
    fail_then_succeed(&mock, cloud_api_error(400, 130429, "Rate limit hit"), 1).await;
    let env = cloud_api_env(&mock);
    let outcomes = Outcomes::observe(&env).await;
    let app = env.spawn(&[Role::Sender]).await;
    let id = new_id();

    let events = outcomes
        .after(&maintenance_due(&id, Uuid::new_v4(), Uuid::new_v4()), 1)
        .await;
    assert_eq!(events[0]["type"], "message.sent");
    assert_eq!(events[0]["data"]["attempts"], 2);
    assert_eq!(calls(&mock).await, 2);
    app.stop().await;
}

/// Answers 429 with `Retry-After: {seconds}` first, then success, and notes when each call came.
struct RetryAfterOnce {
    seconds: u64,
    calls: Arc<Mutex<Vec<Instant>>>,
}

impl Respond for RetryAfterOnce {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut calls = self.calls.lock().unwrap();
        calls.push(Instant::now());
        if calls.len() == 1 {
            cloud_api_error(429, 80007, "Rate limit issues")
                .insert_header("Retry-After", self.seconds.to_string())
        } else {
            cloud_api_ok("wamid.after-retry")
        }
    }
}

/// Mounts `RetryAfterOnce` on `mock`; the times of the calls it answers.
async fn retry_after_once(mock: &MockServer, seconds: u64) -> Arc<Mutex<Vec<Instant>>> {
    let times = Arc::new(Mutex::new(Vec::new()));
    Mock::given(method("POST"))
        .respond_with(RetryAfterOnce {
            seconds,
            calls: times.clone(),
        })
        .mount(mock)
        .await;
    times
}

#[tokio::test]
async fn the_retry_after_header_holds_the_next_attempt_back() {
    let mock = MockServer::start().await;
    let times = retry_after_once(&mock, 1).await;
    let mut env = cloud_api_env(&mock);
    // Without Retry-After the first retry would come after 38–50 ms.
    env.settings.sender.retry_initial_ms = 50;
    let outcomes = Outcomes::observe(&env).await;
    let app = env.spawn(&[Role::Sender]).await;

    let events = outcomes
        .after(
            &maintenance_due(&new_id(), Uuid::new_v4(), Uuid::new_v4()),
            1,
        )
        .await;
    assert_eq!(
        events[0]["data"]["provider_message_id"],
        "wamid.after-retry"
    );
    let times = times.lock().unwrap().clone();
    assert_eq!(times.len(), 2);
    assert!(
        times[1] - times[0] >= Duration::from_secs(1),
        "retried after {:?}, before the provider's Retry-After",
        times[1] - times[0]
    );
    app.stop().await;
}

#[tokio::test]
async fn a_duplicate_arriving_during_the_back_off_does_not_call_the_provider_early() {
    let mock = MockServer::start().await;
    let times = retry_after_once(&mock, 2).await;
    let mut env = cloud_api_env(&mock);
    env.settings.sender.retry_initial_ms = 50;
    let outcomes = Outcomes::observe(&env).await;
    let app = env.spawn(&[Role::Sender]).await;
    let event = maintenance_due(&new_id(), Uuid::new_v4(), Uuid::new_v4());

    outcomes.amqp.publish_event(&event).await;
    wait_until(WAIT, || async { consumed(&app, "retry") == 1 }).await;
    let events = outcomes.after(&event, 2).await;
    assert_eq!(events[0], events[1]);
    let times = times.lock().unwrap().clone();
    assert_eq!(times.len(), 2, "one failed call and one successful call");
    assert!(
        times[1] - times[0] >= Duration::from_secs(2),
        "the second call came {:?} after the first, inside the provider's Retry-After",
        times[1] - times[0]
    );
    assert!(consumed(&app, "deferred") >= 1);
    app.stop().await;
}

#[tokio::test]
async fn errors_131026_and_190_fail_at_once_without_a_retry() {
    let mock = MockServer::start().await;
    let (undeliverable, bad_token) = (new_id(), new_id());
    Mock::given(body_partial_json(
        json!({"biz_opaque_callback_data": undeliverable}),
    ))
    .respond_with(cloud_api_error(400, 131026, "Message undeliverable"))
    .mount(&mock)
    .await;
    Mock::given(body_partial_json(
        json!({"biz_opaque_callback_data": bad_token}),
    ))
    .respond_with(cloud_api_error(
        401,
        190,
        "Error validating access token: Session has expired",
    ))
    .mount(&mock)
    .await;
    let env = cloud_api_env(&mock);
    let app = env.spawn(&[Role::Sender, Role::Tracker, Role::Api]).await;
    let amqp = env.amqp().await;

    for id in [&undeliverable, &bad_token] {
        amqp.publish_event(&maintenance_due(id, Uuid::new_v4(), Uuid::new_v4()))
            .await;
    }

    wait_until(WAIT, || async {
        let failed = app
            .get_json("/whatsapp-report/messages?status=failed")
            .await;
        failed.as_array().unwrap().len() == 2
    })
    .await;
    let failed = app
        .get_json("/whatsapp-report/messages?status=failed")
        .await;
    for (id, code) in [(&undeliverable, "131026"), (&bad_token, "190")] {
        let m = failed
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["reminder_id"] == **id)
            .expect("a message.failed for each reminder");
        assert_eq!(m["error_code"], code);
        assert_eq!(m["attempts"], 1);
        assert_eq!(m["provider"], "cloud_api");
        assert!(m["provider_message_id"].is_null());
        assert!(!m["error"].as_str().unwrap().is_empty());
    }
    assert_eq!(calls(&mock).await, 2);
    let stats = app.get_json("/whatsapp-report/statistics").await;
    assert_eq!(stats["total_reports"], 0);
    assert_eq!(stats["total_failed"], 2);
    app.stop().await;
}

#[tokio::test]
async fn a_provider_time_out_is_retried() {
    let mock = MockServer::start().await;
    fail_then_succeed(
        &mock,
        cloud_api_ok("wamid.too-late").set_delay(Duration::from_secs(3)),
        1,
    )
    .await;
    let mut env = cloud_api_env(&mock);
    // Long enough for the mock's prompt answer on a loaded machine, far below its slow one.
    env.settings.whatsapp.request_timeout_ms = 1000;
    let outcomes = Outcomes::observe(&env).await;
    let app = env.spawn(&[Role::Sender]).await;

    let events = outcomes
        .after(
            &maintenance_due(&new_id(), Uuid::new_v4(), Uuid::new_v4()),
            1,
        )
        .await;
    assert_eq!(events[0]["type"], "message.sent");
    assert_eq!(
        events[0]["data"]["provider_message_id"],
        "wamid.HBgLNjI4MTIzNDU2Nzg5MBUCABEYEjA"
    );
    assert_eq!(events[0]["data"]["attempts"], 2);
    assert_eq!(calls(&mock).await, 2);
    app.stop().await;
}

#[tokio::test]
async fn a_reminder_failing_transiently_every_time_fails_after_max_attempts() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string("Service Unavailable"))
        .mount(&mock)
        .await;
    let mut env = cloud_api_env(&mock);
    env.settings.whatsapp.max_attempts = 3;
    let outcomes = Outcomes::observe(&env).await;
    let app = env.spawn(&[Role::Sender]).await;
    let id = new_id();

    let events = outcomes
        .after(&maintenance_due(&id, Uuid::new_v4(), Uuid::new_v4()), 1)
        .await;
    let failed = &events[0];
    assert_eq!(failed["type"], "message.failed");
    assert_eq!(failed["id"], outcome_id("message.failed", &id));
    assert_eq!(failed["data"]["reminder_id"], id);
    assert_eq!(failed["data"]["error_code"], "http_503");
    assert_eq!(failed["data"]["attempts"], 3);
    assert_eq!(calls(&mock).await, 3);
    app.stop().await;
}

#[tokio::test]
async fn an_unreachable_provider_fails_with_error_code_connect_after_max_attempts() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mock = MockServer::start().await;
    let mut env = cloud_api_env(&mock);
    env.settings.whatsapp.cloud_api.base_url = format!("http://127.0.0.1:{port}");
    env.settings.whatsapp.max_attempts = 2;
    let outcomes = Outcomes::observe(&env).await;
    let app = env.spawn(&[Role::Sender]).await;

    let events = outcomes
        .after(
            &maintenance_due(&new_id(), Uuid::new_v4(), Uuid::new_v4()),
            1,
        )
        .await;
    assert_eq!(events[0]["type"], "message.failed");
    assert_eq!(events[0]["data"]["error_code"], "connect");
    assert_eq!(events[0]["data"]["attempts"], 2);
    app.stop().await;
}
