//! Circuit breakers, one per `CALLER->TARGET`. A breaker guards the target **service**: it counts
//! the outcome of a whole call (after retries on other instances), while a failing instance is
//! the business of outlier ejection. Closed: outcomes fill a sliding window (time- or
//! count-based); past `minimum_calls`, a failure rate or slow-call rate at or over its threshold
//! opens the breaker. Open: calls are refused at once for `open_for`. Half-open:
//! exactly `half_open_probes` calls are let through; their outcome closes or re-opens it.
//! Manual modes force it open or closed until set back to auto.
//!
//! All state changes happen under one mutex (never under a read lock, unlike the sample code we
//! follow). A closed breaker takes no lock: admitting reads an atomic gate, recording updates
//! the lock-free window, and only a failure or slow call reads the totals to decide.

mod registry;
mod settings;
mod window;

pub use registry::Breakers;
pub use settings::{BreakerSettings, WindowSize};

use crate::telemetry::path;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use window::Window;

/// Transitions each breaker remembers.
const TRANSITIONS_KEPT: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Closed,
    Open,
    HalfOpen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Auto,
    ForcedOpen,
    ForcedClosed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
        }
    }
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::ForcedOpen => "forced_open",
            Mode::ForcedClosed => "forced_closed",
        }
    }

    /// auto → forced_open → forced_closed → auto (the dashboard's space key).
    pub fn next(self) -> Mode {
        match self {
            Mode::Auto => Mode::ForcedOpen,
            Mode::ForcedOpen => Mode::ForcedClosed,
            Mode::ForcedClosed => Mode::Auto,
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "auto" => Ok(Mode::Auto),
            "open" | "forced_open" => Ok(Mode::ForcedOpen),
            "closed" | "forced_closed" => Ok(Mode::ForcedClosed),
            other => Err(format!(
                "unknown breaker mode \"{other}\": expected open, closed or auto"
            )),
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    pub at_unix_ms: u64,
    pub from: State,
    pub to: State,
    pub reason: String,
}

/// A call the breaker refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rejected by breaker {breaker}, {}", if *.mode == Mode::Auto { .state.as_str() } else { .mode.as_str() })]
pub struct Rejected {
    pub breaker: String,
    pub state: State,
    pub mode: Mode,
}

/// How a call ended, as the breaker counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub failure: bool,
    pub duration: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakerSnapshot {
    pub name: String,
    pub state: State,
    pub mode: Mode,
    /// Percent of failed calls in the window (0 when empty).
    pub failure_rate: f64,
    pub slow_rate: f64,
    pub calls_in_window: u32,
    pub failures_in_window: u32,
    pub total_calls: u64,
    pub rejected: u64,
    pub in_state_ms: u64,
    pub probes_in_flight: u32,
    pub settings: BreakerSettings,
    pub transitions: Vec<Transition>,
    /// While open or half-open after tripping: the figures that tripped it (the window is
    /// cleared at the transition, so its own figures no longer say why).
    #[serde(default)]
    pub tripped: Option<Tripped>,
}

/// The rates and calls a breaker tripped on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Tripped {
    pub failure_rate: f64,
    pub slow_rate: f64,
    pub calls: u32,
}

// The gate: what a caller can learn without the lock. `epoch` changes on every transition so
// outcomes of calls admitted before a transition are not counted after it.
const GATE_ADMIT: u64 = 0;
const GATE_REJECT: u64 = 1;
const GATE_LOCKED: u64 = 2;
/// Forced closed: admit without counting into the window.
const GATE_ADMIT_UNCOUNTED: u64 = 3;

pub struct Breaker {
    name: String,
    gate: AtomicU64,
    rejected: AtomicU64,
    /// Calls recorded outside the closed window (probes, forced closed).
    other_calls: AtomicU64,
    /// The closed state's outcomes, updated without the lock.
    window: Window,
    limits: Limits,
    /// The breaker's clock starts here (time windows count milliseconds from it).
    born: Instant,
    inner: Mutex<Inner>,
}

