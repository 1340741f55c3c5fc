//! No second send on a lost answer: a provider call whose request went out but whose answer
//! was lost is recorded `unknown` and its message parked for `whatsapp.unknown_outcome_wait_secs`
//! instead of retried. When it comes back, a delivery status naming the reminder (recorded by
//! the tracker from the provider's webhook) settles it as sent with that message id; without
//! one it is retried as after any transient error, the lost call counted as an attempt.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::dispatch::Next;
use super::providers::SendError;
use super::{ROLE, Sender};
use crate::db::dispatch::{self, unknown};
use crate::db::retry::DbError;
use crate::metrics::OutcomeLabels;

impl Sender {
    /// How long a lost answer waits for a status; zero when the feature is off.
    pub(super) fn unknown_outcome_wait(&self) -> Duration {
        Duration::from_secs(self.ctx.settings.whatsapp.unknown_outcome_wait_secs)
    }

    /// Records attempt `attempt` of `reminder_id` as `unknown` after `error` and parks the
    /// message for the wait. When the attempt was taken over meanwhile (its lease ran out),
    /// the newer attempt's outcome counts.
    pub(super) async fn hold_unknown(
        &self,
        reminder_id: &str,
        attempt: i32,
        error: &SendError,
        shutdown: &CancellationToken,
    ) -> Result<Next, DbError> {
        let pool = &self.ctx.pool;
        let wait = self.unknown_outcome_wait();
        tracing::warn!(code = %error.code, error = %error.message, wait_secs = wait.as_secs(),
            "the provider's answer was lost; waiting for a delivery status before retrying");
        let still_open = self
            .ctx
            .db_retry(ROLE, shutdown, || {
                unknown::record_unknown(
                    pool,
                    reminder_id,
                    attempt,
                    &error.code,
                    &error.message,
                    wait,
                )
            })
            .await?;
        if still_open {
            return Ok(Next::Retry {
                delay: wait,
                outcome: "unknown",
            });
        }
        let record = self
            .ctx
            .db_retry(ROLE, shutdown, || dispatch::get(pool, reminder_id))
            .await?
            .ok_or(DbError::Fatal(sqlx::Error::RowNotFound))?;
        Ok(self.settled(record))
    }

    /// Settles an `unknown` reminder whose wait is over: `Some` (publish it as sent) when a
    /// delivery status named it, `None` when none did and it is now `retrying`, due at once.
    pub(super) async fn reconcile(
        &self,
        reminder_id: &str,
        shutdown: &CancellationToken,
    ) -> Result<Option<Next>, DbError> {
        let pool = &self.ctx.pool;
        let found = self
            .ctx
            .db_retry(ROLE, shutdown, || {
                unknown::status_message_id(pool, reminder_id)
            })
            .await?;
        match found {
            Some(message_id) => {
                let (record, settled_here) = self
                    .ctx
                    .db_retry(ROLE, shutdown, || {
                        unknown::record_reconciled(pool, reminder_id, &message_id)
                    })
                    .await?;
                if settled_here {
                    tracing::info!(
                        "a delivery status shows the lost call went out; recorded as sent"
                    );
                    self.count_unknown("reconciled");
                }
                Ok(Some(self.settled(record)))
            }
            None => {
                let retried = self
                    .ctx
                    .db_retry(ROLE, shutdown, || {
                        unknown::give_up_waiting(pool, reminder_id)
                    })
                    .await?;
                if retried {
                    tracing::warn!("no delivery status came for the lost call; retrying");
                    self.count_unknown("retried");
                }
                Ok(None)
            }
        }
    }

    fn count_unknown(&self, outcome: &'static str) {
        self.ctx
            .metrics
            .unknown_outcomes
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }
}
