//! Waiting for a condition: polled at an interval, with a time limit.

use std::future::Future;
use std::time::Duration;

use anyhow::bail;
// Tokio's clock, so tests with paused time wait in their own time.
use tokio::time::Instant;

/// Polls `check` every `every` until it yields a value; fails after `timeout`, naming `what`.
pub async fn poll<T, F, Fut>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(every).await;
    }
}

/// Polls `check` every 50 ms until it is true; panics after `timeout` (for tests).
pub async fn wait_until<F, Fut>(timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let reached = poll("the condition", timeout, Duration::from_millis(50), || {
        let checked = check();
        async move { Ok(checked.await.then_some(())) }
    })
    .await;
    assert!(reached.is_ok(), "condition not reached within {timeout:?}");
}
