//! A small map that only grows, read without a lock: a request finds its route's metric handles
//! (a counter per method and status, a server's routes, a client path's instances) by scanning
//! a few filled slots. Filling a slot is a one-time `OnceLock` set; past `N` entries, the rest
//! go to a list behind a mutex (a server with more routes than that pays a lock, nothing more).

use std::sync::{Mutex, OnceLock};

pub struct Slots<K, V, const N: usize> {
    slots: [OnceLock<(K, V)>; N],
    overflow: Mutex<Vec<(K, V)>>,
}

impl<K, V, const N: usize> Default for Slots<K, V, N> {
    fn default() -> Self {
        Slots {
            slots: std::array::from_fn(|_| OnceLock::new()),
            overflow: Mutex::default(),
        }
    }
}

impl<K, V, const N: usize> Slots<K, V, N> {
    /// Runs `f` on the value whose key `matches`, made with `make` on first sight.
    pub fn with<R>(
        &self,
        matches: impl Fn(&K) -> bool,
        make: impl FnOnce() -> (K, V),
        f: impl FnOnce(&V) -> R,
    ) -> R {
        let mut make = Some(make);
        let mut made: Option<(K, V)> = None;
        let mut take = |made: &mut Option<(K, V)>| made.take().or_else(|| make.take().map(|m| m()));
        for slot in &self.slots {
            if slot.get().is_none()
                && let Some(item) = take(&mut made)
                && let Err(lost) = slot.set(item)
            {
                // Another thread filled it first: keep ours for the next free slot.
                made = Some(lost);
            }
            match slot.get() {
                Some((k, v)) if matches(k) => return f(v),
                Some(_) => {}
                None => break,
            }
        }
        let mut over = self.overflow.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = over.iter().position(|(k, _)| matches(k)) {
            return f(&over[i].1);
        }
        match take(&mut made) {
            Some(item) => {
                over.push(item);
                let last = over.len() - 1;
                f(&over[last].1)
            }
            // Unreachable: an item is made whenever none matched.
            None => unreachable_none(f),
        }
    }

    /// Every entry, in the order they were added.
    pub fn each(&self, mut f: impl FnMut(&K, &V)) {
        for (k, v) in self.slots.iter().map_while(OnceLock::get) {
            f(k, v);
        }
        for (k, v) in self
            .overflow
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            f(k, v);
        }
    }
}

#[cold]
fn unreachable_none<V, R>(_f: impl FnOnce(&V) -> R) -> R {
    panic!("slots: no entry and nothing to make one from")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_it_made_and_overflows_past_its_slots() {
        let s: Slots<u32, String, 2> = Slots::default();
        for k in [1, 2, 3, 1, 3] {
            let v = s.with(|x| *x == k, || (k, format!("v{k}")), String::clone);
            assert_eq!(v, format!("v{k}"));
        }
        let mut all = Vec::new();
        s.each(|k, _| all.push(*k));
        assert_eq!(all, [1, 2, 3]);
    }

    #[test]
    fn racing_threads_make_one_entry_per_key() {
        let s: Slots<u32, u32, 8> = Slots::default();
        std::thread::scope(|sc| {
            for t in 0..4 {
                let s = &s;
                sc.spawn(move || {
                    for k in 0..12 {
                        s.with(|x| *x == (k + t) % 12, || ((k + t) % 12, 0), |_| ());
                    }
                });
            }
        });
        let mut keys = Vec::new();
        s.each(|k, _| keys.push(*k));
        keys.sort_unstable();
        assert_eq!(keys, (0..12).collect::<Vec<_>>(), "one entry each");
    }
}