/// The thresholds the lock-free path reads (copies of the settings).
struct Limits {
    failure_rate: AtomicU32,
    slow_rate: AtomicU32,
    slow_call_ns: AtomicU64,
    minimum_calls: AtomicU32,
}

impl Limits {
    fn set(&self, s: &BreakerSettings) {
        self.failure_rate
            .store(s.failure_rate_threshold, Ordering::Relaxed);
        self.slow_rate
            .store(s.slow_call_rate_threshold, Ordering::Relaxed);
        self.slow_call_ns
            .store(s.slow_call().as_nanos() as u64, Ordering::Relaxed);
        self.minimum_calls.store(s.minimum_calls, Ordering::Relaxed);
    }
}

struct Inner {
    state: State,
    mode: Mode,
    since: Instant,
    epoch: u64,
    settings: BreakerSettings,
    probes_admitted: u32,
    probes_done: u32,
    probe_failures: u32,
    probe_slow: u32,
    transitions: VecDeque<Transition>,
    tripped: Option<Tripped>,
}

/// Permission to make one call. Report its outcome with [`Permit::record`]; dropping it
/// unrecorded (the call was cancelled) frees a half-open probe slot without counting anything.
#[must_use = "record the outcome, or drop the permit if the call never happened"]
pub struct Permit<'a> {
    breaker: &'a Breaker,
    epoch: u64,
    probe: bool,
    done: bool,
}

fn gate(epoch: u64, code: u64) -> u64 {
    (epoch << 2) | code
}

fn kind_of(w: WindowSize) -> window::Kind {
    match w {
        WindowSize::Calls(n) => window::Kind::Calls(n),
        WindowSize::Time(d) => window::Kind::Time(d),
    }
}

/// Why the window's figures open the breaker, if they do.
fn verdict(t: &window::Totals, s: &BreakerSettings) -> Option<String> {
    if t.calls < s.minimum_calls {
        return None;
    }
    let over = match s.window {
        WindowSize::Calls(_) => format!("over the last {} calls", t.calls),
        WindowSize::Time(_) => format!("over {} calls in {}", t.calls, s.window.describe()),
    };
    let (fr, sr) = (t.failure_rate(), t.slow_rate());
    if fr >= f64::from(s.failure_rate_threshold) {
        Some(format!(
            "failure rate {fr:.0}% ≥ {}% {over}",
            s.failure_rate_threshold
        ))
    } else if sr >= f64::from(s.slow_call_rate_threshold) {
        Some(format!(
            "slow-call rate {sr:.0}% ≥ {}% (calls ≥ {}ms) {over}",
            s.slow_call_rate_threshold, s.slow_call_ms
        ))
    } else {
        None
    }
}

