//! CloudEvents `data` objects and deterministic event ids for webhook reports.
//!
//! The same report heard twice (a provider retry, a replayed webhook) yields the same event id,
//! so consumers that count each id once count it once. Ids are UUID v5 under a namespace the
//! caller supplies, over the report's identity parts.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use super::report::{ConsentReport, ReplyReport, Report, StatusReport};

/// `source` of a `consent.changed` the webhook role publishes.
pub const CONSENT_SOURCE_USER_PREFERENCES: &str = "user_preferences";

/// RFC 3339 in UTC with a `Z` suffix and whole seconds, the form every event time uses.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The `data` of a `message.status` event.
pub fn status_data(s: &StatusReport) -> Value {
    json!({
        "provider": s.provider.as_str(),
        "provider_message_id": s.provider_message_id,
        "status": s.status.as_str(),
        "reminder_id": s.reminder_id,
        "recipient": s.recipient,
        "at": rfc3339(s.at),
        "error_code": s.error_code,
        "error": s.error,
        "billable": s.billable,
        "pricing_category": s.pricing_category,
    })
}

/// The `data` of a `reply.received` event.
pub fn reply_data(r: &ReplyReport) -> Value {
    json!({
        "provider": r.provider.as_str(),
        "provider_message_id": r.provider_message_id,
        "phone": r.phone,
        "type": r.reply_type.as_str(),
        "text": r.text,
        "button_payload": r.button_payload,
        "context_message_id": r.context_message_id,
        "at": rfc3339(r.at),
    })
}

/// The `data` of a `consent.changed` event heard from the provider's user-preferences webhook.
pub fn consent_data(c: &ConsentReport) -> Value {
    json!({
        "phone": c.phone,
        "opted_out": c.opted_out,
        "source": CONSENT_SOURCE_USER_PREFERENCES,
        "at": rfc3339(c.at),
    })
}

/// The `data` of the event `report` becomes.
pub fn event_data(report: &Report) -> Value {
    match report {
        Report::Status(s) => status_data(s),
        Report::Reply(r) => reply_data(r),
        Report::Consent(c) => consent_data(c),
    }
}

/// The id of the event `report` becomes: UUID v5 in `namespace` over the event type and the
/// report's identity, i.e. (provider, provider_message_id, status) for a status,
/// (provider, provider_message_id) for a reply and (phone, opted_out, at) for a consent change.
pub fn event_id(namespace: &Uuid, report: &Report) -> Uuid {
    let mut parts = vec![report.event_type().to_owned()];
    parts.extend(report.identity());
    Uuid::new_v5(namespace, &name_bytes(&parts))
}

/// The id of the event `report` becomes, under the namespace of every id reminder derives.
pub fn id(report: &Report) -> String {
    event_id(&super::super::events::ID_NAMESPACE, report).to_string()
}

/// Length-prefixed concatenation, so no choice of part contents can make two different part
/// lists produce the same name (as "a|b","c" and "a","b|c" would with a plain separator).
fn name_bytes(parts: &[String]) -> Vec<u8> {
    let mut name = Vec::new();
    for part in parts {
        name.extend_from_slice(part.len().to_string().as_bytes());
        name.push(b':');
        name.extend_from_slice(part.as_bytes());
    }
    name
}

#[cfg(test)]
mod tests {
    use super::super::report::{DeliveryStatus, Provider, ReplyType};
    use super::*;

    const NS: Uuid = Uuid::from_u128(0x4f1c_2b7e_93d5_4a60_8e2f_6a1b_0c9d_7e35);

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    fn status(id: &str, status: DeliveryStatus) -> StatusReport {
        StatusReport {
            provider: Provider::CloudApi,
            provider_message_id: id.to_owned(),
            status,
            reminder_id: Some("0b6f1c1e-5d57-4c55-9d59-3f1b0d2a7c11".to_owned()),
            recipient: Some("6281234567890".to_owned()),
            at: at(1_750_030_073),
            error_code: None,
            error: None,
            billable: Some(true),
            pricing_category: Some("utility".to_owned()),
        }
    }

    fn reply(id: &str) -> ReplyReport {
        ReplyReport {
            provider: Provider::CloudApi,
            provider_message_id: id.to_owned(),
            phone: "6281234567890".to_owned(),
            reply_type: ReplyType::Button,
            text: Some("Booking".to_owned()),
            button_payload: Some("BOOK".to_owned()),
            context_message_id: None,
            at: at(1_750_030_100),
        }
    }

    fn consent(opted_out: bool, secs: i64) -> ConsentReport {
        ConsentReport {
            phone: "6281234567890".to_owned(),
            opted_out,
            category: "marketing_messages".to_owned(),
            at: at(secs),
        }
    }

