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
///
/// Each reminder for a number gets the next free slot for it, reserved under its reminder id.
/// A reminder whose slot is more than a moment away is parked in a delay queue until then
/// rather than waiting in a sending slot: a fleet customer with hundreds of vehicles on one
/// phone would otherwise fill every slot and hold everyone else's reminders up. When the
/// parked copy comes back, its reservation is waiting for it. Copies can come back late (a
/// backlog in the sender queue) and so bunch up; the send itself is therefore only let through
/// a gap after the number's last send, and a copy that missed its turn takes a new slot.
pub struct RecipientGap {
    gap: Duration,
    state: Mutex<GapState>,
}

#[derive(Default)]
struct GapState {
    /// Per phone: the first instant not yet reserved.
    next: HashMap<String, Instant>,
    /// Per phone: when the last send to it was let through.
    last: HashMap<String, Instant>,
    /// Per reminder id: its reserved slot.
    reserved: HashMap<String, Instant>,
}

impl GapState {
    fn reserve_new(
        &mut self,
        phone: &str,
        reminder_id: &str,
        gap: Duration,
        now: Instant,
    ) -> Instant {
        let mut slot = self.next.get(phone).copied().unwrap_or(now).max(now);
        if let Some(last) = self.last.get(phone) {
            slot = slot.max(*last + gap);
        }
        self.next.insert(phone.to_string(), slot + gap);
        self.reserved.insert(reminder_id.to_string(), slot);
        slot
    }
}

/// Reservations and last sends older than this are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(600);

impl RecipientGap {
    pub fn new(gap: Duration) -> Self {
        RecipientGap {
            gap,
            state: Mutex::new(GapState::default()),
        }
    }

    /// Whether a send to `phone` could go this instant (nothing is reserved).
    pub fn is_free(&self, phone: &str) -> bool {
        self.gap.is_zero()
            || self
                .state
                .lock()
                .expect("recipient gap lock")
                .next
                .get(phone)
                .is_none_or(|t| *t <= Instant::now())
    }

    /// The slot of `reminder_id` for `phone`: the one it reserved before (unless another send
    /// to the number took its turn meanwhile), or the next free one, reserved now.
    pub fn reserve(&self, phone: &str, reminder_id: &str) -> Instant {
        let now = Instant::now();
        if self.gap.is_zero() {
            return now;
        }
        let mut state = self.state.lock().expect("recipient gap lock");
        if state.next.len() + state.reserved.len() > 10_000 {
            state.next.retain(|_, t| *t > now);
            state.last.retain(|_, t| *t + FORGET_AFTER > now);
            state.reserved.retain(|_, t| *t + FORGET_AFTER > now);
        }
        let earliest = state.last.get(phone).map(|t| *t + self.gap);
        match state.reserved.get(reminder_id) {
            Some(slot) if earliest.is_none_or(|e| *slot >= e) => *slot,
            _ => state.reserve_new(phone, reminder_id, self.gap, now),
        }
    }

    /// Lets the send of `reminder_id` through if a gap has passed since the number's last
    /// send, and records it as the last; otherwise reserves and returns a new slot for it.
    pub fn take(&self, phone: &str, reminder_id: &str) -> Result<(), Instant> {
        if self.gap.is_zero() {
            return Ok(());
        }
        let now = Instant::now();
        let mut state = self.state.lock().expect("recipient gap lock");
        if state
            .last
            .get(phone)
            .is_some_and(|last| now < *last + self.gap)
        {
            return Err(state.reserve_new(phone, reminder_id, self.gap, now));
        }
        state.last.insert(phone.to_string(), now);
        state.reserved.remove(reminder_id);
        Ok(())
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
    async fn each_reminder_of_a_number_gets_its_own_slot_a_gap_apart_and_keeps_it() {
        let gap = RecipientGap::new(Duration::from_secs(3));
        let start = Instant::now();
        assert_eq!(gap.reserve("6281", "a"), start);
        assert_eq!(
            gap.reserve("6282", "b"),
            start,
            "another number is not held up"
        );
        assert_eq!(gap.reserve("6281", "c"), start + Duration::from_secs(3));
        assert_eq!(gap.reserve("6281", "d"), start + Duration::from_secs(6));
        assert_eq!(gap.take("6281", "a"), Ok(()));
        // A parked copy coming back finds the slot it was given, not a later one.
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(gap.reserve("6281", "c"), start + Duration::from_secs(3));
        assert_eq!(gap.take("6281", "c"), Ok(()));
        assert!(!gap.is_free("6281"));
        assert!(gap.is_free("6282"));
    }

    #[tokio::test(start_paused = true)]
    async fn copies_that_come_back_late_together_still_go_a_gap_apart() {
        let gap = RecipientGap::new(Duration::from_secs(1));
        let start = Instant::now();
        for id in ["a", "b", "c"] {
            gap.reserve("6281", id);
        }
        // All three are delivered again at once, five seconds late.
        tokio::time::advance(Duration::from_secs(7)).await;
        assert_eq!(gap.take("6281", "b"), Ok(()));
        let later = gap.take("6281", "a").expect_err("too soon after b");
        assert_eq!(later, start + Duration::from_secs(8));
        assert_eq!(gap.reserve("6281", "a"), later, "a keeps its new slot");
        let c = gap.take("6281", "c").expect_err("too soon after b");
        assert_eq!(c, start + Duration::from_secs(9));
    }
}
