//! The sender's consume session on the shared loop (`broker::consume`): each delivery is one
//! unit of work, handled to its outcome and then handed to the session's `AckWindow`, which acks
//! the deliveries finished meanwhile with one multiple-ack.

use std::sync::Arc;

use lapin::message::Delivery;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument;

use super::dispatch::Next;
use super::outcome::OutcomeEvent;
use super::{ROLE, Sender};
use crate::broker::PublishError;
use crate::broker::acks::AckWindow;
use crate::broker::consume::{Consume, HandleError, Worker};
use crate::broker::delivery::printable;
use crate::db::retry::DbError;
use crate::domain::events::MAINTENANCE_DUE;
use crate::domain::{IncomingEvent, MaintenanceDue};

/// A delivery taken for handling, and the window that acks it.
pub struct Taken {
    delivery: Delivery,
    acks: Arc<AckWindow>,
}

/// One session's acks: the window, and the task that flushes it until `stop`.
pub struct Acking {
    acks: Arc<AckWindow>,
    stop: CancellationToken,
    task: AbortOnDropHandle<()>,
}

/// Why handling a reminder stopped before its delivery was settled.
#[derive(Debug, thiserror::Error)]
enum ReminderError {
    /// Shutdown or a broker failure: the shared loop knows what to do.
    #[error(transparent)]
    Session(#[from] HandleError),
    /// The database refused a step for a reason other than an outage (those are waited out):
    /// the delivery is requeued and tried again.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
}

impl From<DbError> for ReminderError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Shutdown => ReminderError::Session(HandleError::Shutdown),
            DbError::Fatal(e) => ReminderError::Database(e),
        }
    }
}

impl From<PublishError> for ReminderError {
    fn from(e: PublishError) -> Self {
        ReminderError::Session(e.into())
    }
}

impl Consume for Sender {
    const ROLE: &'static str = ROLE;
    type Work = Taken;
    type Session = Acking;

    fn start(&self, worker: &Worker) -> Acking {
        // Retry queues are declared again on the new channel when first used.
        self.declared_delays.clear();
        let acks = Arc::new(AckWindow::default());
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let (acks, stop, worker) = (acks.clone(), stop.clone(), worker.clone());
            async move {
                if let Err(e) = acks.run(&stop).await {
                    tracing::warn!(error = %e, "could not ack finished reminders; they will be redelivered");
                    worker.break_session();
                }
            }
        });
        // Dropped (and the task aborted with it) when the session's shutdown timeout passes
        // before `finish` is done: on a connection that is gone an ack can hang until the
        // broker bound, and what it would have acked comes back anyway.
        Acking {
            acks,
            stop,
            task: AbortOnDropHandle::new(task),
        }
    }

    async fn gather(
        &self,
        first: Delivery,
        _consumer: &mut lapin::Consumer,
        session: &mut Acking,
    ) -> anyhow::Result<Taken> {
        session.acks.taken(&first);
        Ok(Taken {
            delivery: first,
            acks: session.acks.clone(),
        })
    }

    async fn handle(self: Arc<Self>, work: Taken, worker: Worker) -> Result<(), HandleError> {
        let Taken { delivery, acks } = work;
        // The event id is known once the event is parsed (structured events carry it in the
        // body); until then, and for bad events, the AMQP message id or `ce-id` is logged.
        let span = tracing::info_span!("reminder", role = ROLE, event_id = tracing::field::Empty);
        async move {
            match self.process(&delivery, &worker).await {
                Ok(()) => acks.finished(&delivery),
                Err(ReminderError::Session(e)) => return Err(e),
                Err(ReminderError::Database(e)) => {
                    // Requeued rather than dead-lettered: the queue's delivery limit
                    // dead-letters it if it keeps failing.
                    tracing::error!(error = %e, "database error handling a reminder; requeueing");
                    worker.requeue(&delivery, MAINTENANCE_DUE).await?;
                    acks.settled_elsewhere(&delivery);
                }
            }
            Ok(())
        }
        .instrument(span)
        .await
    }

    async fn finish(&self, session: Acking) {
        session.stop.cancel();
        let _ = session.task.await;
    }
}

impl Sender {
    /// Handles one `maintenance.due` to the point where its delivery may be acked: its outcome
    /// published, or the message parked in a delay queue, or dead-lettered.
    async fn process(&self, delivery: &Delivery, worker: &Worker) -> Result<(), ReminderError> {
        let max_bytes = self.ctx.settings.amqp.max_message_bytes;
        let parsed = worker
            .accept(delivery, MAINTENANCE_DUE, |raw| {
                let event = IncomingEvent::parse(raw, max_bytes)?;
                let due = MaintenanceDue::from_event(&event, &self.country)?;
                Ok((event, due))
            })
            .await?;
        let Some((event, due)) = parsed else {
            return Ok(());
        };
        tracing::Span::current().record("event_id", printable(&event.id).as_str());
        let publisher = worker.publisher();
        // Outside quiet hours' window the message waits in a delay queue, not in a sending
        // slot; it comes back (re-parked in steps of the longest delay level) when it opens.
        if let Some(wait) = self.window.wait(chrono::Utc::now()) {
            tracing::info!(
                wait_secs = wait.as_secs(),
                "outside the send window; parking until it opens"
            );
            self.park(publisher, delivery, wait).await?;
            self.ctx
                .metrics
                .consumed(ROLE, MAINTENANCE_DUE, "quiet_hours");
            return Ok(());
        }
        match self.decide(&event, &due, worker.shutdown()).await? {
            Next::Publish { record, duplicate } => {
                let event = OutcomeEvent::of(&record).expect("decide only returns final records");
                let ty = event.event_type();
                publisher.publish_event(ty, &event.id, event.body).await?;
                self.ctx.metrics.published(ty);
                let outcome = if duplicate {
                    "duplicate"
                } else {
                    event.status.as_str()
                };
                self.ctx.metrics.consumed(ROLE, MAINTENANCE_DUE, outcome);
            }
            Next::Retry { delay, outcome } => {
                self.park(publisher, delivery, delay).await?;
                self.ctx.metrics.consumed(ROLE, MAINTENANCE_DUE, outcome);
            }
        }
        Ok(())
    }
}