    #[test]
    fn status_data_has_every_field_with_nulls() {
        let mut failed = status("wamid.A", DeliveryStatus::Failed);
        failed.reminder_id = None;
        failed.recipient = None;
        failed.error_code = Some("131026".to_owned());
        failed.error = Some("Message undeliverable".to_owned());
        failed.billable = None;
        failed.pricing_category = None;
        assert_eq!(
            status_data(&failed),
            json!({
                "provider": "cloud_api",
                "provider_message_id": "wamid.A",
                "status": "failed",
                "reminder_id": null,
                "recipient": null,
                "at": "2025-06-15T23:27:53Z",
                "error_code": "131026",
                "error": "Message undeliverable",
                "billable": null,
                "pricing_category": null,
            })
        );
    }

    #[test]
    fn reply_and_consent_data_match_the_contract_fields() {
        assert_eq!(
            reply_data(&reply("wamid.R")),
            json!({
                "provider": "cloud_api",
                "provider_message_id": "wamid.R",
                "phone": "6281234567890",
                "type": "button",
                "text": "Booking",
                "button_payload": "BOOK",
                "context_message_id": null,
                "at": "2025-06-15T23:28:20Z",
            })
        );
        assert_eq!(
            consent_data(&consent(true, 1_731_705_721)),
            json!({
                "phone": "6281234567890",
                "opted_out": true,
                "source": "user_preferences",
                "at": "2024-11-15T21:22:01Z",
            })
        );
    }

    #[test]
    fn event_data_dispatches_on_the_report_kind() {
        let r = Report::Reply(reply("wamid.R"));
        assert_eq!(event_data(&r), reply_data(&reply("wamid.R")));
    }

    #[test]
    fn status_id_depends_on_provider_message_and_status_only() {
        let sent = Report::Status(status("wamid.A", DeliveryStatus::Sent));
        let mut later = status("wamid.A", DeliveryStatus::Sent);
        later.at = at(1_750_039_999);
        later.billable = None;
        assert_eq!(event_id(&NS, &sent), event_id(&NS, &Report::Status(later)));

        let delivered = Report::Status(status("wamid.A", DeliveryStatus::Delivered));
        let other_message = Report::Status(status("wamid.B", DeliveryStatus::Sent));
        let mut fonnte = status("wamid.A", DeliveryStatus::Sent);
        fonnte.provider = Provider::Fonnte;
        assert_ne!(event_id(&NS, &sent), event_id(&NS, &delivered));
        assert_ne!(event_id(&NS, &sent), event_id(&NS, &other_message));
        assert_ne!(event_id(&NS, &sent), event_id(&NS, &Report::Status(fonnte)));
        assert_eq!(event_id(&NS, &sent).get_version_num(), 5);
    }

    #[test]
    fn reply_id_depends_on_provider_and_message() {
        let a = Report::Reply(reply("wamid.R"));
        let mut edited = reply("wamid.R");
        edited.text = Some("Booking besok".to_owned());
        assert_eq!(event_id(&NS, &a), event_id(&NS, &Report::Reply(edited)));
        assert_ne!(
            event_id(&NS, &a),
            event_id(&NS, &Report::Reply(reply("wamid.S")))
        );
    }

    #[test]
    fn consent_id_depends_on_phone_direction_and_time() {
        let stop = Report::Consent(consent(true, 100));
        assert_eq!(
            event_id(&NS, &stop),
            event_id(&NS, &Report::Consent(consent(true, 100)))
        );
        assert_ne!(
            event_id(&NS, &stop),
            event_id(&NS, &Report::Consent(consent(false, 100)))
        );
        assert_ne!(
            event_id(&NS, &stop),
            event_id(&NS, &Report::Consent(consent(true, 101)))
        );
    }

    #[test]
    fn namespace_changes_every_id() {
        let r = Report::Reply(reply("wamid.R"));
        assert_ne!(event_id(&NS, &r), event_id(&Uuid::NAMESPACE_URL, &r));
    }

    #[test]
    fn ids_are_stable_across_releases() {
        // Pinned: changing the derivation would re-count every report heard before the change.
        let r = Report::Status(status("wamid.A", DeliveryStatus::Read));
        assert_eq!(
            name_bytes(&[
                "message.status".into(),
                "cloud_api".into(),
                "wamid.A".into()
            ]),
            b"14:message.status9:cloud_api7:wamid.A".to_vec()
        );
        assert_eq!(
            event_id(&NS, &r).to_string(),
            "a088bece-bcfa-535e-a942-aa3f2fefa519"
        );
    }

    #[test]
    fn name_parts_cannot_run_together() {
        let a = name_bytes(&["ab".into(), "c".into()]);
        let b = name_bytes(&["a".into(), "bc".into()]);
        assert_ne!(a, b);
    }
}
