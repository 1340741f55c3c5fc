//! What arrives and how it leaves the queues: bad events dead-lettered with their reason,
//! binary-mode CloudEvents accepted, retries parked and expiring back, and a reminder the
//! database keeps refusing ending in the dead queue.

use super::*;

/// A bad event: its label (sent as the AMQP message id), the `x-reminder-error-code` it must
/// get, a word its `x-reminder-error` must contain, its body and content type.
struct Bad {
    label: &'static str,
    code: &'static str,
    reason: &'static str,
    body: Vec<u8>,
    properties: BasicProperties,
}

fn structured(label: &'static str, code: &'static str, reason: &'static str, event: Value) -> Bad {
    Bad {
        label,
        code,
        reason,
        body: serde_json::to_vec(&event).unwrap(),
        properties: BasicProperties::default()
            .with_content_type("application/cloudevents+json".into()),
    }
}

fn with_data(field: &str, value: Value) -> Value {
    let mut e = maintenance_due(&new_id(), Uuid::new_v4(), Uuid::new_v4());
    if value.is_null() {
        e["data"].as_object_mut().unwrap().remove(field);
    } else {
        e["data"][field] = value;
    }
    e
}

#[tokio::test]
async fn each_kind_of_bad_event_lands_in_the_dead_queue_with_its_reason_and_the_sender_carries_on()
{
    let mock = MockServer::start().await;
    mock_cloud_api_ok(&mock).await;
    let mut env = cloud_api_env(&mock);
    env.settings.amqp.max_message_bytes = 4096;
    let outcomes = Outcomes::observe(&env).await;
    let app = env.spawn(&[Role::Sender]).await;

    let mut bad = vec![
        Bad {
            label: "not-json",
            code: "invalid_json",
            reason: "not valid JSON",
            body: b"{\"specversion\": \"1.0\", ".to_vec(),
            properties: BasicProperties::default()
                .with_content_type("application/cloudevents+json".into()),
        },
        structured("array", "invalid_json", "not a JSON object", json!([1, 2])),
        structured("specversion", "bad_specversion", "specversion", {
            let mut e = with_data("vehicle", json!("Honda Vario 125"));
            e["specversion"] = json!("0.3");
            e
        }),
        structured("type", "wrong_type", "message.sent", {
            let mut e = with_data("vehicle", json!("Honda Vario 125"));
            e["type"] = json!("message.sent");
            e
        }),
        structured(
            "missing-customer",
            "missing_field",
            "data.customer_id",
            with_data("customer_id", Value::Null),
        ),
        structured(
            "bad-vehicle-id",
            "invalid_field",
            "data.vehicle_id",
            with_data("vehicle_id", json!("not-a-uuid")),
        ),
        structured(
            "bad-date",
            "invalid_field",
            "data.due_date",
            with_data("due_date", json!("26/11/2026")),
        ),
        structured(
            "bad-phone",
            "invalid_field",
            "data.phone",
            with_data("phone", json!("call me maybe")),
        ),
        structured(
            "empty-name",
            "invalid_field",
            "data.customer_name",
            with_data("customer_name", json!("")),
        ),
        structured(
            "too-large",
            "too_large",
            "over the limit",
            with_data("notes", json!("x".repeat(5000))),
        ),
    ];
    // Binary mode without its ce-id header.
    let mut headers = FieldTable::default();
    for (k, v) in [
        ("ce-specversion", "1.0"),
        ("ce-source", "test/upstream"),
        ("ce-type", "maintenance.due"),
    ] {
        headers.insert(k.into(), long_string(v));
    }
    bad.push(Bad {
        label: "binary-without-id",
        code: "missing_field",
        reason: "`id`",
        body: serde_json::to_vec(&with_data("vehicle", json!("x"))["data"]).unwrap(),
        properties: BasicProperties::default()
            .with_content_type("application/json".into())
            .with_headers(headers),
    });

    for b in &bad {
        outcomes
            .amqp
            .publish(
                "maintenance.due",
                &b.body,
                b.properties.clone().with_message_id(b.label.into()),
            )
            .await;
    }
    let good = new_id();
    let events = outcomes
        .after(&maintenance_due(&good, Uuid::new_v4(), Uuid::new_v4()), 1)
        .await;
    assert_eq!(events[0]["data"]["reminder_id"], good);
    let dead = Arc::new(Mutex::new(Vec::new()));
    wait_until(WAIT, || async {
        let more = outcomes.amqp.drain_dead().await;
        let mut dead = dead.lock().unwrap();
        dead.extend(more);
        dead.len() >= bad.len()
    })
    .await;
    let dead = std::mem::take(&mut *dead.lock().unwrap());
    assert_eq!(dead.len(), bad.len());
    for b in &bad {
        let d = dead
            .iter()
            .find(|d| d.properties.message_id().as_ref().map(|s| s.as_str()) == Some(b.label))
            .unwrap_or_else(|| panic!("{} is in the dead queue", b.label));
        let reason = header_text(d, "x-reminder-error").expect("x-reminder-error");
        assert!(
            reason.contains(b.reason),
            "{}: reason {reason:?} should mention {:?}",
            b.label,
            b.reason
        );
        assert_eq!(
            header_text(d, "x-reminder-error-code").as_deref(),
            Some(b.code),
            "{}",
            b.label
        );
        assert_eq!(d.data, b.body, "{}: the body is kept as it was", b.label);
    }
    // Counted after the ack, which follows the dead-letter copy seen above.
    wait_until(WAIT, || async {
        consumed(&app, "dead_lettered") >= bad.len() as u64
    })
    .await;
    assert_eq!(consumed(&app, "dead_lettered"), bad.len() as u64);
    assert_eq!(calls(&mock).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_binary_mode_cloudevent_is_accepted() {
    let (mock, _env, outcomes, app) = sender_with_ok_provider().await;
    let (id, customer, vehicle) = (new_id(), Uuid::new_v4(), Uuid::new_v4());
    let data = maintenance_due(&id, customer, vehicle)["data"].clone();
    let mut headers = FieldTable::default();
    for (k, v) in [
        ("ce-specversion", "1.0"),
        ("ce-id", id.as_str()),
        ("ce-source", "knative/eventing-rabbitmq"),
        ("ce-type", "maintenance.due"),
        ("ce-time", "2026-11-24T01:00:00Z"),
    ] {
        headers.insert(k.into(), long_string(v));
    }

    outcomes
        .amqp
        .publish(
            "maintenance.due",
            &serde_json::to_vec(&data).unwrap(),
            BasicProperties::default()
                .with_content_type("application/json".into())
                .with_headers(headers),
        )
        .await;

    let events = outcomes.take(1).await;
    assert_eq!(events[0]["type"], "message.sent");
    assert_eq!(events[0]["data"]["reminder_id"], id);
    assert_eq!(events[0]["data"]["customer_id"], customer.to_string());
    let requests = mock.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body["biz_opaque_callback_data"], id);
    app.stop().await;
}

#[tokio::test]
async fn a_message_parked_in_a_retry_queue_expires_back_into_the_sender_queue() {
    let env = TestEnv::new();
    let amqp = env.amqp().await;
    let delay = env.settings.sender.retry_delay(1);
    let retry_queue =
        reminder::sender::parking::declare_retry_queue(&amqp.topology, &amqp.channel, delay)
            .await
            .expect("the retry queue declares");

    let confirm = amqp
        .channel
        .basic_publish(
            "".into(),
            retry_queue.as_str().into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            b"parked",
            BasicProperties::default()
                .with_delivery_mode(2)
                .with_expiration("60".into()),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack());

    let back = Arc::new(Mutex::new(None));
    wait_until(WAIT, || async {
        let got = amqp
            .channel
            .basic_get(
                amqp.topology.sender_queue.as_str().into(),
                BasicGetOptions { no_ack: true },
            )
            .await
            .unwrap();
        let found = got.is_some();
        if let Some(m) = got {
            *back.lock().unwrap() = Some(m.delivery);
        }
        found
    })
    .await;
    let back = back.lock().unwrap().take().unwrap();
    assert_eq!(back.data, b"parked");
    let x_death = back
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-death").cloned())
        .expect("x-death header");
    let AMQPValue::FieldArray(deaths) = x_death else {
        panic!("x-death is an array")
    };
    let AMQPValue::FieldTable(first) = &deaths.as_slice()[0] else {
        panic!("x-death holds tables")
    };
    let text = |k: &str| match first.inner().get(k) {
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        other => panic!("{k}: {other:?}"),
    };
    assert_eq!(text("reason"), "expired");
    assert_eq!(text("queue"), retry_queue);
}

#[tokio::test]
async fn a_reminder_the_database_keeps_refusing_ends_in_the_dead_queue_after_the_delivery_limit() {
    let mock = MockServer::start().await;
    mock_cloud_api_ok(&mock).await;
    let mut env = cloud_api_env(&mock);
    env.settings.amqp.delivery_limit = 3;
    let app = env.spawn(&[Role::Sender]).await;
    let amqp = env.amqp().await;

    // A valid event PostgreSQL cannot store (text may not hold a NUL byte, and the event id,
    // unlike its text fields, is kept exactly as given): every delivery fails the same way and
    // is requeued, until the queue's delivery limit dead-letters it.
    let poison_id = format!("{}\u{0}", new_id());
    let poison = maintenance_due(&poison_id, Uuid::new_v4(), Uuid::new_v4());
    amqp.publish_event(&poison).await;
    let good_id = new_id();
    amqp.publish_event(&maintenance_due(&good_id, Uuid::new_v4(), Uuid::new_v4()))
        .await;

    let dead_queue = env.topology().dead_queue;
    wait_until(WAIT, || async { amqp.depth(&dead_queue).await == 1 }).await;
    let dead = amqp.drain_dead().await;
    assert_eq!(
        header_text(&dead[0], "x-first-death-reason").as_deref(),
        Some("delivery_limit")
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&dead[0].data).unwrap()["id"],
        poison_id
    );
    assert!(consumed(&app, "error") >= 3, "each delivery was tried");
    wait_until(WAIT, || async {
        dispatch::get(app.pool(), &good_id)
            .await
            .unwrap()
            .is_some_and(|r| r.status == DispatchStatus::Sent)
    })
    .await;
    assert_eq!(amqp.depth(&env.topology().sender_queue).await, 0);
    app.stop().await;
}
