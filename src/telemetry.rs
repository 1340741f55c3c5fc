//! Logging with `tracing`: human-readable by default, JSON lines with
//! `telemetry.format = "json"`. Filter from `RUST_LOG`, else `telemetry.level`, with the AMQP
//! client's own lines off unless the filter names them (`filter`). Logs go to stderr so
//! commands that print results (`report export`, `dead list`) keep stdout clean.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::ParseError;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::configuration::{LogFormat, TelemetrySettings};

/// Installs the global subscriber. Safe to call more than once (later calls do nothing), which
/// tests rely on.
pub fn init(settings: &TelemetrySettings) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|spec| filter(&spec).ok())
        .or_else(|| filter(&settings.level).ok())
        .unwrap_or_else(|| filter("info").expect("a valid filter"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_span_events(FmtSpan::NONE);
    let _ = match settings.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}

/// lapin logs a connection the broker closed at ERROR from inside its I/O loop, four lines per
/// broker restart, although reminder recovers the connection and logs the loss itself at WARN
/// ("lost the RabbitMQ connection"). A recovered restart is not an error and should not page
/// anyone, so lapin's own lines are off unless the filter names lapin (`info,lapin=warn`).
fn filter(spec: &str) -> Result<EnvFilter, ParseError> {
    let filter = EnvFilter::try_new(spec)?;
    Ok(if spec.contains("lapin") {
        filter
    } else {
        filter.add_directive("lapin=off".parse().expect("a valid directive"))
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::filter;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What a broker restart logs under the filter `spec`.
    fn broker_restart_logged_with(spec: &str) -> String {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(filter(spec).unwrap())
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(target: "lapin::io_loop", "error doing IO");
            tracing::warn!(target: "reminder::broker", "lost the RabbitMQ connection");
        });
        String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn a_broker_restart_logs_reminders_warning_and_not_lapins_error_lines() {
        for spec in ["info", "warn", "reminder=debug,warn"] {
            let logged = broker_restart_logged_with(spec);
            assert!(
                logged.contains("lost the RabbitMQ connection"),
                "{spec}: {logged}"
            );
            assert!(!logged.contains("error doing IO"), "{spec}: {logged}");
        }
    }

    #[test]
    fn lapins_own_lines_come_back_when_the_filter_names_lapin() {
        let logged = broker_restart_logged_with("info,lapin=warn");
        assert!(logged.contains("error doing IO"), "{logged}");
        assert!(logged.contains("lost the RabbitMQ connection"), "{logged}");
    }
}
