//! The traffic generator: a steady mix of GET, POST, PUT and DELETE against the gateway, so
//! the dashboard is alive from the first second. `rps` 0 pauses it.

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// Requests in flight at most; beyond that a tick is skipped (and counted), not queued.
const MAX_IN_FLIGHT: usize = 256;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
pub struct Traffic {
    rps: AtomicU32,
    sent: AtomicU64,
    ok: AtomicU64,
    client_errors: AtomicU64,
    failed_idempotent: AtomicU64,
    failed_other: AtomicU64,
    skipped: AtomicU64,
    last_failure: std::sync::Mutex<Option<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrafficView {
    pub rps: u32,
    pub sent: u64,
    pub ok: u64,
    /// 4xx answers.
    pub client_errors: u64,
    /// 5xx answers and transport errors of GET/PUT/DELETE.
    pub failed_idempotent: u64,
    /// The same for POST.
    pub failed_other: u64,
    pub skipped: u64,
    pub last_failure: Option<String>,
}

impl Traffic {
    pub fn new(rps: u32) -> Arc<Traffic> {
        let t = Traffic::default();
        t.rps.store(rps, Ordering::Relaxed);
        Arc::new(t)
    }

    pub fn set_rps(&self, rps: u32) {
        self.rps.store(rps, Ordering::Relaxed);
    }

    pub fn rps(&self) -> u32 {
        self.rps.load(Ordering::Relaxed)
    }

    pub fn view(&self) -> TrafficView {
        TrafficView {
            rps: self.rps(),
            sent: self.sent.load(Ordering::Relaxed),
            ok: self.ok.load(Ordering::Relaxed),
            client_errors: self.client_errors.load(Ordering::Relaxed),
            failed_idempotent: self.failed_idempotent.load(Ordering::Relaxed),
            failed_other: self.failed_other.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            last_failure: self
                .last_failure
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }

    fn record(&self, method: &reqwest::Method, outcome: Result<u16, String>) {
        match outcome {
            Ok(s) if s < 400 => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Ok(s) if s < 500 => {
                self.client_errors.fetch_add(1, Ordering::Relaxed);
            }
            other => {
                let counter = if *method == reqwest::Method::POST {
                    &self.failed_other
                } else {
                    &self.failed_idempotent
                };
                counter.fetch_add(1, Ordering::Relaxed);
                let msg = match other {
                    Ok(s) => format!("{method}: HTTP {s}"),
                    Err(e) => format!("{method}: {e}"),
                };
                *self.last_failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(msg);
            }
        }
    }
}

/// One request of the mix, by position in a 20-step cycle.
fn request(step: u64, created: &AtomicU64) -> (reqwest::Method, String, Option<serde_json::Value>) {
    let id = step % 5 + 1;
    match step % 20 {
        0..=7 => (reqwest::Method::GET, format!("/api/users/{id}"), None),
        8..=11 => (reqwest::Method::GET, format!("/api/orders/{id}"), None),
        12 | 13 => (reqwest::Method::GET, "/api/users".into(), None),
        14 | 15 => (reqwest::Method::GET, "/api/orders".into(), None),
        16 => (
            reqwest::Method::POST,
            "/api/users".into(),
            Some(
                serde_json::json!({"name": format!("Load Tester {step}"), "email": "load@example.com", "age": 30}),
            ),
        ),
        17 | 18 => match created.load(Ordering::Relaxed) {
            0 => (reqwest::Method::GET, format!("/api/users/{id}"), None),
            n => (
                reqwest::Method::PUT,
                format!("/api/users/{n}"),
                Some(
                    serde_json::json!({"name": format!("Load Tester {n}"), "email": "load@example.com", "age": 31}),
                ),
            ),
        },
        _ => match created.swap(0, Ordering::Relaxed) {
            0 => (reqwest::Method::GET, format!("/api/orders/{id}"), None),
            n => (reqwest::Method::DELETE, format!("/api/users/{n}"), None),
        },
    }
}

/// Runs the generator against `gateway` (e.g. `http://127.0.0.1:8080`) until aborted.
pub fn spawn(gateway: String, traffic: Arc<Traffic>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .unwrap_or_default();
        let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let created = Arc::new(AtomicU64::new(0));
        let mut step: u64 = 0;
        loop {
            let rps = traffic.rps();
            if rps == 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            tokio::time::sleep(Duration::from_secs_f64(1.0 / f64::from(rps))).await;
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                traffic.skipped.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let (method, path, body) = request(step, &created);
            step += 1;
            traffic.sent.fetch_add(1, Ordering::Relaxed);
            let (http, traffic, created) = (http.clone(), traffic.clone(), created.clone());
            let url = format!("{gateway}{path}");
            tokio::spawn(async move {
                let mut req = http
                    .request(method.clone(), url)
                    .header("x-traffic", "lgo-dash");
                if let Some(b) = body {
                    req = req.json(&b);
                }
                let outcome = match req.send().await {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        if method == reqwest::Method::POST
                            && status == 201
                            && let Ok(v) = resp.json::<serde_json::Value>().await
                            && let Some(id) = v["id"].as_u64()
                        {
                            created.store(id, Ordering::Relaxed);
                        }
                        Ok(status)
                    }
                    Err(e) => Err(crate::client::headers::root_cause(&e)),
                };
                traffic.record(&method, outcome);
                drop(permit);
            });
        }
    })
}
