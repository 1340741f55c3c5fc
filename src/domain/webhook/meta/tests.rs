//! Tests of the Meta webhook parser against bodies shaped like the ones Meta documents.
//!
//! The fixtures follow the structure and field set of the examples in Meta's webhook reference
//! (status, incoming message and user_preferences webhooks, including the business-scoped user id
//! variants), with this project's own numbers, ids and texts.

use chrono::{DateTime, Utc};

use super::super::report::{
    ConsentReport, DeliveryStatus, Parsed, Provider, ReplyReport, ReplyType, Report, StatusReport,
    digits_only,
};
use super::parse;

const W1: &str = "wamid.HBgNNjI4MTIzNDU2Nzg5MBUCABEYEkE3QzE5RjJCMDBEMTRBOEU1RgA=";
const W2: &str = "wamid.HBgNNjI4MTIzNDU2Nzg5MBUCABEYEjNFQjBDNEQyRjFBOUI4N0UyMQA=";
const W3: &str = "wamid.HBgNNjI4NTcxMjM0NTY3OBUCABEYEkI1RDNFMUYwQTJDNDk2ODg3NwA=";
const R1: &str = "wamid.HBgNNjI4MTIzNDU2Nzg5MBUCABEYEjlGOEU3RDZDNUI0QTM5MjgxNwA=";
const R2: &str = "wamid.HBgNNjI4NTcxMjM0NTY3OBUCABEYEjBBMUIyQzNENEU1RjYwNzE4MgA=";
const R3: &str = "wamid.HBgNNjI4MTIzNDU2Nzg5MBUCABEYEkMwRkZFRTEyMzQ1Njc4QUJDRAA=";
const R4: &str = "wamid.HBgNNjI4NTcxMjM0NTY3OBUCABEYEkRFQURCRUVGMDAxMTIyMzM0NAA=";
const REMINDER_1: &str = "0b6f1c1e-5d57-4c55-9d59-3f1b0d2a7c11";
const REMINDER_3: &str = "5f0e8a52-0c1d-4d8e-b6a3-2a9c1e7f4b60";
const BUDI: &str = "6281234567890";
const SARI: &str = "6285712345678";

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap()
}

fn received() -> DateTime<Utc> {
    at(1_800_000_000)
}

fn run(body: &str) -> Parsed {
    parse(body.as_bytes(), received(), digits_only).expect("fixture is JSON")
}

fn statuses(parsed: &Parsed) -> Vec<&StatusReport> {
    parsed
        .reports
        .iter()
        .filter_map(|r| match r {
            Report::Status(s) => Some(s),
            _ => None,
        })
        .collect()
}

fn replies(parsed: &Parsed) -> Vec<&ReplyReport> {
    parsed
        .reports
        .iter()
        .filter_map(|r| match r {
            Report::Reply(m) => Some(m),
            _ => None,
        })
        .collect()
}

#[test]
fn sent_status_with_conversation_and_pricing() {
    let parsed = run(include_str!("fixtures/status_sent_conversation.json"));
    assert_eq!(parsed.ignored, 0);
    assert_eq!(
        parsed.reports,
        vec![Report::Status(StatusReport {
            provider: Provider::CloudApi,
            provider_message_id: W1.to_owned(),
            status: DeliveryStatus::Sent,
            reminder_id: Some(REMINDER_1.to_owned()),
            recipient: Some(BUDI.to_owned()),
            at: at(1_764_568_800),
            error_code: None,
            error: None,
            billable: Some(true),
            pricing_category: Some("utility".to_owned()),
        })]
    );
}

#[test]
fn delivered_status_without_callback_data() {
    let parsed = run(include_str!("fixtures/status_delivered_pmp.json"));
    let s = statuses(&parsed);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].status, DeliveryStatus::Delivered);
    assert_eq!(s[0].reminder_id, None);
    assert_eq!(s[0].recipient.as_deref(), Some(BUDI));
    assert_eq!(s[0].at, at(1_764_568_815));
    assert_eq!(s[0].billable, Some(true));
    assert_eq!(s[0].pricing_category.as_deref(), Some("utility"));
}

