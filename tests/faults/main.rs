//! Fault tests: they stop and start the shared RabbitMQ and PostgreSQL and kill processes, so
//! they are ignored in the plain `cargo test` run and run on their own, one at a time:
//! `cargo test --test faults -- --ignored --test-threads=1`. Each brings the service it took
//! away back when it ends, also when it fails.

mod broker;
mod crash;
mod database;
mod support;
