//! Request coalescing ("single flight"): concurrent requests for the same read share one
//! database query instead of each running its own. A request that arrives while an identical
//! query is in flight gets that query's answer, which is at most one query's duration old;
//! a request arriving after it finished starts a fresh one. Nothing is cached beyond that.
//!
//! Dashboards poll `/statistics`; under load this turns N identical queries per moment into
//! one, so the route's latency no longer grows with the number of concurrent pollers.
//!
//! The table only holds a weak reference to a query in flight: when every request waiting
//! for it has gone (clients closed, requests timed out), the query's future is dropped, which
//! gives its pooled connection back, instead of staying in the table, holding the
//! connection, with nothing left to poll it.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::{BoxFuture, WeakShared};

type InFlight<V> = WeakShared<BoxFuture<'static, V>>;

pub struct SingleFlight<K, V: Clone> {
    in_flight: Mutex<HashMap<K, (u64, InFlight<V>)>>,
    generation: AtomicU64,
}

impl<K, V> Default for SingleFlight<K, V>
where
    V: Clone,
{
    fn default() -> Self {
        SingleFlight {
            in_flight: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
        }
    }
}

impl<K, V> SingleFlight<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Joins the query in flight for `key`, or starts `work` as that query.
    pub async fn run<F>(self: &Arc<Self>, key: K, work: impl FnOnce() -> F) -> V
    where
        F: Future<Output = V> + Send + 'static,
    {
        let shared = {
            let mut in_flight = self.in_flight.lock().expect("not poisoned");
            match in_flight.get(&key).and_then(|(_, weak)| weak.upgrade()) {
                Some(shared) => shared,
                None => {
                    let generation = self.generation.fetch_add(1, Ordering::Relaxed);
                    let leave = Leave {
                        flight: Arc::clone(self),
                        key: key.clone(),
                        generation,
                    };
                    let work = work();
                    let shared = async move {
                        let _leave = leave;
                        work.await
                    }
                    .boxed()
                    .shared();
                    let weak = shared.downgrade().expect("not yet polled");
                    in_flight.insert(key, (generation, weak));
                    shared
                }
            }
        };
        shared.await
    }
}

/// Takes a query out of the table when it finishes or is dropped (its last waiter gone), so
/// later requests start a fresh one. A newer query under the same key is left alone.
struct Leave<K: Eq + Hash, V: Clone> {
    flight: Arc<SingleFlight<K, V>>,
    key: K,
    generation: u64,
}

impl<K: Eq + Hash, V: Clone> Drop for Leave<K, V> {
    fn drop(&mut self) {
        let mut in_flight = self.flight.in_flight.lock().expect("not poisoned");
        if in_flight
            .get(&self.key)
            .is_some_and(|(g, _)| *g == self.generation)
        {
            in_flight.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    #[tokio::test]
    async fn concurrent_requests_share_one_run_and_later_ones_start_another() {
        let flight = Arc::new(SingleFlight::<u8, usize>::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let (release, released) = tokio::sync::watch::channel(false);
        let start = |runs: Arc<AtomicUsize>, mut released: tokio::sync::watch::Receiver<bool>| {
            move || async move {
                let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
                released.wait_for(|r| *r).await.expect("sender alive");
                n
            }
        };
        let waiters: Vec<_> = (0..10)
            .map(|_| {
                let flight = flight.clone();
                let work = start(runs.clone(), released.clone());
                tokio::spawn(async move { flight.run(1, work).await })
            })
            .collect();
        // Every waiter is parked on the one run before it is allowed to finish.
        while runs.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::task::yield_now().await;
        release.send(true).expect("receivers alive");
        for w in waiters {
            assert_eq!(w.await.unwrap(), 1);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(
            flight.run(1, start(runs.clone(), released.clone())).await,
            2
        );
        assert_eq!(flight.run(2, start(runs.clone(), released)).await, 3);
    }

    /// The query's own future is dropped (releasing whatever it holds) once no request waits.
    #[tokio::test]
    async fn a_query_every_waiter_abandoned_is_dropped_and_the_next_request_starts_afresh() {
        let flight = Arc::new(SingleFlight::<u8, usize>::default());
        let (held, holding) = tokio::sync::oneshot::channel::<()>();
        let waiter = {
            let flight = flight.clone();
            tokio::spawn(async move {
                flight
                    .run(1, move || async move {
                        let _held = held;
                        futures::future::pending::<usize>().await
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        waiter.abort();
        // The channel's sender lived in the query's future: dropping that closes it.
        tokio::time::timeout(Duration::from_secs(5), holding)
            .await
            .expect("the abandoned query was dropped")
            .expect_err("dropped, not completed");
        assert!(flight.in_flight.lock().unwrap().is_empty());
        assert_eq!(flight.run(1, || async { 7 }).await, 7);
    }
}
