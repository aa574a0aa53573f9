//! The closed state's sliding window, updated without a lock: a success pushes old failures
//! out (the framework's breaker never forgot failures while closed).
//!
//! Two kinds, as resilience4j offers them:
//! - **time**: the last `window` of time in [`SLOTS`] slots. Each slot is one `u64` holding its
//!   slot number and three counters, updated by compare-and-swap, so a slot from an earlier
//!   turn of the ring is recognised and restarted by whoever lands on it first. The slots are
//!   striped per thread so two threads on one breaker do not fight over one cache line.
//! - **count**: the last N outcomes in a ring of bytes; each push swaps its slot and corrects
//!   the running totals by the difference, so concurrent pushes lose nothing.

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Slots a time window is cut into (a 10 s window moves on by the second).
pub(super) const SLOTS: usize = 10;
/// Stripes of slots: each thread keeps to one, chosen on its first call.
const STRIPES: usize = 4;
/// The largest count window (checked by the settings).
pub(super) const MAX_CALLS: u32 = 10_000;

/// What the window holds now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Totals {
    pub calls: u32,
    pub failures: u32,
    pub slow: u32,
}

impl Totals {
    pub(super) fn failure_rate(&self) -> f64 {
        pct(self.failures, self.calls)
    }

    pub(super) fn slow_rate(&self) -> f64 {
        pct(self.slow, self.calls)
    }
}

fn pct(n: u32, of: u32) -> f64 {
    if of == 0 {
        0.0
    } else {
        f64::from(n) * 100.0 / f64::from(of)
    }
}

// One slot word: slot number (16 bits, wrapping) | calls | failures | slow (16 bits each,
// saturating: 65 535 calls per slot and stripe, 2.6 M/s for a 10 s window).
const FIELD: u64 = 0xFFFF;

fn pack(slot: u64, calls: u64, failures: u64, slow: u64) -> u64 {
    ((slot & FIELD) << 48) | (calls << 32) | (failures << 16) | slow
}

fn unpack(w: u64) -> (u64, u32, u32, u32) {
    (
        w >> 48,
        ((w >> 32) & FIELD) as u32,
        ((w >> 16) & FIELD) as u32,
        (w & FIELD) as u32,
    )
}

#[repr(align(128))]
#[derive(Default)]
struct Stripe {
    slots: [AtomicU64; SLOTS],
    /// Outcomes pushed through this stripe since the breaker was made (never cleared).
    pushed: AtomicU64,
}

pub(super) struct Window {
    /// 0: count window; otherwise the time window's slot length in milliseconds.
    slot_ms: AtomicU64,
    stripes: [Stripe; STRIPES],
    size: AtomicU32,
    ring: Box<[AtomicU8]>,
    next: AtomicU64,
    failures: AtomicU32,
    slow: AtomicU32,
    /// When the last failure or slow call was pushed (time window: milliseconds + 1; count
    /// window: its push number + 1; 0: none since the last clear). While none is in the window,
    /// a success cannot change the verdict, so it skips reading the totals.
    last_bad: AtomicU64,
}

fn stripe_of_thread() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
    }
    STRIPE.with(|s| *s)
}

/// A window's kind and size, as the settings give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Calls(u32),
    Time(Duration),
}

impl Window {
    pub(super) fn new(kind: Kind) -> Window {
        let w = Window {
            slot_ms: AtomicU64::new(0),
            stripes: Default::default(),
            size: AtomicU32::new(1),
            ring: (0..MAX_CALLS).map(|_| AtomicU8::new(0)).collect(),
            next: AtomicU64::new(0),
            failures: AtomicU32::new(0),
            slow: AtomicU32::new(0),
            last_bad: AtomicU64::new(0),
        };
        w.configure(kind);
        w
    }

    /// Switches kind or size; the window starts empty. Callers hold the breaker's lock.
    pub(super) fn configure(&self, kind: Kind) {
        // All of the ring: a push racing with a shrink may land past the new size, and would
        // come back into view when the size grows again.
        for b in &self.ring[..] {
            b.store(0, Ordering::Relaxed);
        }
        match kind {
            Kind::Calls(n) => {
                self.size.store(n.clamp(1, MAX_CALLS), Ordering::Relaxed);
                self.slot_ms.store(0, Ordering::Relaxed);
            }
            Kind::Time(d) => {
                let ms = (d.as_millis() as u64 / SLOTS as u64).max(1);
                self.slot_ms.store(ms, Ordering::Relaxed);
            }
        }
        self.clear();
    }

