//! The traffic generator: a steady mix of GET, POST, PUT and DELETE against the gateway, so
//! the dashboard is alive from the first second. `rps` 0 pauses it.
//!
//! Open-loop pacing: the n-th request of a rate is due at `start + n / rps`, and whatever is due
//! is sent at each wake-up without waiting for answers (a sleep per request cannot go below the
//! timer's millisecond, which capped 1000 req/s at about 480). When requests cannot go out (too
//! many in flight, or the loop fell more than a second behind) they are counted as skipped and
//! the generator says so in its view and in the log.

use crate::client::pool::{Host, Outgoing, SendError};
use crate::client::request::ReqBody;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Requests in flight at most; beyond that a tick is skipped (and counted), not queued.
const MAX_IN_FLIGHT: usize = 256;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The loop wakes at most this often; what fell due meanwhile goes out together.
const MIN_TICK: Duration = Duration::from_millis(2);
/// Further behind than this many seconds of requests, the rest is skipped rather than burst.
const MAX_LAG_S: f64 = 1.0;

#[derive(Debug, Default)]
pub struct Traffic {
    rps: AtomicU32,
    sent: AtomicU64,
    ok: AtomicU64,
    client_errors: AtomicU64,
    failed_idempotent: AtomicU64,
    failed_other: AtomicU64,
    skipped: AtomicU64,
    /// Requests sent in the last complete second.
    achieved: AtomicU32,
    /// Requests were skipped in the last complete second.
    behind: AtomicBool,
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
    /// Requests actually sent in the last complete second.
    #[serde(default)]
    pub achieved_rps: u32,
    /// The generator could not keep up with `rps` in the last complete second.
    #[serde(default)]
    pub behind: bool,
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
            achieved_rps: self.achieved.load(Ordering::Relaxed),
            behind: self.behind.load(Ordering::Relaxed),
            last_failure: self
                .last_failure
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }

    fn record(&self, method: &Method, outcome: Result<u16, String>) {
        match outcome {
            Ok(s) if s < 400 => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Ok(s) if s < 500 => {
                self.client_errors.fetch_add(1, Ordering::Relaxed);
            }
            other => {
                let counter = if *method == Method::POST {
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
fn request(step: u64, created: &AtomicU64) -> (Method, String, Option<serde_json::Value>) {
    let id = step % 5 + 1;
    match step % 20 {
        0..=7 => (Method::GET, format!("/api/users/{id}"), None),
        8..=11 => (Method::GET, format!("/api/orders/{id}"), None),
        12 | 13 => (Method::GET, "/api/users".into(), None),
        14 | 15 => (Method::GET, "/api/orders".into(), None),
        16 => (
            Method::POST,
            "/api/users".into(),
            Some(
                serde_json::json!({"name": format!("Load Tester {step}"), "email": "load@example.com", "age": 30}),
            ),
        ),
        17 | 18 => match created.load(Ordering::Relaxed) {
            0 => (Method::GET, format!("/api/users/{id}"), None),
            n => (
                Method::PUT,
                format!("/api/users/{n}"),
                Some(
                    serde_json::json!({"name": format!("Load Tester {n}"), "email": "load@example.com", "age": 31}),
                ),
            ),
        },
        _ => match created.swap(0, Ordering::Relaxed) {
            0 => (Method::GET, format!("/api/orders/{id}"), None),
            n => (Method::DELETE, format!("/api/users/{n}"), None),
        },
    }
}

/// Paces one rate: which requests are due, and the per-second tally of what went out.
struct Pacer {
    rps: u32,
    start: Instant,
    /// Requests of this rate issued (sent or skipped) so far.
    issued: u64,
    second: Instant,
    sent_this_second: u32,
    skipped_this_second: u64,
}

impl Pacer {
    fn new(rps: u32, now: Instant) -> Pacer {
        Pacer {
            rps,
            start: now,
            issued: 0,
            second: now,
            sent_this_second: 0,
            skipped_this_second: 0,
        }
    }

    /// How many requests are due now (the first at once), and how many of those are too late
    /// to send (more than `MAX_LAG_S` behind).
    fn due(&mut self, now: Instant) -> (u64, u64) {
        let rate = f64::from(self.rps);
        let due = (now.saturating_duration_since(self.start).as_secs_f64() * rate) as u64 + 1;
        let pending = due.saturating_sub(self.issued);
        let max = (rate * MAX_LAG_S).max(1.0) as u64;
        self.issued = due;
        (pending.min(max), pending.saturating_sub(max))
    }

    /// When the next request falls due.
    fn next_at(&self) -> Instant {
        self.start + Duration::from_secs_f64(self.issued as f64 / f64::from(self.rps))
    }
}

/// Where the generator sends: the gateway's address and port, from its URL.
fn gateway_host(url: &str) -> Option<Arc<Host>> {
    let uri: http::Uri = url.parse().ok()?;
    let port = uri.port_u16().unwrap_or(80);
    Some(Host::new(uri.host()?.into(), port))
}

/// Runs the generator against `gateway` (e.g. `http://127.0.0.1:8080`) until `stop` is
/// cancelled (requests already sent finish on their own).
///
/// It sends with the service client's own HTTP/1.1 connections (`client::pool`), not a
/// general-purpose client: at 100 req/s a request's URL parsing, its pool lookups and
/// connector stack were a fifth of what the whole cluster spent.
pub fn spawn(
    gateway: String,
    traffic: Arc<Traffic>,
    stop: tokio_util::sync::CancellationToken,
) -> JoinHandle<()> {
    crate::telemetry::spawn(async move {
        stop.run_until_cancelled_owned(async move {
            let Some(host) = gateway_host(&gateway) else {
                tracing::error!(gateway, "traffic generator: not an http://HOST:PORT URL");
                return;
            };
            let mut headers = HeaderMap::new();
            headers.insert("x-traffic", HeaderValue::from_static("lgo-dash"));
            let headers = Arc::new(headers);
            let mut json = headers.as_ref().clone();
            json.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            let json = Arc::new(json);
            let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
            let created = Arc::new(AtomicU64::new(0));
            let mut step: u64 = 0;
            let mut pacer = Pacer::new(0, Instant::now());
            loop {
                let rps = traffic.rps();
                if rps != pacer.rps {
                    pacer = Pacer::new(rps, Instant::now());
                }
                if rps == 0 {
                    traffic.achieved.store(0, Ordering::Relaxed);
                    traffic.behind.store(false, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                let now = Instant::now();
                let (send, late) = pacer.due(now);
                let mut skipped = late;
                for _ in 0..send {
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        skipped += 1;
                        continue;
                    };
                    let (method, path, body) = request(step, &created);
                    step += 1;
                    pacer.sent_this_second += 1;
                    traffic.sent.fetch_add(1, Ordering::Relaxed);
                    let (host, traffic, created) = (host.clone(), traffic.clone(), created.clone());
                    let headers = if body.is_some() { &json } else { &headers }.clone();
                    crate::telemetry::spawn(async move {
                        let sent = send_one(host, &method, &path, &headers, body, &created);
                        let outcome = match tokio::time::timeout(REQUEST_TIMEOUT, sent).await {
                            Ok(outcome) => outcome,
                            Err(_) => Err(format!("no answer in {}s", REQUEST_TIMEOUT.as_secs())),
                        };
                        traffic.record(&method, outcome);
                        drop(permit);
                    });
                }
                if skipped > 0 {
                    traffic.skipped.fetch_add(skipped, Ordering::Relaxed);
                    pacer.skipped_this_second += skipped;
                }
                if now.saturating_duration_since(pacer.second) >= Duration::from_secs(1) {
                    let behind = pacer.skipped_this_second > 0;
                    if behind && !traffic.behind.load(Ordering::Relaxed) {
                        tracing::warn!(
                            rps,
                            sent = pacer.sent_this_second,
                            skipped = pacer.skipped_this_second,
                            "traffic generator cannot keep up: {} of {rps} req/s went out",
                            pacer.sent_this_second
                        );
                    }
                    traffic
                        .achieved
                        .store(pacer.sent_this_second, Ordering::Relaxed);
                    traffic.behind.store(behind, Ordering::Relaxed);
                    pacer.second = now;
                    pacer.sent_this_second = 0;
                    pacer.skipped_this_second = 0;
                }
                let next = pacer.next_at().max(now + MIN_TICK);
                tokio::time::sleep_until(next).await;
            }
        })
        .await;
    })
}

/// Sends one request and reads its answer to the end (so the connection is reused); a created
/// user's id is kept for the PUT and DELETE that follow.
async fn send_one(
    host: Arc<Host>,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: Option<serde_json::Value>,
    created: &AtomicU64,
) -> Result<u16, String> {
    let body = match body {
        Some(b) => ReqBody::Full(Some(Bytes::from(b.to_string()))),
        None => ReqBody::Empty,
    };
    let out = Outgoing {
        method,
        target: path,
        headers,
        body,
        trace: None,
        forward: false,
        forwarded_for: None,
    };
    let resp = host.send(out).await.map_err(|e| match e {
        SendError::NotSent(e) | SendError::Failed(e) => {
            crate::client::headers::root_cause(e.as_ref())
        }
    })?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("HTTP {status}, body cut: {e}"))?
        .to_bytes();
    if *method == Method::POST
        && status == 201
        && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body)
        && let Some(id) = v["id"].as_u64()
    {
        created.store(id, Ordering::Relaxed);
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_fall_due_at_the_asked_rate_without_bursting_after_a_stall() {
        let t0 = Instant::now();
        let mut p = Pacer::new(1000, t0);
        assert_eq!(p.due(t0), (1, 0), "the first goes at once");
        // 2 ms later two more are due (the timer cannot wake every millisecond: they go together).
        assert_eq!(p.due(t0 + Duration::from_millis(2)), (2, 0));
        let mut sent = 3;
        let mut now = t0 + Duration::from_millis(2);
        while now < t0 + Duration::from_secs(1) {
            now = p.next_at().max(now + MIN_TICK);
            sent += p.due(now).0;
        }
        assert!((1000..=1003).contains(&sent), "{sent} in one second");
        // A 5-second stall: one second's worth goes out, the rest is skipped.
        let (send, late) = p.due(now + Duration::from_secs(5));
        assert_eq!((send, late), (1000, 4000));
    }
}
