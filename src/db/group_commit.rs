//! Group commit: many concurrent callers' single-row writes gathered into one statement.
//!
//! The sender handles up to `sender.concurrency` reminders at once and each needs two small
//! writes (claim, record). One statement and one commit per write made PostgreSQL's per-statement
//! and per-commit work the largest CPU cost per reminder. A `GroupCommit` takes each request
//! through a channel; a worker takes whatever is waiting (up to `max_batch`) and runs it as one
//! statement, with at most `in_flight` statements at a time, so batches grow by themselves under
//! load and stay single requests when idle (nothing waits for a batch to fill).
//!
//! A batch the database refuses is run again request by request, so each caller gets its own
//! answer: one request the database refuses fails alone instead of taking its batch with it; a
//! batch that lost a deadlock is run again the same way. An outage (`db::is_transient`, not a
//! conflict) reaches every caller of the batch at once, as an error its retry loop waits out.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};

/// One kind of write that can be done for a batch of requests at once.
pub trait Batched: Send + Sync + 'static {
    type Request: Send + Sync + 'static;
    type Response: Send + 'static;

    /// Runs the whole batch; answers in the order of `requests`.
    fn run_batch(
        &self,
        requests: &[Self::Request],
    ) -> impl Future<Output = Result<Vec<Self::Response>, sqlx::Error>> + Send;

    /// Runs one request on its own (after its batch failed).
    fn run_one(
        &self,
        request: &Self::Request,
    ) -> impl Future<Output = Result<Self::Response, sqlx::Error>> + Send;
}

type Reply<B> = oneshot::Sender<Result<<B as Batched>::Response, sqlx::Error>>;

pub struct GroupCommit<B: Batched> {
    tx: mpsc::UnboundedSender<(B::Request, Reply<B>)>,
}

impl<B: Batched> GroupCommit<B> {
    /// Starts the worker on the current runtime; it ends when the `GroupCommit` is dropped.
    pub fn start(writer: B, max_batch: usize, in_flight: usize) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(worker(
            Arc::new(writer),
            rx,
            max_batch.max(1),
            in_flight.max(1),
        ));
        GroupCommit { tx }
    }

    pub async fn call(&self, request: B::Request) -> Result<B::Response, sqlx::Error> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((request, reply))
            .map_err(|_| sqlx::Error::PoolClosed)?;
        // The worker answers every request it takes, unless its runtime is shutting down.
        answer.await.unwrap_or(Err(sqlx::Error::PoolClosed))
    }
}

async fn worker<B: Batched>(
    writer: Arc<B>,
    mut rx: mpsc::UnboundedReceiver<(B::Request, Reply<B>)>,
    max_batch: usize,
    in_flight: usize,
) {
    let slots = Arc::new(Semaphore::new(in_flight));
    loop {
        // A free slot first: while every slot is busy, requests pile up into the next batch.
        let permit = slots
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let Some(first) = rx.recv().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let writer = writer.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let (requests, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
            match writer.run_batch(&requests).await {
                Ok(responses) if responses.len() == requests.len() => {
                    for (reply, response) in replies.into_iter().zip(responses) {
                        let _ = reply.send(Ok(response));
                    }
                }
                // An outage reaches every caller at once (one by one, each would wait out its
                // own connection time-out); their retry loops wait it out and ask again. A
                // deadlock is no outage: the requests are simply run again, one by one below.
                Err(e) if super::is_transient(&e) && !super::is_conflict(&e) => {
                    for reply in replies {
                        let _ =
                            reply.send(Err(sqlx::Error::Io(std::io::Error::other(e.to_string()))));
                    }
                }
                result => {
                    if let Err(e) = &result {
                        tracing::debug!(error = %e, size = requests.len(), "a batch was refused; running its requests one by one");
                    }
                    for (request, reply) in requests.iter().zip(replies) {
                        let _ = reply.send(writer.run_one(request).await);
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Doubles numbers; a batch holding 13 fails, and 13 alone fails too.
    struct Doubler {
        batches: Arc<Mutex<Vec<usize>>>,
    }

    impl Batched for Doubler {
        type Request = u32;
        type Response = u32;

        async fn run_batch(&self, requests: &[u32]) -> Result<Vec<u32>, sqlx::Error> {
            self.batches.lock().unwrap().push(requests.len());
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            if requests.contains(&13) {
                return Err(sqlx::Error::ColumnNotFound("13".into()));
            }
            Ok(requests.iter().map(|r| r * 2).collect())
        }

        async fn run_one(&self, request: &u32) -> Result<u32, sqlx::Error> {
            if *request == 13 {
                return Err(sqlx::Error::ColumnNotFound("13".into()));
            }
            Ok(request * 2)
        }
    }

    #[tokio::test]
    async fn concurrent_callers_share_statements_and_a_refused_request_fails_alone() {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let doubler = Doubler {
            batches: batches.clone(),
        };
        let group = Arc::new(GroupCommit::start(doubler, 50, 2));
        let calls = (0..200u32).map(|i| {
            let group = group.clone();
            async move { (i, group.call(i).await) }
        });
        for (i, result) in futures::future::join_all(calls).await {
            match result {
                Ok(v) => assert_eq!(v, i * 2),
                Err(_) => assert_eq!(i, 13),
            }
        }
        let batches = batches.lock().unwrap().clone();
        assert_eq!(batches.iter().sum::<usize>(), 200);
        assert!(batches.len() < 200, "every request ran alone: {batches:?}");
        assert!(batches.iter().all(|&n| n <= 50), "{batches:?}");
    }

    /// What PostgreSQL answers the loser of a deadlock.
    #[derive(Debug)]
    struct Deadlock;

    impl std::fmt::Display for Deadlock {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("deadlock detected")
        }
    }

    impl std::error::Error for Deadlock {}

    impl sqlx::error::DatabaseError for Deadlock {
        fn message(&self) -> &str {
            "deadlock detected"
        }
        fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
            Some("40P01".into())
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    /// Doubles numbers, but every batch of more than one loses a deadlock.
    struct Deadlocked;

    impl Batched for Deadlocked {
        type Request = u32;
        type Response = u32;

        async fn run_batch(&self, requests: &[u32]) -> Result<Vec<u32>, sqlx::Error> {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            if requests.len() > 1 {
                return Err(sqlx::Error::Database(Box::new(Deadlock)));
            }
            Ok(requests.iter().map(|r| r * 2).collect())
        }

        async fn run_one(&self, request: &u32) -> Result<u32, sqlx::Error> {
            Ok(request * 2)
        }
    }

    #[tokio::test]
    async fn a_batch_that_loses_a_deadlock_is_run_again_and_no_caller_sees_an_outage() {
        let group = Arc::new(GroupCommit::start(Deadlocked, 50, 1));
        let calls = (0..100u32).map(|i| {
            let group = group.clone();
            async move { (i, group.call(i).await) }
        });
        for (i, result) in futures::future::join_all(calls).await {
            assert_eq!(result.expect("no caller sees the deadlock"), i * 2);
        }
    }
}
