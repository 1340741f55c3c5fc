//! Fault tests: each starts its own PostgreSQL server and RabbitMQ node or cluster
//! (`reminder_harness::private`, in a temporary directory on free ports) and stops, kills,
//! freezes or cuts them off, and kills `reminder` processes; the machine's own PostgreSQL and
//! RabbitMQ are never touched. They need root (the private servers run as the `postgres` and
//! `rabbitmq` users) and take a while, so they are ignored in the plain `cargo test` run and run
//! on their own, one at a time: `cargo test --test faults -- --ignored --test-threads=1`.
//! Everything a test started goes away when it ends, also when it fails.

mod broker;
mod cluster;
mod crash;
mod database;
mod support;
