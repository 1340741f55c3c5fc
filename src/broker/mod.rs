//! RabbitMQ plumbing shared by every role: one supervised connection per process that fails
//! over between cluster nodes and reconnects with back-off, the topology, confirmed publishing,
//! and the helpers that read deliveries and dead-letter them with a reason.
//!
//! Reconnection is explicit rather than lapin's auto-recovery: when the connection drops, every
//! role's session ends, unacked deliveries go back to their queues, and each role opens fresh
//! channels, re-declares its topology and resumes consuming. Redelivery is safe because every
//! stage is idempotent, and it is the simplest thing to reason about at each crash point.
//! Sessions do not rely on lapin reporting the loss on each consumer and pending operation: the
//! supervisor cancels the lost connection's token (`Broker::session_channel`), and every broker
//! operation a session awaits is bounded (`answered`).
//!
//! `connection` supervises the connection, `answer` bounds every wait for RabbitMQ, `session`
//! opens and ends a consuming role's channels, `topology` declares exchanges and queues,
//! `publisher` and `pipeline` publish with confirms, `delivery` reads and dead-letters
//! deliveries, and `acks` coalesces the sender's acks.

pub mod acks;
pub mod answer;
pub mod connection;
pub mod consume;
pub mod delivery;
pub mod pipeline;
pub mod publisher;
pub mod session;
pub mod topology;

pub use answer::{ANSWER_TIMEOUT, answered, blocking};
pub use connection::{Broker, node_host};
pub use delivery::{DeliveryExt, dead_letter};
pub use publisher::{PublishError, Publisher};
pub use session::{Session, end_session, run_sessions};
pub use topology::Topology;
