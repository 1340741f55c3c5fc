//! Integration tests against the real PostgreSQL and RabbitMQ (one binary, one module per area).

mod dashboard;
mod export;
mod helpers;
mod metrics;
mod pipeline;
