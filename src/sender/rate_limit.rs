//! Send-rate limits of one sender process: a global pace (`whatsapp.max_per_second`, spaced
//! evenly so no second ever sees a burst above it) and a per-recipient gap
//! (`sender.recipient_interval_ms`) so one phone number is not messaged several times within
//! seconds (a customer with three vehicles due gets three spaced messages).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Hands out send slots `1 / rate` apart. A slot is reserved when asked for, so waiters are
/// served in arrival order and the rate holds however many tasks ask at once.
pub struct RateLimiter {
    interval: Option<Duration>,
    next: Mutex<Instant>,
}

impl RateLimiter {
    /// `per_second = 0` means unlimited.
    pub fn new(per_second: u32) -> Self {
        RateLimiter {
            interval: (per_second > 0).then(|| Duration::from_secs_f64(1.0 / per_second as f64)),
            next: Mutex::new(Instant::now()),
        }
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
        // 30 sends at 10/s take 2.9 s; no window of one second holds more than 10.
        assert!(times[29] >= Duration::from_millis(2900));
        for (i, t) in times.iter().enumerate().skip(10) {
            assert!(
                *t - times[i - 10] >= Duration::from_millis(999),
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
