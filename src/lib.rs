//! reminder: WhatsApp maintenance reminders for a vehicle workshop, with exact per customer and
//! vehicle frequency tracking.
//!
//! ```text
//!  PostgreSQL            RabbitMQ (topic exchange)                         PostgreSQL
//!  vehicles ─producer─▶ maintenance.due ─sender─▶ WhatsApp provider
//!                                          │  └──▶ message.sent / message.failed ─tracker─▶ whatsapp_report
//!                                          └─ bad events ─▶ {prefix}dead                      message_log
//!                                                                         api (read-only) ◀──┘
//! ```
//!
//! The modules, lower layers first; each uses only modules listed before it, and no role uses
//! another:
//!
//! - layers: `domain` (validated types, the events and the message template), `configuration`
//!   (layered settings, validated at start-up), `telemetry` (logs), `metrics` (Prometheus
//!   series), `backoff` (retry delays), `db` (PostgreSQL: pool, migrations, the queries of each
//!   table family, retrying through outages), `broker` (RabbitMQ: the supervised connection,
//!   topology, confirmed publishing, and the consume loop the consuming roles share), `context`
//!   (what the roles of one process share), `http_listener` (the HTTP listener every endpoint
//!   shares: header time-out, connection cap, graceful end);
//! - roles: `producer` (the scan publishing `maintenance.due`), `sender` (sends reminders and
//!   publishes their outcome), `tracker` (counts outcomes into the report and records delivery
//!   statuses and replies), `api` (the read-only HTTP API and dashboard), `webhook` (hears the
//!   provider's statuses and customers' replies and publishes them as events), `reporting` (the
//!   monthly management report, the never-reminded list, and the retention of the message history);
//! - process: `startup` (builds and runs any mix of roles), `commands` (the command line), and
//!   `allocator` (the allocator every binary ships).

pub mod backoff;
pub mod broker;
pub mod configuration;
pub mod context;
pub mod db;
pub mod domain;
pub mod http_listener;
pub mod metrics;
pub mod telemetry;

pub mod api;
pub mod producer;
pub mod reporting;
pub mod sender;
pub mod tracker;
pub mod webhook;

pub mod allocator;
pub mod commands;
pub mod startup;
