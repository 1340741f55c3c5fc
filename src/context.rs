//! What every role of one process shares: settings, the database pool, the broker connection
//! and the metrics registry. Cheap to clone.

use std::future::Future;
use std::sync::Arc;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::configuration::Settings;
use crate::db::retry::{DbError, db_retry};
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct AppContext {
    pub settings: Arc<Settings>,
    pub pool: PgPool,
    pub broker: Broker,
    pub metrics: Arc<Metrics>,
}

impl AppContext {
    /// Runs a database step, waiting out outages and counting them in this process's metrics
    /// (`db::retry::db_retry`).
    pub async fn db_retry<T, F, Fut>(
        &self,
        role: &'static str,
        shutdown: &CancellationToken,
        step: F,
    ) -> Result<T, DbError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        db_retry(&self.metrics, role, shutdown, step).await
    }
}
