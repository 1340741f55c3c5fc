//! The faults the soak injects in turn: a RabbitMQ node of its private cluster stopped, its
//! private PostgreSQL stopped, the sender killed, the tracker killed. The machine's own
//! services are never touched.

use std::time::Duration;

use reminder_harness::private::{PrivatePostgres, RabbitCluster};

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

/// The soak's private PostgreSQL and three-node RabbitMQ cluster; dropped (killed and
/// removed) however the soak ends.
pub struct Services {
    pub pg: PrivatePostgres,
    pub rabbit: RabbitCluster,
}

impl Services {
    pub async fn start() -> Services {
        let (pg, rabbit) = tokio::join!(
            PrivatePostgres::start_async(),
            RabbitCluster::start_async(3)
        );
        Services { pg, rabbit }
    }
}

impl Fault {
    /// Injects this fault; an outage lasts `outage` and ends with the service back up. The
    /// `round`th broker fault stops node `round % 3`: the first is the one every role's
    /// connection uses (the first URL of the list), the others are peers.
    pub async fn inject(
        self,
        round: u32,
        outage: Duration,
        services: &Services,
        sender: &mut Role,
        tracker: &mut Role,
    ) -> anyhow::Result<()> {
        match self {
            Fault::Broker => {
                let node = round as usize % services.rabbit.len();
                println!(
                    "  fault: RabbitMQ node {} of {} stopped for {} s",
                    node + 1,
                    services.rabbit.len(),
                    outage.as_secs()
                );
                services.rabbit.stop(node).await;
                tokio::time::sleep(outage).await;
                services.rabbit.start_node(node).await;
            }
            Fault::Database => {
                println!("  fault: PostgreSQL stopped for {} s", outage.as_secs());
                services.pg.stop().await;
                tokio::time::sleep(outage).await;
                services.pg.start_again().await;
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
