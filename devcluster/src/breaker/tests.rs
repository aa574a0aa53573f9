//! Breaker behaviour: thresholds, sliding window, half-open probes, manual modes, concurrency,
//! and a model-based property test against a plain reference state machine.

use super::*;
use proptest::prelude::*;
use std::sync::Arc;

fn settings() -> BreakerSettings {
    BreakerSettings {
        failure_rate_threshold: 50,
        slow_call_rate_threshold: 60,
        slow_call_ms: 100,
        window: WindowSize::Calls(5),
        minimum_calls: 3,
        open_for_ms: 1000,
        half_open_probes: 2,
    }
}

const FAIL: Outcome = Outcome {
    failure: true,
    duration: Duration::from_millis(1),
};
const OK: Outcome = Outcome {
    failure: false,
    duration: Duration::from_millis(1),
};
const SLOW: Outcome = Outcome {
    failure: false,
    duration: Duration::from_millis(150),
};

fn call(b: &Breaker, o: Outcome) -> bool {
    match b.try_acquire() {
        Ok(p) => {
            p.record(o);
            true
        }
        Err(_) => false,
    }
}

#[tokio::test(start_paused = true)]
async fn opens_on_failure_rate_only_after_minimum_calls() {
    let b = Breaker::new("gateway->user-service", settings());
    assert!(call(&b, FAIL));
    assert!(call(&b, FAIL));
    assert_eq!(b.state().0, State::Closed, "2 calls < minimum_calls");
    assert!(call(&b, OK));
    assert_eq!(b.state().0, State::Open, "2 of 3 failed ≥ 50%");
    let t = &b.snapshot().transitions[0];
    assert_eq!((t.from, t.to), (State::Closed, State::Open));
    assert!(t.reason.contains("failure rate 67%"), "{}", t.reason);
    let err = b.try_acquire().err().unwrap();
    assert_eq!(
        err.to_string(),
        "rejected by breaker gateway->user-service, open"
    );
}

/// An open breaker's window is empty, so its snapshot keeps the figures it tripped on: through
/// half-open, replaced by the probes' when they re-open it, gone once it closes or is forced.
#[tokio::test(start_paused = true)]
async fn the_figures_it_tripped_on_stay_while_it_is_open() {
    let b = Breaker::new("a->b", settings());
    assert_eq!(b.snapshot().tripped, None);
    call(&b, FAIL);
    call(&b, OK);
    call(&b, FAIL);
    let s = b.snapshot();
    assert_eq!((s.state, s.calls_in_window), (State::Open, 0));
    let t = s.tripped.expect("tripped figures");
    assert_eq!(t.calls, 3);
    assert!((t.failure_rate - 200.0 / 3.0).abs() < 0.1, "{t:?}");
    // Half-open keeps them; one failed probe of two re-opens with the probes' figures.
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(call(&b, FAIL));
    let t = b.snapshot().tripped.expect("the probes' figures");
    assert_eq!((t.calls, t.failure_rate), (1, 100.0));
    // Closed again: nothing to explain.
    tokio::time::advance(Duration::from_secs(1)).await;
    call(&b, OK);
    call(&b, OK);
    assert_eq!(b.state().0, State::Closed);
    assert_eq!(b.snapshot().tripped, None);
    b.set_mode(Mode::ForcedOpen);
    assert_eq!(b.snapshot().tripped, None, "forced by hand, not tripped");
}

#[tokio::test(start_paused = true)]
async fn successes_push_old_failures_out_of_the_window() {
    let b = Breaker::new("a->b", settings());
    // 1 failure then successes: the rate never reaches 50%, and the failure leaves the window.
    for o in [FAIL, OK, OK, OK, OK, OK, FAIL, OK, OK] {
        assert!(call(&b, o));
    }
    let s = b.snapshot();
    assert_eq!(s.state, State::Closed);
    assert_eq!((s.calls_in_window, s.failures_in_window), (5, 1));
}

#[tokio::test(start_paused = true)]
async fn a_time_window_counts_recent_calls_only() {
    let b = Breaker::new("a->b", time_settings());
    assert!(call(&b, FAIL) && call(&b, FAIL));
    tokio::time::advance(Duration::from_millis(2500)).await;
    // The two failures are older than the 2 s window: 1 of 3 is under 50 %.
    for o in [FAIL, OK, OK] {
        assert!(call(&b, o));
    }
    assert_eq!(b.state().0, State::Closed);
    assert_eq!(b.snapshot().calls_in_window, 3);
    assert!(call(&b, FAIL));
    assert_eq!(b.state().0, State::Open, "2 of 4 recent calls failed");
    let reason = &b.snapshot().transitions[0].reason;
    assert!(
        reason.contains("failure rate 50% ≥ 50% over 4 calls in the last 2s"),
        "{reason}"
    );
}

