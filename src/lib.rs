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
//! Modules by layer: `configuration`, `telemetry`, `metrics`, `domain` (validated types and
//! events), `db` (PostgreSQL), `broker` (RabbitMQ); by role: `producer`, `sender`, `tracker`,
//! `api`; and the process: `startup`, `cli`, `demo`, `dead_letters`, `report_cli`.

pub mod allocator;
pub mod api;
pub mod backoff;
pub mod broker;
pub mod commands;
pub mod configuration;
pub mod context;
pub mod db;
pub mod domain;
pub mod metrics;
pub mod producer;
pub mod sender;
pub mod startup;
pub mod telemetry;
pub mod tracker;
