//! Where the machine's RabbitMQ and PostgreSQL listen, which the ordinary tests and the
//! benchmark share (each in a `Scratch` of its own). Nothing here stops or disturbs them: the
//! fault tests and the soak take private instances away instead (`crate::private`).

/// The local PostgreSQL server, without a database name.
pub const PG_URL: &str = "postgres://postgres@127.0.0.1:5432";
/// Its maintenance database, for creating and dropping others.
pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// The local RabbitMQ, default virtual host.
pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

pub use crate::private::quiet;
