//! Running a database step through outages: while PostgreSQL is unreachable the step is retried
//! with back-off, a lost conflict with a concurrent write is rerun at once, and only errors that
//! retrying cannot fix (or shutdown) reach the caller, as a [`DbError`].

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::metrics::{Metrics, RoleLabels};

/// Why a database step did not complete.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("shutting down")]
    Shutdown,
    #[error("database error: {0}")]
    Fatal(#[source] sqlx::Error),
}

/// Runs `step` until it succeeds, fails for good, or `shutdown` comes. While the database is
/// unreachable the caller holds its message (neither acked nor requeued, so it is not
/// redelivered and its delivery count does not grow); the pause is logged and counted once.
pub async fn db_retry<T, F, Fut>(
    metrics: &Metrics,
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
            Err(e) if super::is_conflict(&e) => {
                // Concurrent batches over the same rows can deadlock; that is no outage, so
                // no pause is reported and the rerun comes after milliseconds, not seconds.
                tracing::debug!(role, error = %e, "lost a conflict with a concurrent write; running it again");
                metrics
                    .database_conflicts
                    .get_or_create(&RoleLabels { role })
                    .inc();
                if !conflicts.sleep(shutdown).await {
                    return Err(DbError::Shutdown);
                }
            }
            Err(e) if super::is_transient(&e) => {
                if !reported {
                    tracing::warn!(role, error = %e, "the database is unreachable; pausing until it is back");
                    metrics
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
