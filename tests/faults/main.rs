//! Fault tests: they stop and start the shared RabbitMQ and PostgreSQL, so they are ignored in
//! the plain `cargo test` run and run on their own, one at a time:
//! `cargo test --test faults -- --ignored --test-threads=1`.

#[path = "../integration/helpers.rs"]
mod helpers;
