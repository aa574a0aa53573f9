//! The count-based sliding window: the last N outcomes and running totals, so a success pushes
//! an old failure out (the framework's breaker never forgot failures while closed).

use std::collections::VecDeque;

#[derive(Debug)]
pub(super) struct Window {
    size: usize,
    /// bit 0: failed, bit 1: slow.
    calls: VecDeque<u8>,
    failures: u32,
    slow: u32,
}

impl Window {
    pub(super) fn new(size: u32) -> Window {
        Window {
            size: size.max(1) as usize,
            calls: VecDeque::with_capacity(size.max(1) as usize),
            failures: 0,
            slow: 0,
        }
    }

    pub(super) fn push(&mut self, failure: bool, slow: bool) {
        if self.calls.len() == self.size
            && let Some(old) = self.calls.pop_front()
        {
            self.failures -= u32::from(old & 1);
            self.slow -= u32::from(old >> 1 & 1);
        }
        self.calls
            .push_back(u8::from(failure) | (u8::from(slow) << 1));
        self.failures += u32::from(failure);
        self.slow += u32::from(slow);
    }

    pub(super) fn calls(&self) -> u32 {
        self.calls.len() as u32
    }

    pub(super) fn failures(&self) -> u32 {
        self.failures
    }

    pub(super) fn failure_rate(&self) -> f64 {
        if self.calls.is_empty() {
            0.0
        } else {
            f64::from(self.failures) * 100.0 / self.calls.len() as f64
        }
    }

    pub(super) fn slow_rate(&self) -> f64 {
        if self.calls.is_empty() {
            0.0
        } else {
            f64::from(self.slow) * 100.0 / self.calls.len() as f64
        }
    }
}
