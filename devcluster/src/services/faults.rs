//! Fault injection per sample instance: added latency (fixed + jitter), an error rate (answers
//! 500), or a hang — each optionally for N seconds, reverting by itself. `GET /health` is spared
//! by latency and errors (a slow or flaky instance still passes its checks, as in real life);
//! a hang stops everything, health included.

use crate::balance::SeededRng;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::time::Instant;

/// What to inject. All zero/false is no fault.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Fault {
    pub latency_ms: u64,
    pub jitter_ms: u64,
    /// Share of requests answered 500, from 0.0 to 1.0.
    pub error_rate: f64,
    pub hang: bool,
}

impl Fault {
    /// Checks ranges; keys are the fault's own (`error_rate`), to be put under its place.
    pub fn validate(&self) -> Result<(), crate::config::Invalid> {
        use crate::config::Invalid;
        if !(0.0..=1.0).contains(&self.error_rate) {
            return Err(Invalid::new("error_rate", self.error_rate, "0.0 to 1.0"));
        }
        for (key, ms) in [
            ("latency_ms", self.latency_ms),
            ("jitter_ms", self.jitter_ms),
        ] {
            if ms > 60_000 {
                return Err(Invalid::new(key, ms, "at most 60000"));
            }
        }
        Ok(())
    }

    pub fn is_none(&self) -> bool {
        *self == Fault::default()
    }

    /// A short label: "+200±50ms 30%err hang".
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if self.latency_ms > 0 || self.jitter_ms > 0 {
            parts.push(if self.jitter_ms > 0 {
                format!("+{}±{}ms", self.latency_ms, self.jitter_ms)
            } else {
                format!("+{}ms", self.latency_ms)
            });
        }
        if self.error_rate > 0.0 {
            parts.push(format!("{:.0}%err", self.error_rate * 100.0));
        }
        if self.hang {
            parts.push("hang".into());
        }
        if parts.is_empty() {
            parts.push("none".into());
        }
        parts.join(" ")
    }
}

/// A fault as the dashboard shows it, with its countdown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultView {
    #[serde(flatten)]
    pub fault: Fault,
    /// Time left before it reverts by itself; `None` = until cleared.
    pub remaining_ms: Option<u64>,
}

#[derive(Default)]
pub struct Faults {
    map: RwLock<BTreeMap<String, (Fault, Option<Instant>)>>,
    rng: Option<SeededRng>,
}

impl Faults {
    pub fn new() -> Arc<Faults> {
        Arc::new(Faults {
            map: RwLock::new(BTreeMap::new()),
            rng: Some(SeededRng::new(0x5eed)),
        })
    }

    pub fn set(&self, id: &str, fault: Fault, duration: Option<Duration>) {
        let until = duration.map(|d| Instant::now() + d);
        let mut m = self.map.write().unwrap_or_else(|e| e.into_inner());
        if fault.is_none() {
            m.remove(id);
        } else {
            m.insert(id.to_string(), (fault, until));
        }
    }

    pub fn clear(&self, id: &str) -> bool {
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id)
            .is_some()
    }

    /// The active fault of an instance (an expired one is gone).
    pub fn get(&self, id: &str) -> Option<Fault> {
        let now = Instant::now();
        let m = self.map.read().unwrap_or_else(|e| e.into_inner());
        match m.get(id) {
            Some((f, until)) if until.is_none_or(|u| u > now) => Some(f.clone()),
            _ => None,
        }
    }

    pub fn view(&self, id: &str) -> Option<FaultView> {
        let now = Instant::now();
        let m = self.map.read().unwrap_or_else(|e| e.into_inner());
        let (f, until) = m.get(id)?;
        if until.is_some_and(|u| u <= now) {
            return None;
        }
        Some(FaultView {
            fault: f.clone(),
            remaining_ms: until.map(|u| (u - now).as_millis() as u64),
        })
    }

    fn roll(&self) -> f64 {
        self.rng
            .as_ref()
            .map_or(0.5, |r| (r.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
    }
}

/// The middleware state: which instance this router serves.
#[derive(Clone)]
pub struct FaultLayerState {
    pub faults: Arc<Faults>,
    pub instance: Arc<str>,
}

pub async fn inject(State(s): State<FaultLayerState>, req: Request, next: Next) -> Response {
    // Probes and scrapes see the instance as it is, not the injected fault.
    let probe = matches!(req.uri().path(), "/health" | "/metrics");
    let error = |instance: &str| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({"error": format!("injected fault on {instance}")})),
        )
            .into_response()
    };
    match injected(&s, probe, error).await {
        Some(answer) => answer,
        None => next.run(req).await,
    }
}

/// The same faults on an instance's gRPC side: an injected error is UNAVAILABLE (what a
/// failing gRPC server answers, and what callers retry); health checks and reflection pass.
pub async fn inject_grpc(State(s): State<FaultLayerState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let probe = path.starts_with("/grpc.health.") || path.starts_with("/grpc.reflection.");
    let error = |instance: &str| {
        tonic::Status::unavailable(format!("injected fault on {instance}"))
            .into_http::<axum::body::Body>()
    };
    match injected(&s, probe, error).await {
        Some(answer) => answer,
        None => next.run(req).await,
    }
}

/// What the instance's fault does to a request: hangs it, delays it, or answers it with
/// `error`; `None` when the request is to be served (after any delay).
async fn injected(
    s: &FaultLayerState,
    probe: bool,
    error: impl FnOnce(&str) -> Response,
) -> Option<Response> {
    let f = s.faults.get(&s.instance)?;
    if f.hang {
        // Never answer: callers see their timeout, health checks too.
        std::future::pending::<()>().await;
    }
    if probe {
        return None;
    }
    if f.latency_ms > 0 || f.jitter_ms > 0 {
        let jitter = (s.faults.roll() * f.jitter_ms as f64) as u64;
        tokio::time::sleep(Duration::from_millis(f.latency_ms + jitter)).await;
    }
    (f.error_rate > 0.0 && s.faults.roll() < f.error_rate).then(|| error(&s.instance))
}
