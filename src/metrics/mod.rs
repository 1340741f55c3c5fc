//! Prometheus metrics of every role. One `Metrics` per application instance rather than a
//! global registry, so tests running several instances in one process each read their own
//! figures.

mod labels;
mod zero;

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

pub use labels::*;

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.5 ms to ~30 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 17))
}

/// The content type of what [`Metrics::render`] writes: prometheus-client encodes OpenMetrics
/// text only, so that is what a scrape is told.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub struct Metrics {
    registry: Registry,
    pub events_published: Family<TypeLabels, Counter>,
    pub events_consumed: Family<ConsumedLabels, Counter>,
    pub sends: Family<SendLabels, Counter>,
    pub send_retries: Family<ProviderLabels, Counter>,
    pub send_duration: HistogramFamily<ProviderLabels>,
    pub duplicates_suppressed: Counter,
    /// Reminders whose provider call lost its answer, settled after their wait: `reconciled`
    /// (a delivery status named them: recorded sent) or `retried`.
    pub unknown_outcomes: Family<OutcomeLabels, Counter>,
    pub dead_lettered: Family<DeadLabels, Counter>,
    pub tracker_batch_size: Histogram,
    pub tracker_batch_duration: Histogram,
    pub tracker_events_counted: Counter,
    pub producer_runs: Family<OutcomeLabels, Counter>,
    pub producer_skipped: Family<ReasonLabels, Counter>,
    pub producer_scan_duration: Histogram,
    pub over_reminded_pairs: Gauge,
    pub database_unavailable: Family<RoleLabels, Counter>,
    pub database_conflicts: Family<RoleLabels, Counter>,
    /// Set from `broker::blocking` when `/metrics` is scraped.
    pub broker_blocked: Gauge,
    pub http_requests: Family<RouteStatusLabels, Counter>,
    pub http_request_duration: HistogramFamily<RouteLabels>,
    pub webhook_requests: Family<WebhookLabels, Counter>,
    pub statuses: Family<ProviderStatusLabels, Counter>,
    pub statuses_unmatched: Counter,
    pub replies: Counter,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::default();
        let events_published = Family::<TypeLabels, Counter>::default();
        registry.register(
            "reminder_events_published",
            "Events published and confirmed by the broker",
            events_published.clone(),
        );
        let events_consumed = Family::<ConsumedLabels, Counter>::default();
        registry.register(
            "reminder_events_consumed",
            "Events consumed, by role, type and outcome",
            events_consumed.clone(),
        );
        let sends = Family::<SendLabels, Counter>::default();
        registry.register(
            "reminder_sends",
            "WhatsApp provider calls, by provider and outcome",
            sends.clone(),
        );
        let send_retries = Family::<ProviderLabels, Counter>::default();
        registry.register(
            "reminder_send_retries",
            "Sends scheduled for another attempt after a transient error",
            send_retries.clone(),
        );
        let send_duration: HistogramFamily<ProviderLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "reminder_send_duration_seconds",
            "Duration of one provider call",
            send_duration.clone(),
        );
        let duplicates_suppressed = Counter::default();
        registry.register(
            "reminder_duplicate_reminders",
            "maintenance.due deliveries already sent or failed: outcome re-published, nothing sent",
            duplicates_suppressed.clone(),
        );
        let unknown_outcomes = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "reminder_unknown_outcomes",
            "Reminders whose provider answer was lost, settled after waiting for a status: reconciled or retried",
            unknown_outcomes.clone(),
        );
        let dead_lettered = Family::<DeadLabels, Counter>::default();
        registry.register(
            "reminder_dead_lettered",
            "Messages moved to the dead-letter queue, by role and reason",
            dead_lettered.clone(),
        );
        let tracker_batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 14));
        registry.register(
            "reminder_tracker_batch_size",
            "Events per tracker transaction",
            tracker_batch_size.clone(),
        );
        let tracker_batch_duration = latency_histogram();
        registry.register(
            "reminder_tracker_batch_duration_seconds",
            "Duration of one tracker batch transaction",
            tracker_batch_duration.clone(),
        );
        let tracker_events_counted = Counter::default();
        registry.register(
            "reminder_tracker_events_counted",
            "message.sent/message.failed events recorded for the first time",
            tracker_events_counted.clone(),
        );
        let producer_runs = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "reminder_producer_runs",
            "Producer scans, by outcome",
            producer_runs.clone(),
        );
        let producer_skipped = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "reminder_producer_skipped_vehicles",
            "Due vehicles the producer did not publish, by reason",
            producer_skipped.clone(),
        );
        let producer_scan_duration = latency_histogram();
        registry.register(
            "reminder_producer_scan_duration_seconds",
            "Duration of one producer scan, publishing included",
            producer_scan_duration.clone(),
        );
        let over_reminded_pairs = Gauge::default();
        registry.register(
            "reminder_over_reminded_pairs",
            "Customer/vehicle pairs over alerts.max_frequency in alerts.window_days",
            over_reminded_pairs.clone(),
        );
        let database_unavailable = Family::<RoleLabels, Counter>::default();
        registry.register(
            "reminder_database_unavailable",
            "Times a consumer paused because PostgreSQL was unreachable",
            database_unavailable.clone(),
        );
        let database_conflicts = Family::<RoleLabels, Counter>::default();
        registry.register(
            "reminder_database_conflicts",
            "Statements run again after a deadlock or serialization failure with a concurrent one",
            database_conflicts.clone(),
        );
        let broker_blocked = Gauge::default();
        registry.register(
            "reminder_broker_blocked",
            "1 while RabbitMQ blocks this process's connection (a memory or disk alarm): publishes and acks wait",
            broker_blocked.clone(),
        );
        let http_requests = Family::<RouteStatusLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests, by route and status",
            http_requests.clone(),
        );
        let http_request_duration: HistogramFamily<RouteLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "HTTP request duration, by route",
            http_request_duration.clone(),
        );
        let webhook_requests = Family::<WebhookLabels, Counter>::default();
        registry.register(
            "reminder_webhook_requests",
            "Provider webhook requests, by provider and outcome",
            webhook_requests.clone(),
        );
        let statuses = Family::<ProviderStatusLabels, Counter>::default();
        registry.register(
            "reminder_statuses",
            "Delivery statuses recorded for the first time, by provider and status",
            statuses.clone(),
        );
        let statuses_unmatched = Counter::default();
        registry.register(
            "reminder_statuses_unmatched",
            "Statuses for messages reminder has no record of sending",
            statuses_unmatched.clone(),
        );
        let replies = Counter::default();
        registry.register(
            "reminder_replies",
            "Customer replies recorded for the first time",
            replies.clone(),
        );
        Arc::new(Metrics {
            registry,
            events_published,
            events_consumed,
            sends,
            send_retries,
            send_duration,
            duplicates_suppressed,
            unknown_outcomes,
            dead_lettered,
            tracker_batch_size,
            tracker_batch_duration,
            tracker_events_counted,
            producer_runs,
            producer_skipped,
            producer_scan_duration,
            over_reminded_pairs,
            database_unavailable,
            database_conflicts,
            broker_blocked,
            http_requests,
            http_request_duration,
            webhook_requests,
            statuses,
            statuses_unmatched,
            replies,
        })
    }

    /// The OpenMetrics text exposition of every series (ends with `# EOF`; counters carry the
    /// `_total` suffix), served as [`CONTENT_TYPE`].
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    pub fn published(&self, event_type: &str) {
        self.events_published
            .get_or_create(&TypeLabels {
                r#type: event_type.to_string(),
            })
            .inc();
    }

    pub fn consumed(&self, role: &'static str, event_type: &str, outcome: &'static str) {
        self.events_consumed
            .get_or_create(&ConsumedLabels {
                role,
                r#type: event_type.to_string(),
                outcome,
            })
            .inc();
    }

    pub fn dead_lettered(&self, role: &'static str, reason: &str) {
        self.dead_lettered
            .get_or_create(&DeadLabels {
                role,
                reason: reason.to_string(),
            })
            .inc();
    }
}
