//! The tracker's handling of what the provider reported back: each delivery of a batch read as
//! the event its type names, and the statuses and replies of a batch written one statement per
//! kind (`db::hearing`), with the same isolation of events the database refuses as the outcomes.

use std::time::Duration;

use lapin::message::Delivery;
use tokio_util::sync::CancellationToken;

use super::{ROLE, Tracker};
use crate::broker::DeliveryExt;
use crate::broker::consume::{HandleError, Worker};
use crate::db::hearing::{record_replies, record_statuses};
use crate::db::retry::DbError;
use crate::domain::cloud_event::{EventError, IncomingEvent};
use crate::domain::events::{
    CONSENT_CHANGED, MESSAGE_FAILED, MESSAGE_SENT, MESSAGE_STATUS, REPLY_RECEIVED,
};
use crate::domain::{MessageOutcome, MessageStatus, ReplyReceived};
use crate::metrics::{ConsumedLabels, ProviderStatusLabels};

/// How long after recording statuses that found no message they are applied again: long enough
/// for a concurrent batch writing their `message.sent` to have committed.
const REAPPLY_AFTER: Duration = Duration::from_secs(3);

/// One tracked event, by its type.
#[derive(Debug)]
pub enum Tracked {
    Outcome(MessageOutcome),
    Status(MessageStatus),
    Reply(ReplyReceived),
    /// A consent change, which the tracker's consent module applies.
    Consent,
}

impl Tracked {
    pub fn parse(event: IncomingEvent) -> Result<Tracked, EventError> {
        match event.ty.as_str() {
            MESSAGE_SENT | MESSAGE_FAILED => {
                MessageOutcome::from_event(&event).map(Tracked::Outcome)
            }
            MESSAGE_STATUS => MessageStatus::from_event(&event).map(Tracked::Status),
            REPLY_RECEIVED => ReplyReceived::from_event(&event).map(Tracked::Reply),
            CONSENT_CHANGED => Ok(Tracked::Consent),
            _ => event
                .expect_type(&[
                    MESSAGE_SENT,
                    MESSAGE_FAILED,
                    MESSAGE_STATUS,
                    REPLY_RECEIVED,
                    CONSENT_CHANGED,
                ])
                .map(|_| unreachable!("the type matched none of these")),
        }
    }
}

