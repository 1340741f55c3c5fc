//! Sample events: as JSON a test can still change before publishing it, and as the bytes the
//! producer and the sender write, for publishing in bulk.

use chrono::{NaiveDate, Utc};
use reminder::domain::events::{MAINTENANCE_DUE, MESSAGE_SENT, outcome_id};
use reminder::domain::{CountryCode, MaintenanceDue, MessageSent, OutgoingEvent, PhoneNumber};
use serde_json::{Value, json};
use uuid::Uuid;

/// A valid `maintenance.due` CloudEvent.
pub fn maintenance_due(id: &str, customer: Uuid, vehicle: Uuid) -> Value {
    json!({
        "specversion": "1.0",
        "id": id,
        "source": "test/upstream",
        "type": "maintenance.due",
        "time": "2026-11-24T01:00:00Z",
        "datacontenttype": "application/json",
        "data": {
            "customer_id": customer,
            "vehicle_id": vehicle,
            "customer_name": "Budi Santoso",
            "phone": "0812-3456-7890",
            "plate_number": "B 1234 XYZ",
            "vehicle": "Honda Vario 125",
            "due_date": "2026-11-26"
        }
    })
}

/// A valid `message.sent` CloudEvent.
pub fn message_sent(reminder_id: &str, customer: Uuid, vehicle: Uuid, sent_at: &str) -> Value {
    json!({
        "specversion": "1.0",
        "id": reminder::domain::events::outcome_id("message.sent", reminder_id),
        "source": "test/sender",
        "type": "message.sent",
        "time": sent_at,
        "datacontenttype": "application/json",
        "data": {
            "reminder_id": reminder_id,
            "customer_id": customer,
            "vehicle_id": vehicle,
            "phone": "6281234567890",
            "provider": "cloud_api",
            "provider_message_id": format!("wamid.{reminder_id}"),
            "sent_at": sent_at,
            "attempts": 1
        }
    })
}

/// A `maintenance.due` as the producer writes it, for recipient number `n`.
pub fn due_event(id: &str, n: u64, time: chrono::DateTime<Utc>, due: NaiveDate) -> Vec<u8> {
    let country = CountryCode::parse("62").expect("62 is a country code");
    let data = MaintenanceDue {
        customer_id: Uuid::new_v4(),
        vehicle_id: Uuid::new_v4(),
        customer_name: format!("Customer {n}"),
        phone: PhoneNumber::parse(&format!("0812{:08}", n % 100_000_000), &country)
            .expect("a valid Indonesian mobile number"),
        plate_number: format!("B {} XY", n % 10_000),
        vehicle: Some("Honda Vario 125".into()),
        due_date: due,
        locale: None,
    };
    OutgoingEvent::new(
        id.to_string(),
        "reminder-harness/upstream",
        MAINTENANCE_DUE,
        time,
        data,
    )
    .to_bytes()
}

/// A `message.sent` as the sender writes it. Returns (event id, body).
pub fn sent_event(
    reminder_id: &str,
    customer: Uuid,
    vehicle: Uuid,
    n: u64,
    at: chrono::DateTime<Utc>,
) -> (String, Vec<u8>) {
    let id = outcome_id(MESSAGE_SENT, reminder_id);
    let data = MessageSent {
        reminder_id: reminder_id.to_string(),
        customer_id: customer,
        vehicle_id: vehicle,
        phone: format!("62812{:08}", n % 100_000_000),
        provider: "cloud_api".into(),
        provider_message_id: format!("wamid.HBgLNjI4MTIzNDU2Nzg5MBUCABEYEj{n:010}"),
        sent_at: at,
        attempts: 1,
        customer_name: Some(format!("Customer {n}")),
        plate_number: Some(format!("B {} XY", n % 10_000)),
    };
    let body = OutgoingEvent::new(id.clone(), "reminder/sender", MESSAGE_SENT, at, data).to_bytes();
    (id, body)
}

/// The (customer, vehicle) of pair `p` within `namespace`: the same every time, so events
/// spread over a fixed set of pairs; pairs `2k` and `2k + 1` share customer `k`.
pub fn pair(namespace: Uuid, p: u64) -> (Uuid, Uuid) {
    (
        Uuid::new_v5(&namespace, format!("customer/{}", p / 2).as_bytes()),
        Uuid::new_v5(&namespace, format!("vehicle/{p}").as_bytes()),
    )
}