#[test]
fn failed_status_carries_the_first_error() {
    let parsed = run(include_str!("fixtures/status_failed.json"));
    let s = statuses(&parsed);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].status, DeliveryStatus::Failed);
    assert_eq!(s[0].provider_message_id, W3);
    assert_eq!(s[0].reminder_id.as_deref(), Some(REMINDER_3));
    assert_eq!(s[0].error_code.as_deref(), Some("131026"));
    assert_eq!(
        s[0].error.as_deref(),
        Some("Message undeliverable: Message could not be delivered to the recipient's device.")
    );
    assert_eq!(s[0].billable, None);
    assert_eq!(s[0].pricing_category, None);
}

#[test]
fn status_for_a_business_scoped_user_has_no_recipient() {
    let parsed = run(include_str!("fixtures/status_delivered_to_bsuid.json"));
    let s = statuses(&parsed);
    assert_eq!(s.len(), 1, "the status is kept: it still names the message");
    assert_eq!(s[0].recipient, None);
    assert_eq!(s[0].provider_message_id, W3);
}

#[test]
fn text_reply_without_context() {
    let parsed = run(include_str!("fixtures/message_text.json"));
    assert_eq!(parsed.ignored, 0);
    assert_eq!(
        parsed.reports,
        vec![Report::Reply(ReplyReport {
            provider: Provider::CloudApi,
            provider_message_id: R1.to_owned(),
            phone: BUDI.to_owned(),
            reply_type: ReplyType::Text,
            text: Some("Bisa servis hari Sabtu pagi?".to_owned()),
            button_payload: None,
            context_message_id: None,
            at: at(1_764_572_100),
        })]
    );
}

#[test]
fn text_reply_with_context_keeps_the_text_as_written() {
    let parsed = run(include_str!("fixtures/message_text_context.json"));
    let r = replies(&parsed);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].provider_message_id, R3);
    assert_eq!(r[0].context_message_id.as_deref(), Some(W1));
    assert_eq!(r[0].text.as_deref(), Some(" STOP "));
}

#[test]
fn template_quick_reply_button() {
    let parsed = run(include_str!("fixtures/message_button.json"));
    let r = replies(&parsed);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].reply_type, ReplyType::Button);
    assert_eq!(r[0].phone, SARI);
    assert_eq!(r[0].text.as_deref(), Some("Booking jadwal"));
    assert_eq!(r[0].button_payload.as_deref(), Some("BOOK_SERVICE"));
    assert_eq!(r[0].context_message_id.as_deref(), Some(W3));
}

#[test]
fn interactive_button_and_list_replies() {
    let parsed = run(include_str!("fixtures/message_interactive.json"));
    let r = replies(&parsed);
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].reply_type, ReplyType::Interactive);
    assert_eq!(r[0].provider_message_id, R2);
    assert_eq!(r[0].text.as_deref(), Some("Sabtu 09.00"));
    assert_eq!(r[0].button_payload.as_deref(), Some("slot-sat-0900"));
    assert_eq!(r[1].provider_message_id, R4);
    assert_eq!(r[1].text.as_deref(), Some("Bengkel Bekasi"));
    assert_eq!(r[1].button_payload.as_deref(), Some("branch-bekasi"));
    assert_eq!(r[1].context_message_id.as_deref(), Some(W3));
    assert_eq!(r[1].at, at(1_764_575_000));
}

#[test]
fn marketing_stop_and_resume_become_consent_changes() {
    let parsed = run(include_str!("fixtures/user_preferences.json"));
    let consent = |opted_out, secs| {
        Report::Consent(ConsentReport {
            phone: SARI.to_owned(),
            opted_out,
            category: "marketing_messages".to_owned(),
            at: at(secs),
        })
    };
    assert_eq!(
        parsed.reports,
        vec![consent(true, 1_764_569_400), consent(false, 1_764_575_000)]
    );
    assert_eq!(
        parsed.ignored, 1,
        "the other category is not a consent change"
    );
}

