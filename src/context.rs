//! What every role of one process shares: settings, the database pool, the broker connection
//! and the metrics registry. Cheap to clone.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::broker::{Backoff, Broker};
use crate::configuration::Settings;
use crate::metrics::{Metrics, RoleLabels};

#[derive(Clone)]
pub struct AppContext {
    pub settings: Arc<Settings>,
    pub pool: PgPool,
    pub broker: Broker,
    pub metrics: Arc<Metrics>,
}

/// Why a database step did not complete.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("shutting down")]
    Shutdown,
    #[error("database error: {0}")]
    Fatal(#[source] sqlx::Error),
}

impl AppContext {
    /// Runs a database step, waiting out outages: while PostgreSQL is unreachable the caller
    /// holds its message (neither acked nor requeued, so it is not redelivered and its delivery
    /// count does not grow) and retries with back-off. Errors that retrying cannot fix are
    /// returned; so is shutdown.
    pub async fn db_retry<T, F, Fut>(
        &self,
        role: &'static str,
        shutdown: &CancellationToken,
        mut step: F,
    ) -> Result<T, DbError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut conflicts = Backoff::new(Duration::from_millis(5), Duration::from_millis(500));
        let mut reported = false;
        loop {
            match step().await {
                Ok(v) => {
                    if reported {
                        tracing::info!(role, "the database is reachable again; resuming");
                    }
                    return Ok(v);
                }
                Err(e) if crate::db::is_conflict(&e) => {
                    // Concurrent batches over the same rows can deadlock; that is no outage, so
                    // no pause is reported and the rerun comes after milliseconds, not seconds.
                    tracing::debug!(role, error = %e, "lost a conflict with a concurrent write; running it again");
                    self.metrics
                        .database_conflicts
                        .get_or_create(&RoleLabels { role })
                        .inc();
                    if !conflicts.sleep(shutdown).await {
                        return Err(DbError::Shutdown);
                    }
                }
                Err(e) if crate::db::is_transient(&e) => {
                    if !reported {
                        tracing::warn!(role, error = %e, "the database is unreachable; pausing until it is back");
                        self.metrics
                            .database_unavailable
                            .get_or_create(&RoleLabels { role })
                            .inc();
                        reported = true;
                    }
                    if !backoff.sleep(shutdown).await {
                        return Err(DbError::Shutdown);
                    }
                }
                Err(e) => return Err(DbError::Fatal(e)),
            }
        }
    }
}
