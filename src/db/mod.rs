//! PostgreSQL: the pool, creating the database when it is missing, migrations, and the queries
//! of each table family in its own module.

pub mod consent;
pub mod dispatch;
pub mod group_commit;
pub mod hearing;
pub mod master_data;
pub mod producer_runs;
pub mod reports;
pub mod retry;
pub mod tracking;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

use crate::configuration::DatabaseSettings;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Connection options from the URL, with sqlx's per-statement logging turned down to debug.
pub fn connect_options(url: &str) -> anyhow::Result<PgConnectOptions> {
    Ok(PgConnectOptions::from_str(url)
        .context("database.url is not a PostgreSQL URL")?
        .log_statements(tracing::log::LevelFilter::Debug)
        .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(2)))
}

/// A lazily connecting pool: roles start even while PostgreSQL is down and wait for it. Every
/// session cancels a statement running past `database.statement_timeout_ms`, so a database
/// that stops answering fails the step (an outage, retried) instead of hanging it.
pub fn pool(settings: &DatabaseSettings) -> anyhow::Result<PgPool> {
    let options = connect_options(&settings.url)?.options([(
        "statement_timeout",
        settings.statement_timeout_ms.to_string(),
    )]);
    Ok(PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(Duration::from_millis(settings.acquire_timeout_ms))
        .connect_lazy_with(options))
}

/// A configuration the database refuses for good (TLS demanded by `sslmode` that the server
/// does not offer, a rejected certificate, a malformed option), as opposed to an outage.
#[derive(Debug, thiserror::Error)]
#[error("database.url: cannot connect to PostgreSQL with these settings: {0}")]
pub struct ConnectRefused(#[source] sqlx::Error);

/// Tries one connection at start-up. A TLS or configuration failure is permanent and stops
/// start-up with its reason; an unreachable database is not (roles start and wait for it).
pub async fn check_connect(settings: &DatabaseSettings) -> Result<(), ConnectRefused> {
    match sqlx::PgConnection::connect_with(
        &connect_options(&settings.url)
            .map_err(|e| ConnectRefused(sqlx::Error::Configuration(e.into())))?,
    )
    .await
    {
        Ok(conn) => {
            conn.close().await.ok();
            Ok(())
        }
        Err(e @ (sqlx::Error::Tls(_) | sqlx::Error::Configuration(_))) => Err(ConnectRefused(e)),
        // The TLS layer reports a certificate it cannot trust as invalid data on the socket;
        // an unreachable server gives refused, reset or timed-out instead.
        Err(sqlx::Error::Io(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
            Err(ConnectRefused(sqlx::Error::Io(e)))
        }
        Err(_) => Ok(()),
    }
}

/// A lazily connecting pool whose sessions cannot write (`default_transaction_read_only`), do
/// not JIT-compile, and cancel any statement running longer than `statement_timeout`: the HTTP
/// API's, so nothing a client sends can change data or keep a query running after its request
/// gave up.
pub fn read_only_pool(
    settings: &DatabaseSettings,
    connections: u32,
    statement_timeout: Duration,
) -> anyhow::Result<PgPool> {
    let options = connect_options(&settings.url)?.options([
        ("default_transaction_read_only", "on".to_string()),
        // Compiling a plan costs tens of milliseconds and never pays off for these short reads.
        ("jit", "off".to_string()),
        (
            "statement_timeout",
            statement_timeout.as_millis().to_string(),
        ),
    ]);
    Ok(read_pool_options(settings, connections).connect_lazy_with(options))
}

/// How long a pooled connection may sit idle before it is checked (a round trip) on its way
/// out of the pool.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// Pool settings of the API. sqlx checks each connection with a round trip every time it leaves
/// the pool by default, which is one extra round trip per request; here only connections idle
/// for a while (long enough for PostgreSQL to have restarted under them) are checked, and one
/// that breaks under load fails its request with a 503. The roles' pool keeps sqlx's check:
/// their statements are few and long next to the round trip, and with it a connection
/// PostgreSQL dropped is replaced before a statement instead of failing one.
fn read_pool_options(settings: &DatabaseSettings, connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(Duration::from_millis(settings.acquire_timeout_ms))
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > PING_AFTER_IDLE {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}

/// Creates the database named in the URL if it does not exist (connecting to the `postgres`
/// maintenance database to do so).
pub async fn create_database_if_missing(url: &str) -> anyhow::Result<()> {
    let options = connect_options(url)?;
    let name = options
        .get_database()
        .context("database.url names no database")?
        .to_string();
    let mut conn = sqlx::PgConnection::connect_with(&options.clone().database("postgres"))
        .await
        .context("cannot connect to PostgreSQL")?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        match sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
        {
            Ok(_) => tracing::info!(database = %name, "created the database"),
            // Another process created it between our check and our CREATE.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
            Err(e) => return Err(e).context("cannot create the database"),
        }
    }
    conn.close().await.ok();
    Ok(())
}

/// Creates the database if needed and applies every migration. Safe to run from many processes
/// at once: sqlx takes an advisory lock.
pub async fn migrate(settings: &DatabaseSettings) -> anyhow::Result<PgPool> {
    check_connect(settings).await?;
    create_database_if_missing(&settings.url).await?;
    let pool = pool(settings)?;
    MIGRATOR
        .run(&pool)
        .await
        .context("applying database migrations")?;
    Ok(pool)
}

/// True when running the statement again can work: the database is unreachable right now,
/// refuses writes (a demoted primary still answering behind an address or a pooler), stopped
/// answering in time (`statement_timeout`), or the statement lost a conflict with a concurrent
/// one (`is_conflict`). A TLS failure counts too: one caused by configuration is caught by
/// `check_connect` at start-up, so what is left is a handshake cut by the network.
pub fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(e) => {
            // Class 08 connection exceptions, 57P0x shutdown/crash, 57014 statement cancelled
            // (statement_timeout), 25006 read-only transaction, 53 resources.
            is_conflict(error)
                || e.code().is_some_and(|c| {
                    c.starts_with("08")
                        || c.starts_with("57P")
                        || c.starts_with("53")
                        || c == "57014"
                        || c == "25006"
                })
        }
        _ => false,
    }
}

/// True for a deadlock or serialization failure (40P01, 40001): the database is fine, this
/// transaction lost a race with a concurrent one and the rerun normally succeeds at once.
pub fn is_conflict(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(e) => e.code().is_some_and(|c| c == "40001" || c == "40P01"),
        _ => false,
    }
}

/// Pings the database; used by `/readyz`.
pub async fn ping(pool: &PgPool) -> bool {
    tokio::time::timeout(
        Duration::from_secs(2),
        sqlx::query("SELECT 1").execute(pool),
    )
    .await
    .is_ok_and(|r| r.is_ok())
}
