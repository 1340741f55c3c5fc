//! Request coalescing ("single flight"): concurrent requests for the same read share one
//! database query instead of each running its own. A request that arrives while an identical
//! query is in flight gets that query's answer, which is at most one query's duration old;
//! a request arriving after it finished starts a fresh one. Nothing is cached beyond that.
//!
//! Dashboards poll `/statistics`; under load this turns N identical queries per moment into
//! one, so the route's latency no longer grows with the number of concurrent pollers.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

type InFlight<V> = Shared<BoxFuture<'static, V>>;

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
            match in_flight.get(&key) {
                Some((_, shared)) => shared.clone(),
                None => {
                    let generation = self.generation.fetch_add(1, Ordering::Relaxed);
                    let this = Arc::clone(self);
                    let k = key.clone();
                    let work = work();
                    let shared = async move {
                        let value = work.await;
                        // Finished: later requests must start a fresh query.
                        let mut in_flight = this.in_flight.lock().expect("not poisoned");
                        if in_flight.get(&k).is_some_and(|(g, _)| *g == generation) {
                            in_flight.remove(&k);
                        }
                        value
                    }
                    .boxed()
                    .shared();
                    in_flight.insert(key, (generation, shared.clone()));
                    shared
                }
            }
        };
        shared.await
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
}