    /// Empties the window (a transition). Pushes racing with it land in the fresh window.
    pub(super) fn clear(&self) {
        for s in &self.stripes {
            for slot in &s.slots {
                slot.store(0, Ordering::Relaxed);
            }
        }
        let n = self.size.load(Ordering::Relaxed) as usize;
        for b in &self.ring[..n] {
            b.store(0, Ordering::Relaxed);
        }
        self.next.store(0, Ordering::Relaxed);
        self.failures.store(0, Ordering::Relaxed);
        self.slow.store(0, Ordering::Relaxed);
        self.last_bad.store(0, Ordering::Relaxed);
    }

    /// Counts one outcome; `now_ms` is the breaker's clock (only a time window reads it).
    /// Returns whether the window may now hold a verdict: a failure or slow call is in it.
    pub(super) fn push(&self, failure: bool, slow: bool, now_ms: impl FnOnce() -> u64) -> bool {
        let stripe = &self.stripes[stripe_of_thread()];
        stripe.pushed.fetch_add(1, Ordering::Relaxed);
        let bad = failure || slow;
        let slot_ms = self.slot_ms.load(Ordering::Relaxed);
        if slot_ms == 0 {
            let i = self.push_count(failure, slow);
            if bad {
                self.last_bad.store(i + 1, Ordering::Relaxed);
                return true;
            }
            let last = self.last_bad.load(Ordering::Relaxed);
            return last > 0
                && (i + 1).saturating_sub(last) < u64::from(self.size.load(Ordering::Relaxed));
        }
        let now = now_ms();
        let slot = now / slot_ms;
        let cell = &stripe.slots[slot as usize % SLOTS];
        let (f, s) = (u64::from(failure), u64::from(slow));
        let _ = cell.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
            let (at, calls, failures, slows) = unpack(w);
            Some(if at == slot & FIELD && calls > 0 {
                let add = |v: u32, d: u64| (u64::from(v) + d).min(FIELD);
                pack(slot, add(calls, 1), add(failures, f), add(slows, s))
            } else {
                pack(slot, 1, f, s)
            })
        });
        if bad {
            self.last_bad.store(now + 1, Ordering::Relaxed);
            return true;
        }
        let last = self.last_bad.load(Ordering::Relaxed);
        last > 0 && (now + 1).saturating_sub(last) < slot_ms * SLOTS as u64
    }

    /// Returns the push's number.
    fn push_count(&self, failure: bool, slow: bool) -> u64 {
        let size = u64::from(self.size.load(Ordering::Relaxed));
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        let new = u8::from(failure) | (u8::from(slow) << 1);
        let old = self.ring[(i % size) as usize].swap(new, Ordering::Relaxed);
        let (df, ds) = (
            i64::from(new & 1) - i64::from(old & 1),
            i64::from(new >> 1) - i64::from(old >> 1 & 1),
        );
        if df != 0 {
            self.failures.fetch_add(df as u32, Ordering::Relaxed); // wrapping: -1 as u32 subtracts
        }
        if ds != 0 {
            self.slow.fetch_add(ds as u32, Ordering::Relaxed);
        }
        i
    }

    /// Outcomes pushed since the window was made.
    pub(super) fn pushed(&self) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.pushed.load(Ordering::Relaxed))
            .sum()
    }

    /// What the window holds at `now_ms`.
    pub(super) fn totals(&self, now_ms: impl FnOnce() -> u64) -> Totals {
        let slot_ms = self.slot_ms.load(Ordering::Relaxed);
        if slot_ms == 0 {
            let size = u64::from(self.size.load(Ordering::Relaxed));
            let calls = self.next.load(Ordering::Relaxed).min(size) as u32;
            // A push that swapped its slot before a clear and corrects the totals after it
            // leaves them off by one, below zero as likely as not: read them as signed and keep
            // them within the calls, so a rate stays a rate.
            let within =
                |v: &AtomicU32| (v.load(Ordering::Relaxed) as i32).clamp(0, calls as i32) as u32;
            return Totals {
                calls,
                failures: within(&self.failures),
                slow: within(&self.slow),
            };
        }
        let now = now_ms() / slot_ms;
        let mut t = Totals::default();
        for s in &self.stripes {
            for cell in &s.slots {
                let (at, calls, failures, slow) = unpack(cell.load(Ordering::Relaxed));
                // Slot numbers are kept modulo 2^16: the age is taken the same way.
                let age = (now & FIELD).wrapping_sub(at) & FIELD;
                let live = calls > 0 && age < SLOTS as u64;
                if live {
                    t.calls += calls;
                    t.failures += failures;
                    t.slow += slow;
                }
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_window_forgets_slots_older_than_its_length() {
        let w = Window::new(Kind::Time(Duration::from_secs(10)));
        for ms in [0, 500, 1500] {
            w.push(true, false, || ms);
        }
        w.push(false, true, || 9_999);
        assert_eq!(
            w.totals(|| 9_999),
            Totals {
                calls: 4,
                failures: 3,
                slow: 1
            }
        );
        // At 10.5 s the first second has left; at 11.5 s the second too.
        assert_eq!(w.totals(|| 10_500).calls, 2);
        assert_eq!(w.totals(|| 11_500).calls, 1);
        // A push into a slot of the ring's next turn restarts it.
        w.push(false, false, || 10_100);
        assert_eq!(w.totals(|| 10_100).failures, 1, "{:?}", w.totals(|| 10_100));
        assert_eq!(w.totals(|| 10_100).calls, 3);
    }

    #[test]
    fn a_count_window_keeps_the_last_n_outcomes() {
        let w = Window::new(Kind::Calls(3));
        for f in [true, true, false, false] {
            w.push(f, false, || 0);
        }
        assert_eq!(
            w.totals(|| 0),
            Totals {
                calls: 3,
                failures: 1,
                slow: 0
            }
        );
        w.configure(Kind::Calls(2));
        assert_eq!(w.totals(|| 0), Totals::default());
    }

    /// A push that swapped a failure out before a clear and takes it off the totals after:
    /// the totals read zero failures, not four billion.
    #[test]
    fn a_push_split_by_a_clear_leaves_a_rate_in_range() {
        let w = Window::new(Kind::Calls(2));
        w.push(true, true, || 0);
        w.push(true, true, || 0);
        w.clear();
        // What the racing push's second half does: the failure it swapped out comes off.
        w.failures.fetch_add(-1i32 as u32, Ordering::Relaxed);
        w.slow.fetch_add(-1i32 as u32, Ordering::Relaxed);
        w.push(false, false, || 0);
        let t = w.totals(|| 0);
        assert_eq!(
            t,
            Totals {
                calls: 1,
                failures: 0,
                slow: 0
            }
        );
        assert!(t.failure_rate() <= 100.0);
    }

    /// Settings changed under load: every total stays within the window's calls.
    #[test]
    fn resizing_while_pushing_keeps_totals_within_calls() {
        let w = Window::new(Kind::Calls(100));
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    let mut k = 0u32;
                    while !stop.load(Ordering::Relaxed) {
                        w.push(!k.is_multiple_of(3), k.is_multiple_of(5), || 0);
                        k += 1;
                    }
                });
            }
            for round in 0..2000u32 {
                w.configure(Kind::Calls(10 + round % 50));
                let t = w.totals(|| 0);
                assert!(t.failures <= t.calls && t.slow <= t.calls, "{t:?}");
            }
            stop.store(true, Ordering::Relaxed);
        });
    }

    #[test]
    fn concurrent_pushes_lose_nothing() {
        for kind in [Kind::Calls(10_000), Kind::Time(Duration::from_secs(3600))] {
            let w = Window::new(kind);
            std::thread::scope(|s| {
                for t in 0..4 {
                    let w = &w;
                    s.spawn(move || {
                        for k in 0..2000 {
                            w.push((t + k) % 2 == 0, k % 4 == 0, || 5);
                        }
                    });
                }
            });
            let got = w.totals(|| 5);
            assert_eq!(
                got,
                Totals {
                    calls: 8000,
                    failures: 4000,
                    slow: 2000
                },
                "{kind:?}"
            );
        }
    }
}