impl Breaker {
    pub fn new(name: impl Into<String>, settings: BreakerSettings) -> Breaker {
        let limits = Limits {
            failure_rate: AtomicU32::new(0),
            slow_rate: AtomicU32::new(0),
            slow_call_ns: AtomicU64::new(0),
            minimum_calls: AtomicU32::new(0),
        };
        limits.set(&settings);
        Breaker {
            name: name.into(),
            gate: AtomicU64::new(gate(0, GATE_ADMIT)),
            rejected: AtomicU64::new(0),
            other_calls: AtomicU64::new(0),
            window: Window::new(kind_of(settings.window)),
            limits,
            born: Instant::now(),
            inner: Mutex::new(Inner {
                state: State::Closed,
                mode: Mode::Auto,
                since: path::now(),
                epoch: 0,
                settings,
                probes_admitted: 0,
                probes_done: 0,
                probe_failures: 0,
                probe_slow: 0,
                transitions: VecDeque::new(),
                tripped: None,
            }),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now_ms(&self) -> u64 {
        path::now().saturating_duration_since(self.born).as_millis() as u64
    }

    fn reject(&self, state: State, mode: Mode) -> Rejected {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        Rejected {
            breaker: self.name.clone(),
            state,
            mode,
        }
    }

    /// Asks to make a call. A closed (or forced-closed) breaker answers from an atomic; a
    /// forced-open one too, so refusing costs no lock and never touches the upstream.
    pub fn try_acquire(&self) -> Result<Permit<'_>, Rejected> {
        let g = self.gate.load(Ordering::Acquire);
        match g & 3 {
            GATE_ADMIT | GATE_ADMIT_UNCOUNTED => {
                return Ok(Permit {
                    breaker: self,
                    epoch: g >> 2,
                    probe: false,
                    done: false,
                });
            }
            GATE_REJECT => return Err(self.reject(State::Open, Mode::ForcedOpen)),
            _ => {}
        }
        let mut inner = self.lock();
        let now = path::now();
        if inner.mode == Mode::Auto
            && inner.state == State::Open
            && now.saturating_duration_since(inner.since) >= inner.settings.open_for()
        {
            self.transition(
                &mut inner,
                State::HalfOpen,
                "open time elapsed: probing".into(),
                now,
            );
        }
        match (inner.mode, inner.state) {
            (Mode::ForcedClosed, _) | (Mode::Auto, State::Closed) => Ok(Permit {
                breaker: self,
                epoch: inner.epoch,
                probe: false,
                done: false,
            }),
            (Mode::Auto, State::HalfOpen)
                if inner.probes_admitted < inner.settings.half_open_probes =>
            {
                inner.probes_admitted += 1;
                Ok(Permit {
                    breaker: self,
                    epoch: inner.epoch,
                    probe: true,
                    done: false,
                })
            }
            (mode, state) => {
                drop(inner);
                Err(self.reject(state, mode))
            }
        }
    }

    /// What `try_acquire` would answer now, changing nothing (no probe slot taken, no
    /// rejection counted, no open → half-open move): the route inspector's dry run.
    pub fn would_admit(&self) -> Result<(), Rejected> {
        let g = self.gate.load(Ordering::Acquire);
        let refuse = |state, mode| Rejected {
            breaker: self.name.clone(),
            state,
            mode,
        };
        match g & 3 {
            GATE_ADMIT | GATE_ADMIT_UNCOUNTED => return Ok(()),
            GATE_REJECT => return Err(refuse(State::Open, Mode::ForcedOpen)),
            _ => {}
        }
        let inner = self.lock();
        let elapsed = path::now().saturating_duration_since(inner.since);
        match (inner.mode, inner.state) {
            (Mode::ForcedClosed, _) | (Mode::Auto, State::Closed) => Ok(()),
            (Mode::Auto, State::Open) if elapsed >= inner.settings.open_for() => Ok(()),
            (Mode::Auto, State::HalfOpen)
                if inner.probes_admitted < inner.settings.half_open_probes =>
            {
                Ok(())
            }
            (mode, state) => Err(refuse(state, mode)),
        }
    }

    /// Sets the manual mode. Back to auto starts closed with an empty window.
    pub fn set_mode(&self, mode: Mode) {
        let mut inner = self.lock();
        if inner.mode == mode {
            return;
        }
        let now = path::now();
        inner.mode = mode;
        let (to, why) = match mode {
            Mode::ForcedOpen => (State::Open, "forced open by hand"),
            Mode::ForcedClosed => (State::Closed, "forced closed by hand"),
            Mode::Auto => (State::Closed, "set back to auto"),
        };
        self.transition(&mut inner, to, why.into(), now);
    }

    /// Applies new settings; the window restarts at the new size.
    pub fn set_settings(&self, settings: BreakerSettings) {
        let mut inner = self.lock();
        // Callers wait at the lock while the window is rebuilt, as in a transition; an outcome
        // already past the gate may still land (the window's totals stay within its calls).
        let open = self
            .gate
            .swap(gate(inner.epoch, GATE_LOCKED), Ordering::AcqRel);
        self.window.configure(kind_of(settings.window));
        self.limits.set(&settings);
        inner.settings = settings;
        self.gate.store(open, Ordering::Release);
    }

    pub fn state(&self) -> (State, Mode) {
        let inner = self.lock();
        (inner.state, inner.mode)
    }

    /// The state as the gate shows it, without the lock: what a call admitted just now saw
    /// (closed, or half-open for a probe).
    pub fn gate_state(&self) -> State {
        match self.gate.load(Ordering::Acquire) & 3 {
            GATE_ADMIT | GATE_ADMIT_UNCOUNTED => State::Closed,
            GATE_REJECT => State::Open,
            _ => State::HalfOpen,
        }
    }

    pub fn snapshot(&self) -> BreakerSnapshot {
        let inner = self.lock();
        let now = path::now();
        let t = self.window.totals(|| self.now_ms());
        BreakerSnapshot {
            name: self.name.clone(),
            state: inner.state,
            mode: inner.mode,
            failure_rate: t.failure_rate(),
            slow_rate: t.slow_rate(),
            calls_in_window: t.calls,
            failures_in_window: t.failures,
            total_calls: self.window.pushed() + self.other_calls.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            in_state_ms: now.saturating_duration_since(inner.since).as_millis() as u64,
            probes_in_flight: inner.probes_admitted.saturating_sub(inner.probes_done),
            settings: inner.settings.clone(),
            transitions: inner.transitions.iter().cloned().collect(),
            tripped: inner.tripped,
        }
    }

    fn record(&self, permit_epoch: u64, probe: bool, outcome: Outcome) {
        let g = self.gate.load(Ordering::Acquire);
        if g >> 2 != permit_epoch {
            return; // admitted before a transition: its outcome belongs to a past state
        }
        let slow_ns = self.limits.slow_call_ns.load(Ordering::Relaxed);
        let slow = outcome.duration.as_nanos() as u64 >= slow_ns;
        match g & 3 {
            // Closed in auto: the lock-free path. The totals are read only while a failure or
            // slow call is in the window: without one no rate can reach a threshold.
            GATE_ADMIT if !probe => {
                let may_trip = self.window.push(outcome.failure, slow, || self.now_ms());
                if may_trip && self.over_limits() {
                    self.trip(permit_epoch);
                }
                return;
            }
            GATE_ADMIT_UNCOUNTED => {
                self.other_calls.fetch_add(1, Ordering::Relaxed);
                return;
            }
            _ => {}
        }
        let mut inner = self.lock();
        if permit_epoch != inner.epoch {
            return;
        }
        self.other_calls.fetch_add(1, Ordering::Relaxed);
        if (inner.mode, inner.state, probe) != (Mode::Auto, State::HalfOpen, true) {
            return;
        }
        inner.probes_done += 1;
        inner.probe_failures += u32::from(outcome.failure);
        inner.probe_slow += u32::from(slow);
        let n = inner.settings.half_open_probes.max(1);
        let threshold = inner.settings.failure_rate_threshold;
        let slow_threshold = inner.settings.slow_call_rate_threshold;
        // Re-open as soon as the probes can no longer come out under the thresholds.
        let now = Instant::now;
        // The probes' figures, when they re-open it (probes_done is at least 1 here).
        let probes = |i: &Inner| Tripped {
            failure_rate: f64::from(i.probe_failures) * 100.0 / f64::from(i.probes_done),
            slow_rate: f64::from(i.probe_slow) * 100.0 / f64::from(i.probes_done),
            calls: i.probes_done,
        };
        if inner.probe_failures * 100 >= threshold * n {
            let (r, t) = (
                format!("{} of {n} probes failed", inner.probe_failures),
                probes(&inner),
            );
            self.transition(&mut inner, State::Open, r, now());
            inner.tripped = Some(t);
        } else if inner.probe_slow * 100 >= slow_threshold * n {
            let (r, t) = (
                format!("{} of {n} probes were slow", inner.probe_slow),
                probes(&inner),
            );
            self.transition(&mut inner, State::Open, r, now());
            inner.tripped = Some(t);
        } else if inner.probes_done >= n {
            let r = format!("{n} probes done, {} failed", inner.probe_failures);
            self.transition(&mut inner, State::Closed, r, now());
        }
    }

    /// Whether the window's rates reach a threshold (read without the lock).
    fn over_limits(&self) -> bool {
        let t = self.window.totals(|| self.now_ms());
        let l = &self.limits;
        t.calls >= l.minimum_calls.load(Ordering::Relaxed)
            && (u64::from(t.failures) * 100
                >= u64::from(l.failure_rate.load(Ordering::Relaxed)) * u64::from(t.calls)
                || u64::from(t.slow) * 100
                    >= u64::from(l.slow_rate.load(Ordering::Relaxed)) * u64::from(t.calls))
    }

    /// Opens the breaker if it is still closed in the epoch the limits were reached in.
    fn trip(&self, epoch: u64) {
        let mut inner = self.lock();
        if inner.epoch != epoch || (inner.mode, inner.state) != (Mode::Auto, State::Closed) {
            return;
        }
        let t = self.window.totals(|| self.now_ms());
        if let Some(reason) = verdict(&t, &inner.settings) {
            let tripped = Tripped {
                failure_rate: t.failure_rate(),
                slow_rate: t.slow_rate(),
                calls: t.calls,
            };
            self.transition(&mut inner, State::Open, reason, path::now());
            inner.tripped = Some(tripped);
        }
    }

    fn release_probe(&self, permit_epoch: u64) {
        let mut inner = self.lock();
        if permit_epoch == inner.epoch && inner.state == State::HalfOpen {
            inner.probes_admitted = inner.probes_admitted.saturating_sub(1);
        }
    }

    fn transition(&self, inner: &mut Inner, to: State, reason: String, now: Instant) {
        let from = inner.state;
        // Kept through half-open (the probes' verdict replaces it), gone once closed or forced.
        if to == State::Closed || inner.mode != Mode::Auto {
            inner.tripped = None;
        }
        inner.state = to;
        inner.since = now;
        inner.epoch += 1;
        inner.probes_admitted = 0;
        inner.probes_done = 0;
        inner.probe_failures = 0;
        inner.probe_slow = 0;
        let code = match (inner.mode, to) {
            (Mode::ForcedClosed, _) => GATE_ADMIT_UNCOUNTED,
            (Mode::Auto, State::Closed) => GATE_ADMIT,
            (Mode::ForcedOpen, _) => GATE_REJECT,
            _ => GATE_LOCKED,
        };
        // Closed the gate first so no push lands between the clear and the new epoch.
        self.gate
            .store(gate(inner.epoch, GATE_LOCKED), Ordering::Release);
        self.window.clear();
        self.gate.store(gate(inner.epoch, code), Ordering::Release);
        tracing::info!(breaker = %self.name, %from, %to, %reason, "breaker transition");
        if inner.transitions.len() == TRANSITIONS_KEPT {
            inner.transitions.pop_front();
        }
        inner.transitions.push_back(Transition {
            at_unix_ms: crate::balance::service::unix_ms(),
            from,
            to,
            reason,
        });
    }
}

/// A [`Permit`] that owns a handle to its breaker, for a call that outlives the borrow (a
/// boxed future). Dropped unrecorded, it frees its probe slot like a permit.
#[must_use = "record the outcome, or drop the permit if the call never happened"]
pub struct OwnedPermit {
    breaker: Arc<Breaker>,
    epoch: u64,
    probe: bool,
    done: bool,
}

impl Breaker {
    /// [`Breaker::try_acquire`], with a permit that owns a handle to the breaker.
    pub fn try_acquire_owned(self: &Arc<Self>) -> Result<OwnedPermit, Rejected> {
        let p = self.try_acquire()?;
        let (epoch, probe) = (p.epoch, p.probe);
        std::mem::forget(p);
        Ok(OwnedPermit {
            breaker: self.clone(),
            epoch,
            probe,
            done: false,
        })
    }
}

impl OwnedPermit {
    pub fn record(mut self, outcome: Outcome) {
        self.done = true;
        self.breaker.record(self.epoch, self.probe, outcome);
    }
}

impl Drop for OwnedPermit {
    fn drop(&mut self) {
        if !self.done && self.probe {
            self.breaker.release_probe(self.epoch);
        }
    }
}

impl Permit<'_> {
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    pub fn record(mut self, outcome: Outcome) {
        self.done = true;
        self.breaker.record(self.epoch, self.probe, outcome);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.done && self.probe {
            self.breaker.release_probe(self.epoch);
        }
    }
}

#[cfg(test)]
mod tests;
