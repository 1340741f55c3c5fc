//! Waiting for RabbitMQ's answers: every broker operation a role awaits is bounded by
//! [`ANSWER_TIMEOUT`], except while RabbitMQ is blocking the connection (a resource alarm), which
//! [`blocking`] tracks from the connection's `connection.blocked` / `unblocked` notices.

use std::future::Future;
use std::time::Duration;

/// How long one broker operation (open a channel, declare, consume, ack, publish and confirm)
/// may wait for RabbitMQ before the session counts as broken. An operation whose frame was
/// queued just as the connection died can stay pending for good, and a quorum queue the broker
/// is still recovering can leave a declare unanswered; bounded, either ends the session and the
/// session loop reconnects instead of waiting on a connection that is gone.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// `operation`, or a time-out error naming `what` once `ANSWER_TIMEOUT` has passed without an
/// answer. Time during which RabbitMQ blocked the connection (a memory or disk alarm) does not
/// count: a blocked connection sends nothing, so every operation waits for the alarm to clear,
/// and reconnecting would only hand the work in flight out again into the same alarm.
pub async fn answered<T>(
    what: &str,
    operation: impl Future<Output = Result<T, lapin::Error>>,
) -> Result<T, lapin::Error> {
    tokio::pin!(operation);
    loop {
        match tokio::time::timeout(ANSWER_TIMEOUT, &mut operation).await {
            Ok(result) => return result,
            Err(_) if blocking::within(ANSWER_TIMEOUT) => continue,
            Err(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "RabbitMQ did not answer {what} within {} s",
                        ANSWER_TIMEOUT.as_secs()
                    ),
                )
                .into());
            }
        }
    }
}

/// Whether RabbitMQ is blocking this process's connections, as its `connection.blocked` and
/// `connection.unblocked` notices say. Process-wide rather than per connection because the
/// alarms behind the notices are: a memory or disk alarm on any node blocks publishing
/// connections on every node of the cluster.
pub mod blocking {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    /// Connections RabbitMQ is blocking right now.
    static BLOCKED: AtomicUsize = AtomicUsize::new(0);
    /// When the last block ended, in milliseconds since `epoch()` plus one; 0 for never.
    static ENDED_MS: AtomicU64 = AtomicU64::new(0);

    fn epoch() -> Instant {
        static EPOCH: OnceLock<Instant> = OnceLock::new();
        *EPOCH.get_or_init(Instant::now)
    }

    fn now_ms() -> u64 {
        epoch().elapsed().as_millis() as u64 + 1
    }

    /// One connection's block, from `connection.blocked` until `connection.unblocked` or the
    /// connection's end (a new connection is not blocked until RabbitMQ says so).
    #[derive(Default)]
    pub struct Block {
        on: bool,
    }

    impl Block {
        pub fn start(&mut self) {
            epoch();
            if !std::mem::replace(&mut self.on, true) {
                BLOCKED.fetch_add(1, Ordering::SeqCst);
            }
        }

        pub fn end(&mut self) {
            if std::mem::replace(&mut self.on, false) {
                ENDED_MS.store(now_ms(), Ordering::SeqCst);
                BLOCKED.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    impl Drop for Block {
        fn drop(&mut self) {
            self.end();
        }
    }

    /// Whether some connection of this process is blocked now.
    pub fn is_blocked() -> bool {
        BLOCKED.load(Ordering::SeqCst) > 0
    }

    /// Whether some connection is blocked now or was at some moment of the last `window`.
    pub fn within(window: Duration) -> bool {
        if is_blocked() {
            return true;
        }
        let ended = ENDED_MS.load(Ordering::SeqCst);
        ended != 0 && now_ms().saturating_sub(ended) <= window.as_millis() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The only test that touches the process-wide block state.
    #[tokio::test(start_paused = true)]
    async fn an_operation_waits_past_the_bound_only_while_rabbitmq_blocks_the_connection() {
        let unanswered = answered("a confirm", std::future::pending::<Result<(), _>>()).await;
        assert!(unanswered.is_err(), "unblocked, the bound applies");

        let mut block = blocking::Block::default();
        block.start();
        block.start();
        assert!(blocking::is_blocked());
        let slow = async {
            tokio::time::sleep(ANSWER_TIMEOUT * 3).await;
            Ok::<_, lapin::Error>("confirmed")
        };
        assert_eq!(answered("a confirm", slow).await.unwrap(), "confirmed");

        block.end();
        assert!(
            !blocking::is_blocked(),
            "one connection, however often blocked"
        );
        assert!(
            blocking::within(ANSWER_TIMEOUT),
            "what was waiting when the block ended gets one more bound"
        );
        std::thread::sleep(Duration::from_millis(5));
        assert!(!blocking::within(Duration::from_millis(1)));
        block.end();
        assert!(!blocking::is_blocked());
    }
}
