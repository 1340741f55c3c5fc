//! Integration tests against the real PostgreSQL and RabbitMQ (one binary, one module per area).

mod api;
mod helpers;
mod pipeline;
