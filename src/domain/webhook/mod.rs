//! What provider webhooks report, read from their bodies: Meta Cloud API and Fonnte bodies into
//! [`Report`]s, and each report's CloudEvents `data` and deterministic event id.
//!
//! - [`meta`]: Meta WhatsApp Cloud API webhook bodies.
//! - [`fonnte`]: Fonnte webhook bodies (JSON or form-encoded).
//! - [`event`]: the CloudEvents `data` object and the id of each report.
//!
//! No I/O and no clock: the caller passes the receive time and its phone normaliser. The HTTP
//! side (signatures, routes, publishing) is the `webhook` role.

pub mod event;
pub mod fonnte;
pub mod meta;
pub mod report;

pub use report::{
    ConsentReport, DeliveryStatus, ParseError, Parsed, Provider, ReplyReport, ReplyType, Report,
    StatusReport, digits_only,
};

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    #[test]
    fn a_body_heard_twice_yields_the_same_events() {
        let body = include_bytes!("meta/fixtures/batch.json");
        let events = |received_secs| {
            let received = DateTime::from_timestamp(received_secs, 0).unwrap();
            meta::parse(body, received, digits_only)
                .unwrap()
                .reports
                .iter()
                .map(|r| (r.event_type(), event::id(r), event::event_data(r)))
                .collect::<Vec<_>>()
        };
        let first = events(1_800_000_000);
        assert_eq!(first.len(), 5);
        assert_eq!(
            first,
            events(1_800_000_900),
            "a retry later is the same events"
        );

        let mut ids: Vec<_> = first.iter().map(|(_, id, _)| id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), first.len(), "distinct reports get distinct ids");
        assert_eq!(first[0].0, "message.status");
        assert_eq!(first[0].2["status"], "delivered");
        assert_eq!(first[0].2["at"], "2025-12-01T06:00:15Z");
        assert_eq!(first[4].0, "reply.received");
        assert_eq!(first[4].2["type"], "other");
    }
}
