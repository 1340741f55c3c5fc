//! Integration tests against the real PostgreSQL and RabbitMQ (one binary, one module per area).

mod helpers;
mod pipeline;
mod providers;
mod sender;
