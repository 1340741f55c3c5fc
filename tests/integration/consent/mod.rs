//! Consent against the real services: keyword replies, upstream and Meta preference changes
//! in `at` order, error 131050 (`changes`); the producer skipping opted-out phones and the
//! sender refusing an upstream reminder for one, the cadence and the preview (`scan`).

mod changes;
mod scan;

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use lapin::options::{BasicAckOptions, BasicGetOptions};
use reminder::db::master_data::{self, NewCustomer, NewVehicle};
use reminder::producer::Producer;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use reminder_harness::prelude::*;

pub const WAIT: Duration = Duration::from_secs(30);

pub fn event(ty: &str, data: Value) -> Value {
    json!({
        "specversion": "1.0",
        "id": Uuid::new_v4().to_string(),
        "source": "test/upstream",
        "type": ty,
        "time": Utc::now().to_rfc3339(),
        "datacontenttype": "application/json",
        "data": data,
    })
}

/// A reply as the webhook role publishes it: the phone already in E.164 digits.
pub fn reply(phone: &str, text: &str, at: DateTime<Utc>) -> Value {
    event(
        "reply.received",
        json!({"phone": phone, "text": text, "at": at.to_rfc3339(), "provider": "cloud_api",
               "provider_message_id": format!("wamid.{}", Uuid::new_v4().simple()),
               "type": "text"}),
    )
}

pub fn consent_changed(phone: &str, opted_out: bool, source: &str, at: DateTime<Utc>) -> Value {
    event(
        "consent.changed",
        json!({"phone": phone, "opted_out": opted_out, "source": source, "at": at.to_rfc3339()}),
    )
}

/// The recorded consent of a phone (E.164 digits): opted out or not, and the source.
pub async fn consent_of(pool: &PgPool, phone: &str) -> Option<(bool, String)> {
    sqlx::query_as("SELECT opted_out, source FROM consent WHERE phone = $1")
        .bind(phone)
        .fetch_optional(pool)
        .await
        .unwrap()
}

pub async fn wait_for_consent(pool: &PgPool, phone: &str, expected: Option<(bool, &str)>) {
    let expected = expected.map(|(o, s)| (o, s.to_string()));
    wait_until(WAIT, || async { consent_of(pool, phone).await == expected }).await;
}

/// Waits until the tracker queue is empty and nothing is unacked (every event handled).
pub async fn wait_for_tracker(amqp: &TestAmqp) {
    wait_until(WAIT, || async {
        amqp.depth(&amqp.topology.tracker_queue).await == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
}

pub async fn insert_vehicle(pool: &PgPool, phone: &str, due: NaiveDate) -> (Uuid, Uuid) {
    let (customer, vehicle) = (Uuid::new_v4(), Uuid::new_v4());
    master_data::upsert_customers(
        pool,
        &[NewCustomer {
            id: customer,
            name: "Budi".into(),
            phone: phone.into(),
        }],
    )
    .await
    .unwrap();
    master_data::upsert_vehicles(
        pool,
        &[NewVehicle {
            id: vehicle,
            id_customer: customer,
            plate_number: format!("B {} XYZ", &phone[phone.len().saturating_sub(4)..]),
            brand: None,
            model: None,
            next_maintenance_date: Some(due),
        }],
    )
    .await
    .unwrap();
    (customer, vehicle)
}

/// The vehicle ids of the reminders waiting in the sender queue (taken).
pub async fn take_published(amqp: &TestAmqp) -> Vec<Uuid> {
    let mut out = Vec::new();
    while let Some(m) = amqp
        .channel
        .basic_get(
            amqp.topology.sender_queue.as_str().into(),
            BasicGetOptions { no_ack: false },
        )
        .await
        .unwrap()
    {
        m.delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .unwrap();
        let e: Value = serde_json::from_slice(&m.delivery.data).unwrap();
        out.push(e["data"]["vehicle_id"].as_str().unwrap().parse().unwrap());
    }
    out.sort();
    out
}

pub async fn producer(env: &TestEnv) -> Producer {
    let ctx = reminder::startup::connect(
        env.settings.clone(),
        "test producer",
        CancellationToken::new(),
    )
    .await
    .unwrap();
    wait_until(WAIT, || async { ctx.broker.is_connected() }).await;
    Producer::new(ctx).unwrap()
}
