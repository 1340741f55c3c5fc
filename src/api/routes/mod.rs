//! One module per route of the HTTP API.

pub mod customer;
pub mod daily;
pub mod dashboard;
pub mod detail;
pub mod export;
pub mod health;
pub mod list;
pub mod messages;
pub mod metrics;
pub mod monthly;
pub mod never_reminded;
pub mod openapi;
pub mod opt_outs;
pub mod over_reminded;
pub mod replies;
pub mod report;
pub mod statistics;
