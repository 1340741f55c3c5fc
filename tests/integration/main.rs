//! Integration tests against the real PostgreSQL and RabbitMQ (one binary, one module per area).

mod api;
mod broker;
mod cli;
mod consent;
mod dashboard;
mod database_outage;
mod dead_letters;
mod export;
mod hardening_api;
mod metrics;
mod monthly_pdf;
mod pipeline;
mod policy;
mod producer;
mod providers;
mod report_order;
mod reporting;
mod sender;
mod tracker;
mod unknown_outcome;
mod webhook;
