//! A retry budget (as in Finagle and tower): retries may add `percent` of the request rate plus
//! a floor per second, so a failing upstream sees at most that much extra load, never a storm.
//! Kept in thousandths of a retry so percentages add up exactly.

use std::sync::Mutex;
use tokio::time::Instant;

const ONE: u64 = 1000;

pub struct RetryBudget {
    inner: Mutex<Inner>,
}

struct Inner {
    per_request: u64,
    per_second: u64,
    tokens: u64,
    last: Instant,
}

impl RetryBudget {
    pub fn new(percent: u32, min_per_second: u32) -> RetryBudget {
        RetryBudget {
            inner: Mutex::new(Inner {
                per_request: u64::from(percent) * ONE / 100,
                per_second: u64::from(min_per_second) * ONE,
                tokens: u64::from(min_per_second) * ONE,
                last: Instant::now(),
            }),
        }
    }

    pub fn set(&self, percent: u32, min_per_second: u32) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.per_request = u64::from(percent) * ONE / 100;
        g.per_second = u64::from(min_per_second) * ONE;
    }

    fn refill(g: &mut Inner) {
        let now = Instant::now();
        let ms = now.saturating_duration_since(g.last).as_millis() as u64;
        if ms == 0 {
            return;
        }
        g.last = now;
        // Unused budget does not pile up beyond ten seconds' worth (plus 100 requests' share).
        let cap = g.per_second * 10 + g.per_request * 100;
        g.tokens = (g.tokens + ms * g.per_second / 1000).min(cap.max(g.tokens));
    }

    /// Every request adds its share.
    pub fn deposit(&self) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        Self::refill(&mut g);
        let cap = g.per_second * 10 + g.per_request * 100;
        g.tokens = (g.tokens + g.per_request).min(cap);
    }

    /// A retry takes one token, if there is one.
    pub fn withdraw(&self) -> bool {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        Self::refill(&mut g);
        if g.tokens >= ONE {
            g.tokens -= ONE;
            true
        } else {
            false
        }
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
