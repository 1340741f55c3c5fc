//! Each role creates its series at zero when it starts, so a dashboard or an alert sees a
//! counter from the first scrape rather than only after the first event of that kind.

use super::*;

/// The reasons a consumer dead-letters an event (`EventError::code()`).
const EVENT_ERROR_CODES: &[&str] = &[
    "too_large",
    "invalid_json",
    "bad_specversion",
    "wrong_type",
    "missing_field",
    "invalid_field",
];

impl Metrics {
    /// Creates the producer's series at zero when the role starts (see `init_sender`).
    pub fn init_producer(&self) {
        for outcome in ["succeeded", "failed", "skipped"] {
            let _ = self.producer_runs.get_or_create(&OutcomeLabels { outcome });
        }
        for reason in ["invalid_phone", "invalid_data"] {
            let _ = self
                .producer_skipped
                .get_or_create(&ReasonLabels { reason });
        }
        self.init_published(&["maintenance.due"]);
        self.init_database("producer");
    }

    /// Creates the sender's series at zero when the role starts, so they exist before the
    /// first event: `rate()`/`increase()` then see the first increment, and an alert such as
    /// `increase(reminder_dead_lettered_total[10m]) > 0` fires on the first dead letter.
    pub fn init_sender(&self, provider: &'static str) {
        for outcome in [
            "sent",
            "transient_error",
            "permanent_error",
            "gave_up",
            "unknown",
        ] {
            let _ = self.sends.get_or_create(&SendLabels { provider, outcome });
        }
        let _ = self
            .send_retries
            .get_or_create(&ProviderLabels { provider });
        for outcome in ["reconciled", "retried"] {
            let _ = self
                .unknown_outcomes
                .get_or_create(&OutcomeLabels { outcome });
        }
        for outcome in ["sent", "failed", "retry", "dead_lettered", "error"] {
            let _ = self.events_consumed.get_or_create(&ConsumedLabels {
                role: "sender",
                r#type: "maintenance.due".into(),
                outcome,
            });
        }
        self.init_published(&["message.sent", "message.failed"]);
        self.init_dead_letters("sender", &[]);
        self.init_database("sender");
    }

    /// Creates the tracker's series at zero when the role starts (see `init_sender`).
    pub fn init_tracker(&self) {
        for ty in ["message.sent", "message.failed"] {
            let _ = self.events_consumed.get_or_create(&ConsumedLabels {
                role: "tracker",
                r#type: ty.into(),
                outcome: "counted",
            });
        }
        let _ = self.events_consumed.get_or_create(&ConsumedLabels {
            role: "tracker",
            r#type: "any".into(),
            outcome: "duplicate",
        });
        let _ = self.replies.get();
        self.init_dead_letters("tracker", &["database_rejected"]);
        self.init_database("tracker");
    }

    /// Creates the webhook role's series at zero when it starts (see `init_sender`).
    pub fn init_webhook(&self, outcomes: &[&'static str]) {
        for provider in ["cloud_api", "fonnte"] {
            for outcome in outcomes {
                let _ = self
                    .webhook_requests
                    .get_or_create(&WebhookLabels { provider, outcome });
            }
        }
        self.init_published(&["message.status", "reply.received", "consent.changed"]);
    }

    fn init_published(&self, types: &[&str]) {
        for ty in types {
            let _ = self.events_published.get_or_create(&TypeLabels {
                r#type: ty.to_string(),
            });
        }
    }

    fn init_dead_letters(&self, role: &'static str, extra: &[&str]) {
        for reason in EVENT_ERROR_CODES.iter().chain(extra) {
            let _ = self.dead_lettered.get_or_create(&DeadLabels {
                role,
                reason: reason.to_string(),
            });
        }
    }

    fn init_database(&self, role: &'static str) {
        let _ = self
            .database_unavailable
            .get_or_create(&RoleLabels { role });
        let _ = self.database_conflicts.get_or_create(&RoleLabels { role });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::EventError;

    #[test]
    fn every_dead_letter_reason_of_a_consumer_is_created_at_start() {
        let errors = [
            EventError::TooLarge { size: 2, limit: 1 },
            EventError::InvalidJson("x".into()),
            EventError::NotAnObject,
            EventError::BadSpecVersion("0.3".into()),
            EventError::WrongType {
                got: "a".into(),
                expected: "b".into(),
            },
            EventError::MissingField("data.x"),
            EventError::InvalidField {
                field: "data.x",
                reason: "bad".into(),
            },
        ];
        for e in errors {
            assert!(EVENT_ERROR_CODES.contains(&e.code()), "{}", e.code());
        }
        let m = Metrics::new();
        m.init_sender("log");
        m.init_tracker();
        m.init_producer();
        let text = m.render();
        for line in [
            "reminder_dead_lettered_total{role=\"sender\",reason=\"invalid_json\"} 0",
            "reminder_dead_lettered_total{role=\"tracker\",reason=\"database_rejected\"} 0",
            "reminder_send_retries_total{provider=\"log\"} 0",
            "reminder_sends_total{provider=\"log\",outcome=\"permanent_error\"} 0",
            "reminder_producer_runs_total{outcome=\"skipped\"} 0",
            "reminder_tracker_batch_size_count 0",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
