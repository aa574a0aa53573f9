//! The time of the traffic path: a [`Stamp`] gives both clocks from one read, and a task
//! wrapped in [`clocked`] reads the clock once per poll however many places ask.

use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The wall clock in nanoseconds; also remembered for [`recent_unix_ms`].
pub fn unix_ns() -> u64 {
    let ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    LAST_UNIX_NS.store(ns, Ordering::Relaxed);
    ns
}

static LAST_UNIX_NS: AtomicU64 = AtomicU64::new(0);

/// A moment as both clocks see it, from one clock read: the monotonic instant (for durations)
/// and the wall clock (for the record), the latter derived from a base taken once.
#[derive(Debug, Clone, Copy)]
pub struct Stamp {
    pub at: std::time::Instant,
    pub unix_ns: u64,
}

/// Now, read once. Reading a clock costs 20-50 ns on a virtual machine; a request's spans
/// take their start this way instead of reading both clocks. The wall clock is derived from
/// the monotonic one and an offset taken again every second, so a laptop's suspend or an NTP
/// step shows within a second.
///
/// Inside a [`clocked`] poll the first read is kept and every later one in the same poll gets
/// it: a gateway request reads the time at a dozen places (spans, breaker, balancer, pool,
/// metrics windows) within microseconds of each other.
pub fn stamp() -> Stamp {
    POLL.with(|p| match p.get() {
        Some(Some(s)) => s,
        Some(None) => {
            let s = read();
            p.set(Some(Some(s)));
            s
        }
        None => read(),
    })
}

/// Now, as a tokio `Instant` for timers and windows: the poll's stamp inside a [`clocked`]
/// poll (read from the real clock: a clocked task does not see tokio's paused time), tokio's
/// `now` outside one (paused in tests that ask for it).
pub fn now() -> tokio::time::Instant {
    match POLL.with(Cell::get) {
        Some(_) => tokio::time::Instant::from_std(stamp().at),
        None => tokio::time::Instant::now(),
    }
}

/// The wall clock in whole seconds, as [`stamp`] reads it.
pub fn unix_s() -> u64 {
    stamp().unix_ns / 1_000_000_000
}

thread_local! {
    /// `Some` inside a [`clocked`] poll, with the stamp once one was read.
    static POLL: Cell<Option<Option<Stamp>>> = const { Cell::new(None) };
}

/// `fut`, with the clock read at most once per poll (see [`stamp`]). For a task whose polls
/// are short, like a connection's: what it does in one poll takes microseconds.
pub fn clocked<F: Future>(fut: F) -> impl Future<Output = F::Output> {
    let mut fut = Box::pin(fut);
    std::future::poll_fn(move |cx| {
        /// Puts back what was there before the poll, on a panic too.
        struct Restore(Option<Option<Stamp>>);
        impl Drop for Restore {
            fn drop(&mut self) {
                POLL.with(|p| p.set(self.0));
            }
        }
        let _restore = Restore(POLL.with(|p| p.replace(Some(None))));
        fut.as_mut().poll(cx)
    })
}

fn read() -> Stamp {
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    /// The wall clock at `ORIGIN` as last measured, in nanoseconds.
    static OFFSET_NS: AtomicU64 = AtomicU64::new(0);
    /// When (nanoseconds after `ORIGIN`) the offset is measured again.
    static NEXT_CHECK_NS: AtomicU64 = AtomicU64::new(0);
    let origin = *ORIGIN.get_or_init(std::time::Instant::now);
    let at = std::time::Instant::now();
    let since = at.saturating_duration_since(origin).as_nanos() as u64;
    let mut offset = OFFSET_NS.load(Ordering::Relaxed);
    if since >= NEXT_CHECK_NS.load(Ordering::Relaxed) || offset == 0 {
        NEXT_CHECK_NS.store(since + 1_000_000_000, Ordering::Relaxed);
        offset = unix_ns().saturating_sub(since);
        OFFSET_NS.store(offset, Ordering::Relaxed);
    }
    let unix_ns = offset + since;
    LAST_UNIX_NS.store(unix_ns, Ordering::Relaxed);
    Stamp { at, unix_ns }
}

/// The wall clock as the last [`unix_ns`] read it, in milliseconds: on the traffic path, the
/// start of the request or call being handled, microseconds ago. Reading the clock costs
/// 20-50 ns on a virtual machine; a pick's timestamp does not need more than this.
pub fn recent_unix_ms() -> u64 {
    match LAST_UNIX_NS.load(Ordering::Relaxed) {
        0 => unix_ns() / 1_000_000,
        ns => ns / 1_000_000,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stamp's wall time is the wall clock's, and its instant moves with it.
    #[test]
    fn a_stamp_reads_the_wall_clock() {
        let a = stamp();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let b = stamp();
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        assert!(
            wall.abs_diff(b.unix_ns) < 50_000_000,
            "{wall} {}",
            b.unix_ns
        );
        let moved = b.unix_ns - a.unix_ns;
        let took = b.at.duration_since(a.at).as_nanos() as u64;
        assert!(
            moved.abs_diff(took) < 5_000_000 && moved >= 5_000_000,
            "{moved} {took}"
        );
    }

    /// Inside a clocked poll every read gets the first one's time; the next poll reads again,
    /// and outside a clocked poll the clock is read each time.
    #[tokio::test]
    async fn a_clocked_poll_reads_the_clock_once() {
        let mut polls = Vec::new();
        let mut n = 0;
        clocked(std::future::poll_fn(|cx| {
            let a = stamp();
            std::thread::sleep(std::time::Duration::from_millis(2));
            let b = stamp();
            assert_eq!(a.at, b.at);
            assert_eq!(now().into_std(), a.at);
            polls.push(a.at);
            n += 1;
            if n < 2 {
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            } else {
                std::task::Poll::Ready(())
            }
        }))
        .await;
        assert!(polls[1] >= polls[0] + std::time::Duration::from_millis(2));
        let a = stamp();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(stamp().at > a.at, "outside a clocked poll the clock moves");
    }

    /// A poll that panics leaves the thread reading the clock again.
    #[test]
    fn a_panicking_poll_does_not_freeze_the_clock() {
        let panicked = std::panic::catch_unwind(|| {
            let fut = clocked(std::future::poll_fn(|_| -> std::task::Poll<()> {
                stamp();
                panic!("in the poll")
            }));
            let mut fut = std::pin::pin!(fut);
            let waker = std::task::Waker::noop();
            let _ = fut
                .as_mut()
                .poll(&mut std::task::Context::from_waker(waker));
        });
        assert!(panicked.is_err());
        let a = stamp();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(stamp().at > a.at);
    }
}
