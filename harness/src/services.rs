//! Taking the machine's RabbitMQ and PostgreSQL away and bringing them back, for the soak and
//! the fault tests (`tests/faults` includes this file). The guards restart the service when
//! dropped, so a failing test or an interrupted soak never leaves it down.

use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs a command quietly; true when it succeeded.
pub fn quiet(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The version directory of the local PostgreSQL cluster (`/etc/postgresql/<version>`).
fn pg_cluster() -> String {
    std::fs::read_dir("/etc/postgresql")
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| e.ok()?.file_name().into_string().ok())
        .unwrap_or_else(|| "15".into())
}

pub fn stop_rabbit() -> bool {
    quiet("rabbitmqctl", &["-q", "stop_app"])
}

/// Starts RabbitMQ's application and waits until it accepts connections.
pub fn start_rabbit() {
    quiet("rabbitmqctl", &["-q", "start_app"]);
    quiet("rabbitmqctl", &["-q", "await_startup", "--timeout", "120"]);
}

/// Stops PostgreSQL, cutting every connection (`-m fast`).
pub fn stop_postgres() -> bool {
    let version = pg_cluster();
    quiet(
        "pg_ctlcluster",
        &[
            "--skip-systemctl-redirect",
            &version,
            "main",
            "stop",
            "-m",
            "fast",
        ],
    )
}

/// Starts PostgreSQL and waits until it accepts connections.
pub fn start_postgres() {
    let version = pg_cluster();
    quiet(
        "pg_ctlcluster",
        &["--skip-systemctl-redirect", &version, "main", "start"],
    );
    for _ in 0..120 {
        if quiet("pg_isready", &["-h", "127.0.0.1", "-p", "5432", "-q"]) {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// RabbitMQ's application is stopped while this lives.
pub struct RabbitDown(());

impl RabbitDown {
    pub fn stop() -> RabbitDown {
        assert!(stop_rabbit(), "rabbitmqctl stop_app");
        RabbitDown(())
    }
}

impl Drop for RabbitDown {
    fn drop(&mut self) {
        start_rabbit();
    }
}

/// PostgreSQL is stopped while this lives.
pub struct PostgresDown(());

impl PostgresDown {
    pub fn stop() -> PostgresDown {
        assert!(stop_postgres(), "pg_ctlcluster stop");
        PostgresDown(())
    }
}

impl Drop for PostgresDown {
    fn drop(&mut self) {
        start_postgres();
    }
}

/// Peak resident memory of a process so far (`VmHWM`), in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
