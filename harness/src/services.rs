//! The machine's RabbitMQ and PostgreSQL: where they listen, and taking them away and bringing
//! them back for the soak and the fault tests (stopped, frozen, or refusing publishes under a
//! memory alarm). Every guard undoes its fault when dropped, so a failing test or an interrupted
//! soak never leaves a service down. `rabbitmqctl` and `pg_ctlcluster` take seconds: the async
//! helpers run them off the caller's runtime, which would otherwise freeze the application and
//! the mock provider sharing it.

use std::process::{Command, Stdio};
use std::time::Duration;

/// The local PostgreSQL server, without a database name.
pub const PG_URL: &str = "postgres://postgres@127.0.0.1:5432";
/// Its maintenance database, for creating and dropping others.
pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// The local RabbitMQ, default virtual host.
pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

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

/// Stops RabbitMQ off the test's runtime: `rabbitmqctl` takes seconds, and blocking the
/// single-threaded test runtime would freeze the app and the mock provider with it (a provider
/// call that outlives its time-out is retried, and counts as a second send).
pub async fn rabbit_down() -> RabbitDown {
    tokio::task::spawn_blocking(RabbitDown::stop)
        .await
        .expect("rabbitmqctl stop_app")
}

/// Brings a stopped service back (its guard's drop) off the test's runtime.
pub async fn bring_back<T: Send + 'static>(down: T) {
    tokio::task::spawn_blocking(move || drop(down))
        .await
        .unwrap();
}

/// A RabbitMQ memory alarm while this lives: the broker blocks every connection that publishes
/// (`connection.blocked`) until it is cleared, which restores the high watermark it found (also
/// on drop, when a test fails). `rabbitmqctl` takes a second or more, so it runs off the test's
/// runtime: blocking that thread would freeze the app and the mock provider with it.
pub struct MemoryAlarm {
    watermark: Option<String>,
}

impl MemoryAlarm {
    pub async fn raise() -> MemoryAlarm {
        let watermark = tokio::task::spawn_blocking(|| {
            let out = Command::new("rabbitmqctl")
                .args([
                    "-q",
                    "eval",
                    "vm_memory_monitor:get_vm_memory_high_watermark().",
                ])
                .stdin(Stdio::null())
                .output()
                .expect("rabbitmqctl eval");
            let watermark = String::from_utf8_lossy(&out.stdout).trim().to_string();
            assert!(
                watermark.parse::<f64>().is_ok_and(|w| w > 0.0),
                "a relative memory watermark, not {watermark:?}"
            );
            assert!(
                quiet("rabbitmqctl", &["-q", "set_vm_memory_high_watermark", "0"]),
                "rabbitmqctl set_vm_memory_high_watermark 0"
            );
            watermark
        })
        .await
        .unwrap();
        MemoryAlarm {
            watermark: Some(watermark),
        }
    }

    pub async fn clear(mut self) {
        if let Some(watermark) = self.watermark.take() {
            tokio::task::spawn_blocking(move || restore_watermark(&watermark))
                .await
                .unwrap();
        }
    }
}

fn restore_watermark(watermark: &str) {
    quiet(
        "rabbitmqctl",
        &["-q", "set_vm_memory_high_watermark", watermark],
    );
}

impl Drop for MemoryAlarm {
    fn drop(&mut self) {
        if let Some(watermark) = self.watermark.take() {
            restore_watermark(&watermark);
        }
    }
}

/// RabbitMQ's Erlang VM is stopped (SIGSTOP) while this lives: its connections stay open and
/// the kernel still takes in what is written to them, but nothing is read or answered, as with a
/// hung broker or a network that drops every packet. SIGCONT on drop, also when a test fails.
pub struct BrokerFrozen {
    pid: String,
}

impl BrokerFrozen {
    /// RabbitMQ's OS pid. `rabbitmqctl` takes a second or more, so look it up before the
    /// moment to freeze comes.
    pub async fn broker_pid() -> u32 {
        let pid = tokio::task::spawn_blocking(|| {
            let out = Command::new("rabbitmqctl")
                .args(["-q", "eval", "os:getpid()."])
                .stdin(Stdio::null())
                .output()
                .expect("rabbitmqctl eval");
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .trim_matches('"')
                .to_string()
        })
        .await
        .unwrap();
        pid.parse()
            .unwrap_or_else(|_| panic!("RabbitMQ's OS pid, not {pid:?}"))
    }

    pub fn freeze(pid: u32) -> BrokerFrozen {
        let pid = pid.to_string();
        assert!(quiet("kill", &["-STOP", &pid]), "kill -STOP {pid}");
        BrokerFrozen { pid }
    }

    /// Lets the broker run again and waits until it answers.
    pub async fn thaw(self) {
        drop(self);
        tokio::task::spawn_blocking(|| {
            quiet("rabbitmqctl", &["-q", "await_startup", "--timeout", "60"])
        })
        .await
        .unwrap();
    }
}

impl Drop for BrokerFrozen {
    fn drop(&mut self) {
        quiet("kill", &["-CONT", &self.pid]);
    }
}