#[tokio::test(start_paused = true)]
async fn asking_whether_it_would_admit_changes_nothing() {
    let b = Breaker::new("a->b", settings());
    assert!(b.would_admit().is_ok());
    assert_eq!(b.snapshot().total_calls, 0);
    for _ in 0..3 {
        call(&b, FAIL);
    }
    assert!(b.would_admit().is_err(), "open");
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(b.would_admit().is_ok(), "a probe would go");
    assert_eq!(b.state().0, State::Open, "but it did not move to half-open");
    b.set_mode(Mode::ForcedOpen);
    let rejected = b.snapshot().rejected;
    assert_eq!(
        b.would_admit().unwrap_err().to_string(),
        "rejected by breaker a->b, forced_open"
    );
    assert_eq!(
        b.snapshot().rejected,
        rejected,
        "not counted as a rejection"
    );
}

#[tokio::test(start_paused = true)]
async fn opens_on_slow_calls() {
    let b = Breaker::new("a->b", settings());
    for o in [SLOW, SLOW, OK] {
        call(&b, o);
    }
    assert_eq!(b.state().0, State::Open);
    assert!(
        b.snapshot().transitions[0]
            .reason
            .contains("slow-call rate")
    );
}

#[tokio::test(start_paused = true)]
async fn half_open_admits_exactly_n_probes_then_closes_or_reopens() {
    let b = Breaker::new("a->b", settings());
    for _ in 0..3 {
        call(&b, FAIL);
    }
    assert_eq!(b.state().0, State::Open);
    tokio::time::advance(Duration::from_millis(999)).await;
    assert!(b.try_acquire().is_err(), "still open");
    tokio::time::advance(Duration::from_millis(1)).await;
    let p1 = b.try_acquire().unwrap();
    let p2 = b.try_acquire().unwrap();
    assert!(p1.is_probe() && p2.is_probe());
    assert_eq!(b.state().0, State::HalfOpen);
    assert!(b.try_acquire().is_err(), "a third probe is refused");
    // A cancelled probe frees its slot.
    drop(p2);
    let p2 = b.try_acquire().unwrap();
    p1.record(OK);
    assert_eq!(b.state().0, State::HalfOpen);
    p2.record(OK);
    assert_eq!(b.state().0, State::Closed);

    for _ in 0..3 {
        call(&b, FAIL);
    }
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(call(&b, FAIL));
    assert_eq!(
        b.state().0,
        State::Open,
        "one failed probe of two is 50%: re-open"
    );
    let reasons: Vec<String> = b
        .snapshot()
        .transitions
        .iter()
        .map(|t| t.reason.clone())
        .collect();
    assert!(
        reasons.last().unwrap().contains("1 of 2 probes failed"),
        "{reasons:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn manual_modes_override_and_auto_starts_fresh() {
    let b = Breaker::new("a->b", settings());
    b.set_mode(Mode::ForcedOpen);
    let err = b.try_acquire().err().unwrap();
    assert_eq!(err.to_string(), "rejected by breaker a->b, forced_open");
    assert_eq!(b.snapshot().rejected, 1);
    b.set_mode(Mode::ForcedClosed);
    for _ in 0..10 {
        assert!(call(&b, FAIL), "forced closed lets everything through");
    }
    assert_eq!(b.state(), (State::Closed, Mode::ForcedClosed));
    b.set_mode(Mode::Auto);
    let s = b.snapshot();
    assert_eq!(
        (s.state, s.mode, s.calls_in_window),
        (State::Closed, Mode::Auto, 0)
    );
    assert_eq!(Mode::Auto.next().next().next(), Mode::Auto);
}

#[test]
fn concurrent_half_open_admits_exactly_n_and_loses_no_counts() {
    // Real clock here: the racing threads live outside any tokio runtime.
    let mut s = settings();
    s.half_open_probes = 3;
    s.open_for_ms = 1;
    let b = Arc::new(Breaker::new("a->b", s));
    for _ in 0..3 {
        call(&b, FAIL);
    }
    std::thread::sleep(Duration::from_millis(5));
    // 8 threads race for probes and hold them: exactly 3 may be out at once.
    let barrier = Arc::new(std::sync::Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (b, barrier) = (b.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let permits: Vec<_> = (0..50).filter_map(|_| b.try_acquire().ok()).collect();
                let n = permits.len();
                barrier.wait(); // everyone still holds what they got
                n
            })
        })
        .collect();
    let granted: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(granted, 3);
    assert_eq!(b.state().0, State::HalfOpen);

    // Closed: 4 threads × 5000 calls, none lost.
    let mut s = settings();
    s.window = WindowSize::Time(Duration::from_secs(3600));
    s.minimum_calls = 1_000_000;
    s.failure_rate_threshold = 100;
    let b = Arc::new(Breaker::new("a->b", s));
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let b = b.clone();
            std::thread::spawn(move || {
                for k in 0..5000 {
                    call(&b, if (i + k) % 2 == 0 { FAIL } else { OK });
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let snap = b.snapshot();
    assert_eq!(snap.total_calls, 20_000);
    assert_eq!(
        (snap.calls_in_window, snap.failures_in_window),
        (20_000, 10_000)
    );
}

#[tokio::test(start_paused = true)]
async fn outcomes_from_before_a_transition_are_not_counted_after_it() {
    let b = Breaker::new("a->b", settings());
    let early = b.try_acquire().unwrap();
    b.set_mode(Mode::ForcedOpen);
    b.set_mode(Mode::Auto);
    early.record(FAIL);
    assert_eq!(b.snapshot().calls_in_window, 0);
}

/// The reference: the rules as a person would state them, with sequential calls.
#[derive(Debug)]
struct Model {
    s: BreakerSettings,
    state: State,
    mode: Mode,
    since_ms: u64,
    now_ms: u64,
    /// (when, failed, slow)
    window: Vec<(u64, bool, bool)>,
    probes: Vec<(bool, bool)>,
}

impl Model {
    fn call(&mut self, failure: bool, slow: bool) -> bool {
        match self.mode {
            Mode::ForcedOpen => return false,
            Mode::ForcedClosed => return true,
            Mode::Auto => {}
        }
        if self.state == State::Open && self.now_ms - self.since_ms >= self.s.open_for_ms {
            self.go(State::HalfOpen);
        }
        match self.state {
            State::Open => false,
            State::Closed => {
                self.window.push((self.now_ms, failure, slow));
                match self.s.window {
                    WindowSize::Calls(n) => {
                        if self.window.len() > n as usize {
                            self.window.remove(0);
                        }
                    }
                    // The last ten slots of a tenth of the window each.
                    WindowSize::Time(d) => {
                        let slot = d.as_millis() as u64 / 10;
                        let now = self.now_ms / slot;
                        self.window.retain(|c| c.0 / slot + 9 >= now);
                    }
                }
                let n = self.window.len();
                let f = self.window.iter().filter(|c| c.1).count();
                let sl = self.window.iter().filter(|c| c.2).count();
                if n >= self.s.minimum_calls as usize
                    && (f * 100 >= self.s.failure_rate_threshold as usize * n
                        || sl * 100 >= self.s.slow_call_rate_threshold as usize * n)
                {
                    self.go(State::Open);
                }
                true
            }
            State::HalfOpen => {
                self.probes.push((failure, slow));
                let n = self.s.half_open_probes as usize;
                let f = self.probes.iter().filter(|c| c.0).count();
                let sl = self.probes.iter().filter(|c| c.1).count();
                if f * 100 >= self.s.failure_rate_threshold as usize * n
                    || sl * 100 >= self.s.slow_call_rate_threshold as usize * n
                {
                    self.go(State::Open);
                } else if self.probes.len() >= n {
                    self.go(State::Closed);
                }
                true
            }
        }
    }

    fn go(&mut self, to: State) {
        self.state = to;
        self.since_ms = self.now_ms;
        self.window.clear();
        self.probes.clear();
    }

    fn set_mode(&mut self, m: Mode) {
        if m != self.mode {
            self.mode = m;
            self.go(if m == Mode::ForcedOpen {
                State::Open
            } else {
                State::Closed
            });
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Call { failure: bool, slow: bool },
    Advance(u64),
    SetMode(Mode),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<bool>(), prop::bool::weighted(0.2)).prop_map(|(failure, slow)| Op::Call { failure, slow }),
        2 => (0u64..1500).prop_map(Op::Advance),
        1 => prop_oneof![Just(Mode::Auto), Just(Mode::ForcedOpen), Just(Mode::ForcedClosed)].prop_map(Op::SetMode),
    ]
}

fn time_settings() -> BreakerSettings {
    BreakerSettings {
        window: WindowSize::Time(Duration::from_secs(2)),
        ..settings()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn behaves_like_the_reference_model(ops in prop::collection::vec(op(), 1..120), time in any::<bool>()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        let s = if time { time_settings() } else { settings() };
        rt.block_on(async {
            let b = Breaker::new("a->b", s.clone());
            let mut m = Model { s, state: State::Closed, mode: Mode::Auto, since_ms: 0, now_ms: 0, window: vec![], probes: vec![] };
            for (i, op) in ops.iter().enumerate() {
                match op {
                    Op::Call { failure, slow } => {
                        let o = Outcome { failure: *failure, duration: Duration::from_millis(if *slow { 150 } else { 1 }) };
                        let admitted = call(&b, o);
                        let expected = m.call(*failure, *slow);
                        prop_assert_eq!(admitted, expected, "op {} {:?}: model {:?}", i, op, m);
                    }
                    Op::Advance(ms) => {
                        tokio::time::advance(Duration::from_millis(*ms)).await;
                        m.now_ms += ms;
                    }
                    Op::SetMode(mode) => {
                        b.set_mode(*mode);
                        m.set_mode(*mode);
                    }
                }
                // The breaker only moves Open → HalfOpen when asked for a call; so does the model.
                prop_assert_eq!(b.state(), (m.state, m.mode), "after op {} {:?}", i, op);
            }
            Ok(())
        })?;
    }
}