/// A batch's events, split by kind, each with its delivery.
#[derive(Default)]
pub struct Split<'a> {
    pub outcomes: Vec<(&'a Delivery, MessageOutcome)>,
    pub statuses: Vec<(&'a Delivery, MessageStatus)>,
    pub replies: Vec<(&'a Delivery, ReplyReceived)>,
}

impl<'a> Split<'a> {
    pub fn push(&mut self, delivery: &'a Delivery, tracked: Tracked) {
        match tracked {
            Tracked::Outcome(o) => self.outcomes.push((delivery, o)),
            Tracked::Status(s) => self.statuses.push((delivery, s)),
            Tracked::Reply(r) => self.replies.push((delivery, r)),
            // The tracker's consent module takes these; they never reach the split.
            Tracked::Consent => {}
        }
    }
}

impl Tracker {
    /// Records the batch's statuses; on a database refusal that is not an outage, bisects to
    /// isolate and dead-letter the statuses the database will not take.
    pub(super) async fn apply_statuses(
        &self,
        worker: &Worker,
        items: &[(&Delivery, MessageStatus)],
        shutdown: &CancellationToken,
    ) -> Result<(), HandleError> {
        if items.is_empty() {
            return Ok(());
        }
        let statuses: Vec<MessageStatus> = items.iter().map(|(_, s)| s.clone()).collect();
        let pool = &self.ctx.pool;
        match self
            .ctx
            .db_retry(ROLE, shutdown, || record_statuses(pool, &statuses))
            .await
        {
            Ok(applied) => {
                let m = &self.ctx.metrics;
                let mut unmatched = Vec::new();
                for (event_id, known) in &applied.recorded {
                    let Some(s) = statuses.iter().find(|s| &s.event_id == event_id) else {
                        continue;
                    };
                    m.statuses
                        .get_or_create(&ProviderStatusLabels {
                            provider: s.provider.clone(),
                            status: s.status.as_str(),
                        })
                        .inc();
                    if !known {
                        unmatched.push((s.event_id.clone(), s.reminder_id.clone()));
                    }
                }
                self.count_kind(MESSAGE_STATUS, statuses.len(), applied.recorded.len());
                if !unmatched.is_empty() {
                    self.reapply_later(unmatched);
                }
                Ok(())
            }
            Err(DbError::Shutdown) => Err(HandleError::Shutdown),
            Err(DbError::Fatal(e)) if items.len() == 1 => self.refused(worker, items[0].0, e).await,
            Err(DbError::Fatal(e)) => {
                tracing::warn!(error = %e, size = items.len(), "the database refused a batch; splitting it");
                let (left, right) = items.split_at(items.len() / 2);
                Box::pin(self.apply_statuses(worker, left, shutdown)).await?;
                Box::pin(self.apply_statuses(worker, right, shutdown)).await
            }
        }
    }

    /// Records the batch's replies, attributed to the messages they answer.
    pub(super) async fn apply_replies(
        &self,
        worker: &Worker,
        items: &[(&Delivery, ReplyReceived)],
        shutdown: &CancellationToken,
    ) -> Result<(), HandleError> {
        if items.is_empty() {
            return Ok(());
        }
        let replies: Vec<ReplyReceived> = items.iter().map(|(_, r)| r.clone()).collect();
        let pool = &self.ctx.pool;
        match self
            .ctx
            .db_retry(ROLE, shutdown, || record_replies(pool, &replies))
            .await
        {
            Ok(applied) => {
                self.ctx.metrics.replies.inc_by(applied.recorded);
                self.count_kind(REPLY_RECEIVED, replies.len(), applied.recorded as usize);
                Ok(())
            }
            Err(DbError::Shutdown) => Err(HandleError::Shutdown),
            Err(DbError::Fatal(e)) if items.len() == 1 => self.refused(worker, items[0].0, e).await,
            Err(DbError::Fatal(e)) => {
                tracing::warn!(error = %e, size = items.len(), "the database refused a batch; splitting it");
                let (left, right) = items.split_at(items.len() / 2);
                Box::pin(self.apply_replies(worker, left, shutdown)).await?;
                Box::pin(self.apply_replies(worker, right, shutdown)).await
            }
        }
    }

    /// Dead-letters an event the database refused (for a reason other than an outage).
    async fn refused(
        &self,
        worker: &Worker,
        delivery: &Delivery,
        error: sqlx::Error,
    ) -> Result<(), HandleError> {
        tracing::warn!(event_id = %delivery.id_hint(), error = %error, "the database refused an event; dead-lettering it");
        let reason = format!("the database refused the event: {error}");
        worker
            .dead_letter(delivery, "database_rejected", &reason)
            .await
    }

    fn count_kind(&self, ty: &str, total: usize, new: usize) {
        let m = &self.ctx.metrics;
        let count = |ty: &str, outcome, n: usize| {
            if n > 0 {
                m.events_consumed
                    .get_or_create(&ConsumedLabels {
                        role: ROLE,
                        r#type: ty.to_string(),
                        outcome,
                    })
                    .inc_by(n as u64);
            }
        };
        count(ty, "counted", new);
        count("any", "duplicate", total.saturating_sub(new));
    }

    /// Applies statuses that found no message again once concurrent batches have committed; the
    /// ones still without a message are statuses of messages reminder did not send (or has not
    /// recorded yet), counted in `reminder_statuses_unmatched_total`.
    fn reapply_later(&self, statuses: Vec<(String, Option<String>)>) {
        let pool = self.ctx.pool.clone();
        let metrics = self.ctx.metrics.clone();
        self.reapplies.spawn(async move {
            tokio::time::sleep(REAPPLY_AFTER).await;
            match crate::db::hearing::reapply_statuses(&pool, &statuses).await {
                Ok(unknown) => {
                    metrics.statuses_unmatched.inc_by(unknown);
                }
                Err(e) => tracing::warn!(error = %e, "could not apply statuses again"),
            }
        });
    }
}
