//! A retry budget (as in Finagle and tower): retries may add `percent` of the request rate plus
//! a floor per second, so a failing upstream sees at most that much extra load, never a storm.
//! Kept in thousandths of a retry so percentages add up exactly; every call deposits, only a
//! retry withdraws, and neither takes a lock (a deposit is one atomic add).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use tokio::time::Instant;

const ONE: i64 = 1000;

pub struct RetryBudget {
    per_request: AtomicI64,
    per_second: AtomicI64,
    tokens: AtomicI64,
    /// When the floor was last added, in milliseconds since `born`.
    refilled_ms: AtomicU64,
    born: Instant,
}

impl RetryBudget {
    pub fn new(percent: u32, min_per_second: u32) -> RetryBudget {
        RetryBudget {
            per_request: AtomicI64::new(i64::from(percent) * ONE / 100),
            per_second: AtomicI64::new(i64::from(min_per_second) * ONE),
            tokens: AtomicI64::new(i64::from(min_per_second) * ONE),
            refilled_ms: AtomicU64::new(0),
            born: Instant::now(),
        }
    }

    pub fn set(&self, percent: u32, min_per_second: u32) {
        self.per_request
            .store(i64::from(percent) * ONE / 100, Ordering::Relaxed);
        self.per_second
            .store(i64::from(min_per_second) * ONE, Ordering::Relaxed);
    }

    /// Unused budget does not pile up beyond ten seconds' worth (plus 100 requests' share).
    fn cap(&self) -> i64 {
        self.per_second.load(Ordering::Relaxed) * 10
            + self.per_request.load(Ordering::Relaxed) * 100
    }

    /// Every request adds its share.
    pub fn deposit(&self) {
        let add = self.per_request.load(Ordering::Relaxed);
        if add == 0 {
            return;
        }
        let before = self.tokens.fetch_add(add, Ordering::Relaxed);
        let cap = self.cap();
        if before + add > cap {
            // Over the cap: give back what does not fit (another deposit may race; the cap is
            // a bound on bursts, not an exact figure).
            self.tokens
                .fetch_sub((before + add - cap).min(add), Ordering::Relaxed);
        }
    }

    /// Adds the per-second floor for the time since the last refill.
    fn refill(&self) {
        let now = Instant::now()
            .saturating_duration_since(self.born)
            .as_millis() as u64;
        let last = self.refilled_ms.swap(now, Ordering::Relaxed);
        let ms = now.saturating_sub(last) as i64;
        if ms > 0 {
            let add = ms * self.per_second.load(Ordering::Relaxed) / 1000;
            let before = self.tokens.fetch_add(add, Ordering::Relaxed);
            let cap = self.cap().max(before);
            if before + add > cap {
                self.tokens.fetch_sub(before + add - cap, Ordering::Relaxed);
            }
        }
    }

    /// A retry takes one token, if there is one.
    pub fn withdraw(&self) -> bool {
        self.refill();
        self.tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                (t >= ONE).then_some(t - ONE)
            })
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn retries_are_bounded_by_percent_and_floor() {
        let b = RetryBudget::new(20, 0);
        for _ in 0..100 {
            b.deposit();
        }
        let granted = (0..100).filter(|_| b.withdraw()).count();
        assert_eq!(granted, 20, "20 % of 100 requests");

        let floor = RetryBudget::new(0, 5);
        let first = (0..100).filter(|_| floor.withdraw()).count();
        assert_eq!(first, 5);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!((0..100).filter(|_| floor.withdraw()).count(), 5);
    }
}
