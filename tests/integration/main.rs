//! Integration tests against the real PostgreSQL and RabbitMQ (one binary, one module per area).

mod api;
mod broker;
mod cli;
mod consent;
mod dashboard;
mod export;
mod helpers;
mod metrics;
mod pipeline;
mod policy;
mod producer;
mod providers;
mod report_order;
mod sender;
mod tracker;
