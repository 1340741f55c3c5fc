//! Send-rate limits of one sender process: a global pace (`whatsapp.max_per_second`, spaced
//! evenly so no second ever sees a burst above it) and a per-recipient gap
//! (`sender.recipient_interval_ms`) so one phone number is not messaged several times within
//! seconds (a customer with three vehicles due gets three spaced messages).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Hands out send slots `1 / rate` apart. A slot is reserved when asked for, so waiters are
/// served in arrival order and the rate holds however many tasks ask at once.
///
/// Slots are 2.5 % wider than `1 / rate`: between the slot and the provider receiving the
/// request there is scheduling and network jitter, and two requests jittered in opposite
/// directions put `rate + 1` into one second of the provider's clock. The margin has to cover
/// the jitter of a busy machine, not only of an idle one: at 80/s it makes 78/s, which
/// tolerates 25 ms.
const MARGIN: f64 = 1.025;

pub struct RateLimiter {
    interval: Option<Duration>,
    next: Mutex<Instant>,
}

impl RateLimiter {
    /// `per_second = 0` means unlimited.
    pub fn new(per_second: u32) -> Self {
        RateLimiter {
            interval: (per_second > 0).then(|| Duration::from_secs_f64(MARGIN / per_second as f64)),
            next: Mutex::new(Instant::now()),
        }
    }

    /// Whether a send could go this instant (nothing is reserved).
    pub fn is_free(&self) -> bool {
        self.interval.is_none() || *self.next.lock().expect("rate limiter lock") <= Instant::now()
    }

    pub async fn acquire(&self) {
        let Some(interval) = self.interval else {
            return;
        };
        let slot = {
            let mut next = self.next.lock().expect("rate limiter lock");
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

/// The last check before the provider is called: at most `per_second` sends within any
/// window of one second (widened by the same margin) of real time. `RateLimiter` plans evenly
/// spaced slots, but a task can wake from its slot late (a busy runtime, a slow claim in
/// between) and then goes out together with the tasks behind it; this guard counts the sends
/// that actually went and holds the next one until the oldest of the last `per_second` is a
/// window old. In steady state it never waits (the planned slots are already that far apart),
/// so it adds no lag; after a stall it turns a burst back into the allowed rate.
pub struct WindowGuard {
    limit: usize,
    window: Duration,
    /// When the last `limit` sends went, oldest first. The async mutex is fair, so waiters go
    /// in arrival order, one at a time.
    sent: tokio::sync::Mutex<VecDeque<Instant>>,
}

impl WindowGuard {
    /// `per_second = 0` means unlimited.
    pub fn new(per_second: u32) -> Self {
        WindowGuard {
            limit: per_second as usize,
            window: Duration::from_secs_f64(MARGIN),
            sent: tokio::sync::Mutex::new(VecDeque::with_capacity(per_second as usize)),
        }
    }

    pub async fn acquire(&self) {
        if self.limit == 0 {
            return;
        }
        let mut sent = self.sent.lock().await;
        if sent.len() >= self.limit {
            let oldest = sent.pop_front().expect("non-empty");
            // Waking late only makes the window wider: always safe.
            tokio::time::sleep_until(oldest + self.window).await;
        }
        sent.push_back(Instant::now());
    }
}

/// Keeps sends to the same number at least `gap` apart.
pub struct RecipientGap {
    gap: Duration,
    next: Mutex<HashMap<String, Instant>>,
}

impl RecipientGap {
    pub fn new(gap: Duration) -> Self {
        RecipientGap {
            gap,
            next: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a send to `phone` could go this instant (nothing is reserved).
    pub fn is_free(&self, phone: &str) -> bool {
        self.gap.is_zero()
            || self
                .next
                .lock()
                .expect("recipient gap lock")
                .get(phone)
                .is_none_or(|t| *t <= Instant::now())
    }

    pub async fn acquire(&self, phone: &str) {
        if self.gap.is_zero() {
            return;
        }
        let slot = {
            let mut map = self.next.lock().expect("recipient gap lock");
            let now = Instant::now();
            if map.len() > 10_000 {
                map.retain(|_, t| *t > now);
            }
            let slot = map.get(phone).copied().unwrap_or(now).max(now);
            map.insert(phone.to_string(), slot + self.gap);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_pace_never_exceeds_the_rate() {
        let limiter = std::sync::Arc::new(RateLimiter::new(10));
        let start = Instant::now();
        let mut handles = Vec::new();
        for _ in 0..30 {
            let l = limiter.clone();
            handles.push(tokio::spawn(async move {
                l.acquire().await;
                Instant::now()
            }));
        }
        let mut times = Vec::new();
        for h in handles {
            times.push(h.await.unwrap() - start);
        }
        times.sort();
        // 30 sends at 10/s take 2.9 s; no window of one second holds more than 10, even when
        // one send reaches the provider 20 ms later than the send ten after it.
        assert!(times[29] >= Duration::from_millis(2900));
        for (i, t) in times.iter().enumerate().skip(10) {
            assert!(
                *t - times[i - 10] >= Duration::from_millis(1020),
                "burst at {i}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_window_guard_turns_a_late_burst_back_into_the_rate() {
        let guard = std::sync::Arc::new(WindowGuard::new(10));
        let start = Instant::now();
        // 35 tasks arrive at once, as after a stall.
        let mut handles = Vec::new();
        for _ in 0..35 {
            let g = guard.clone();
            handles.push(tokio::spawn(async move {
                g.acquire().await;
                Instant::now()
            }));
        }
        let mut times = Vec::new();
        for h in handles {
            times.push(h.await.unwrap() - start);
        }
        times.sort();
        // With room for 20 ms of jitter on the way to the provider.
        for (i, t) in times.iter().enumerate().skip(10) {
            assert!(
                *t - times[i - 10] >= Duration::from_millis(1020),
                "burst at {i}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_same_number_waits_for_its_gap_and_others_do_not() {
        let gap = RecipientGap::new(Duration::from_secs(3));
        let start = Instant::now();
        gap.acquire("6281").await;
        gap.acquire("6282").await;
        assert!(Instant::now() - start < Duration::from_millis(10));
        gap.acquire("6281").await;
        assert!(Instant::now() - start >= Duration::from_secs(3));
    }
}
