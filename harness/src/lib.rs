//! What reminder's integration tests, fault tests, benchmark (`reminder-bench`) and soak
//! (`reminder-soak`) share, so each exists once: a private place on the shared PostgreSQL and
//! RabbitMQ per run with one teardown (`scratch`, and `test_env` for tests), a plain RabbitMQ
//! client (`amqp`), sample events (`events`), the mock WhatsApp providers (`mock_provider`),
//! bulk data (`fixtures`), what the report counted (`tally`), where the machine's services listen
//! (`services`), a TCP proxy to cut, reset, freeze or half-break one process's connection to a
//! service (`tcp_proxy`), private PostgreSQL and RabbitMQ instances for fault tests and the soak
//! (`private`), CPU and memory accounting (`resources`) and polling (`wait`).
//!
//! Tests import it whole: `use reminder_harness::prelude::*;`.

pub mod amqp;
pub mod events;
pub mod fixtures;
pub mod mock_provider;
pub mod private;
pub mod process;
pub mod resources;
pub mod scratch;
pub mod services;
pub mod tally;
pub mod tcp_proxy;
pub mod test_env;
pub mod wait;

/// What most tests use, in one import.
pub mod prelude {
    pub use crate::amqp::{TestAmqp, header_text, long_string};
    pub use crate::events::{maintenance_due, message_sent};
    pub use crate::mock_provider::scripted::{
        cloud_api_error, cloud_api_ok, messages_path, mock_cloud_api_ok,
    };
    pub use crate::mock_provider::{ACCESS_TOKEN, PHONE_NUMBER_ID};
    pub use crate::services::{AMQP_URL, PG_ADMIN_URL};
    pub use crate::test_env::{TestApp, TestEnv, init_logs};
    pub use crate::wait::wait_until;
}
