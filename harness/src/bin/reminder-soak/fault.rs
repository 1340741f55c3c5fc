//! The faults the soak injects in turn: RabbitMQ stopped, PostgreSQL stopped, the sender killed,
//! the tracker killed.

use std::time::Duration;

use reminder_harness::services::{self, start_postgres, start_rabbit};

use crate::role::Role;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    Broker,
    Database,
    KillSender,
    KillTracker,
}

pub const FAULTS: [Fault; 4] = [
    Fault::Broker,
    Fault::Database,
    Fault::KillSender,
    Fault::KillTracker,
];

impl Fault {
    /// Injects this fault; an outage lasts `outage` and ends with the service back up.
    pub async fn inject(
        self,
        outage: Duration,
        sender: &mut Role,
        tracker: &mut Role,
    ) -> anyhow::Result<()> {
        match self {
            Fault::Broker => {
                println!("  fault: RabbitMQ stopped for {} s", outage.as_secs());
                services::stop_rabbit();
                tokio::time::sleep(outage).await;
                tokio::task::spawn_blocking(start_rabbit).await?;
            }
            Fault::Database => {
                println!("  fault: PostgreSQL stopped for {} s", outage.as_secs());
                services::stop_postgres();
                tokio::time::sleep(outage).await;
                tokio::task::spawn_blocking(start_postgres).await?;
            }
            Fault::KillSender => {
                println!("  fault: sender killed (SIGKILL) and restarted");
                sender.kill_and_restart()?;
            }
            Fault::KillTracker => {
                println!("  fault: tracker killed (SIGKILL) and restarted");
                tracker.kill_and_restart()?;
            }
        }
        Ok(())
    }
}

/// Brings both services back however the soak ends.
pub struct ServicesBack;

impl Drop for ServicesBack {
    fn drop(&mut self) {
        start_rabbit();
        start_postgres();
    }
}