#[test]
fn batch_with_several_entries_changes_duplicates_and_unknown_shapes() {
    let parsed = run(include_str!("fixtures/batch.json"));
    let s = statuses(&parsed);
    let summary: Vec<_> = s
        .iter()
        .map(|s| {
            (
                s.provider_message_id.as_str(),
                s.status,
                s.reminder_id.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (W1, DeliveryStatus::Delivered, Some(REMINDER_1)),
            (W1, DeliveryStatus::Read, Some(REMINDER_1)),
            (W2, DeliveryStatus::Sent, None),
        ]
    );
    assert_eq!(s[2].billable, Some(false));

    let r = replies(&parsed);
    assert_eq!(r.len(), 2);
    assert_eq!(
        (r[0].reply_type, r[0].text.as_deref()),
        (ReplyType::Other, None)
    );
    assert_eq!(r[0].context_message_id, None);
    assert_eq!(r[1].reply_type, ReplyType::Other);
    assert_eq!(
        r[1].context_message_id.as_deref(),
        Some(W3),
        "a reaction names its message"
    );

    // Duplicate delivered, `deleted` status, template update, change without value, system
    // notice, reply without a phone number, message echo.
    assert_eq!(parsed.ignored, 7);
}

#[test]
fn missing_timestamp_falls_back_to_the_receive_time() {
    let body = r#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages",
        "value":{"statuses":[{"id":"wamid.X","status":"read","recipient_id":"6281234567890"}]}}]}]}"#;
    let parsed = run(body);
    assert_eq!(statuses(&parsed)[0].at, received());
}

#[test]
fn change_without_field_is_read_as_messages() {
    let body = r#"{"object":"whatsapp_business_account","entry":[{"changes":[{
        "value":{"statuses":[{"id":"wamid.X","status":"sent","timestamp":"1764568800"}]}}]}]}"#;
    let parsed = run(body);
    assert_eq!(statuses(&parsed).len(), 1);
    assert_eq!(statuses(&parsed)[0].recipient, None);
}

#[test]
fn normaliser_decides_what_a_phone_is() {
    let parsed = parse(
        include_str!("fixtures/message_text.json").as_bytes(),
        received(),
        |raw: &str| Some(format!("+{raw}")),
    )
    .unwrap();
    assert_eq!(replies(&parsed)[0].phone, "+6281234567890");

    let rejected = parse(
        include_str!("fixtures/message_text.json").as_bytes(),
        received(),
        |_: &str| None,
    )
    .unwrap();
    assert!(rejected.reports.is_empty());
    assert_eq!(rejected.ignored, 1);
}

#[test]
fn unknown_shapes_are_ignored_not_errors() {
    for body in [
        "{}",
        "[]",
        "null",
        "\"whatsapp_business_account\"",
        r#"{"object":"page","entry":[]}"#,
        r#"{"object":"whatsapp_business_account"}"#,
        r#"{"object":"whatsapp_business_account","entry":"x"}"#,
        r#"{"object":"whatsapp_business_account","entry":[1,{"changes":{}}]}"#,
        r#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":[]}]}]}"#,
        r#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages",
            "value":{"statuses":[{"status":"sent"},{"id":5,"status":7},{"id":"","status":"read"}],
            "messages":[{"id":"wamid.Y","type":"text"},{"from":"6281234567890","type":"text"}]}}]}]}"#,
    ] {
        let parsed = run(body);
        assert!(parsed.reports.is_empty(), "{body}");
    }
}

#[test]
fn numeric_ids_and_codes_are_read_as_text() {
    let body = r#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages",
        "value":{"statuses":[{"id":"wamid.Z","status":"FAILED","timestamp":1764568800,
        "recipient_id":6281234567890,"errors":[{"code":"131047","message":"Re-engagement message"}],
        "pricing":{"billable":"yes","category":7}}]}}]}]}"#;
    let s = run(body);
    let s = statuses(&s);
    assert_eq!(s[0].status, DeliveryStatus::Failed);
    assert_eq!(s[0].recipient.as_deref(), Some(BUDI));
    assert_eq!(s[0].error_code.as_deref(), Some("131047"));
    assert_eq!(s[0].error.as_deref(), Some("Re-engagement message"));
    assert_eq!(
        s[0].billable, None,
        "only a JSON boolean is a billable flag"
    );
    assert_eq!(s[0].pricing_category.as_deref(), Some("7"));
}

#[test]
fn body_that_is_not_json_is_an_error() {
    for body in ["", "hub.mode=subscribe", "{\"object\":", "\u{feff}{}"] {
        assert!(
            parse(body.as_bytes(), received(), digits_only).is_err(),
            "{body:?}"
        );
    }
}
