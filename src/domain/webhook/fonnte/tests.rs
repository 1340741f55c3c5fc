//! Tests of the Fonnte webhook parser, JSON and form-encoded, using the documented field names.

use chrono::{DateTime, Utc};

use super::super::report::{
    DeliveryStatus, Parsed, Provider, ReplyReport, ReplyType, Report, StatusReport, digits_only,
};
use super::parse;

const JSON: Option<&str> = Some("application/json");
const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

fn received() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}

fn run(body: &str, content_type: Option<&str>) -> Parsed {
    parse(body.as_bytes(), content_type, received(), digits_only).expect("body decodes")
}

fn only_status(parsed: &Parsed) -> &StatusReport {
    match parsed.reports.as_slice() {
        [Report::Status(s)] => s,
        other => panic!("expected one status, got {other:?}"),
    }
}

fn only_reply(parsed: &Parsed) -> &ReplyReport {
    match parsed.reports.as_slice() {
        [Report::Reply(r)] => r,
        other => panic!("expected one reply, got {other:?}"),
    }
}

#[test]
fn json_status_update() {
    let body = r#"{"device":"6282100004567","id":"80367170","stateid":"3EB0B2C5A1F4","status":"sent","state":"delivered"}"#;
    let parsed = run(body, JSON);
    assert_eq!(
        only_status(&parsed),
        &StatusReport {
            provider: Provider::Fonnte,
            provider_message_id: "80367170".to_owned(),
            status: DeliveryStatus::Delivered,
            reminder_id: None,
            recipient: None,
            at: received(),
            error_code: None,
            error: None,
            billable: None,
            pricing_category: None,
        }
    );
}

#[test]
fn numeric_id_and_state_alone() {
    let parsed = run(r#"{"id":80367170,"state":"read"}"#, JSON);
    let s = only_status(&parsed);
    assert_eq!(s.provider_message_id, "80367170");
    assert_eq!(s.status, DeliveryStatus::Read);
}

#[test]
fn form_encoded_status_update() {
    let parsed = run(
        "device=6282100004567&id=80367170&stateid=3EB0&status=sent",
        FORM,
    );
    assert_eq!(only_status(&parsed).status, DeliveryStatus::Sent);
}

#[test]
fn failure_words_become_failed_with_the_word_as_code() {
    for word in ["failed", "invalid", "expired", "INVALID"] {
        let parsed = run(
            &format!("id=80367170&status={word}&target=081234567890"),
            FORM,
        );
        let s = only_status(&parsed);
        assert_eq!(s.status, DeliveryStatus::Failed, "{word}");
        assert_eq!(
            s.error_code.as_deref(),
            Some(word.to_ascii_lowercase().as_str())
        );
        assert_eq!(s.recipient.as_deref(), Some("081234567890"));
    }
}

#[test]
fn failure_wins_over_an_acknowledgement() {
    let parsed = run(r#"{"id":"1","status":"expired","state":"sent"}"#, JSON);
    assert_eq!(only_status(&parsed).status, DeliveryStatus::Failed);
}

#[test]
fn pending_and_unknown_words_are_ignored() {
    for body in [
        r#"{"id":"1","status":"pending"}"#,
        r#"{"id":"1","status":"processing","state":"waiting"}"#,
        r#"{"id":"1","status":"url unreachable"}"#,
        r#"{"id":"1","status":true}"#,
    ] {
        let parsed = run(body, JSON);
        assert!(parsed.reports.is_empty(), "{body}");
        assert_eq!(parsed.ignored, 1);
    }
}

#[test]
fn json_reply() {
    let body = r#"{"device":"6282100004567","sender":"6281234567890","message":"Bisa servis Sabtu?","text":"","member":"","name":"Budi","location":"","pollname":"","choices":"","timestamp":1764572100,"inboxid":"9127734"}"#;
    let parsed = run(body, JSON);
    assert_eq!(
        only_reply(&parsed),
        &ReplyReport {
            provider: Provider::Fonnte,
            provider_message_id: "9127734".to_owned(),
            phone: "6281234567890".to_owned(),
            reply_type: ReplyType::Text,
            text: Some("Bisa servis Sabtu?".to_owned()),
            button_payload: None,
            context_message_id: None,
            at: DateTime::from_timestamp(1_764_572_100, 0).unwrap(),
        }
    );
}

#[test]
fn form_reply_without_inbox_id_gets_a_stable_synthetic_id() {
    let body =
        "device=6282100004567&sender=6281234567890&message=STOP&name=Budi&timestamp=1764572160";
    let first = run(body, FORM);
    let again = run(body, None);
    let r = only_reply(&first);
    assert!(r.provider_message_id.starts_with("fonnte-"));
    assert_eq!(r.provider_message_id.len(), "fonnte-".len() + 32);
    assert_eq!(
        r.provider_message_id,
        only_reply(&again).provider_message_id
    );
    assert_eq!(r.text.as_deref(), Some("STOP"));

    let later = run(&body.replace("1764572160", "1764572161"), FORM);
    assert_ne!(
        r.provider_message_id,
        only_reply(&later).provider_message_id
    );
}

#[test]
fn group_messages_and_rejected_senders_are_ignored() {
    let group = r#"{"sender":"120363041234567890","member":"6281234567890","message":"halo"}"#;
    assert!(run(group, JSON).reports.is_empty());
    let unusable = r#"{"sender":"status@broadcast","message":"halo"}"#;
    let parsed = run(unusable, JSON);
    assert!(parsed.reports.is_empty());
    assert_eq!(parsed.ignored, 1);
}

#[test]
fn reply_without_text_is_kept_with_null_text() {
    let parsed = run(
        r#"{"sender":"6281234567890","message":"","url":"https://x/f.jpg"}"#,
        JSON,
    );
    assert_eq!(only_reply(&parsed).text, None);
}

#[test]
fn content_type_parameters_and_sniffing() {
    let body = r#"{"id":"7","state":"read"}"#;
    assert_eq!(
        run(body, Some("application/json; charset=utf-8"))
            .reports
            .len(),
        1
    );
    assert_eq!(run(body, None).reports.len(), 1);
    assert_eq!(run("id=7&state=read", Some("text/plain")).reports.len(), 1);
}

#[test]
fn other_bodies_are_ignored() {
    for (body, content_type) in [
        (
            r#"{"device":"6282100004567","status":"connect","timestamp":1764572100}"#,
            JSON,
        ),
        ("[]", JSON),
        ("", FORM),
        ("device=6282100004567&status=disconnect&reason=logout", FORM),
    ] {
        let parsed = run(body, content_type);
        assert!(parsed.reports.is_empty(), "{body}");
        assert_eq!(parsed.ignored, 1);
    }
}

#[test]
fn declared_json_that_is_not_json_is_an_error() {
    assert!(parse(b"id=1&status=sent", JSON, received(), digits_only).is_err());
    assert!(parse(b"{\"id\":", None, received(), digits_only).is_err());
}
