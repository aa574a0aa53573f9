//! The service client: every call between services goes through it. The stack, in order:
//! discovery (the registry's view of the target) → balancer (a passing, non-ejected instance)
//! → breaker (`CALLER->TARGET`) → per-attempt timeout → retries of idempotent requests on a
//! different instance, within a retry budget. Trace-context headers are passed on.

mod budget;
pub mod headers;

pub use budget::RetryBudget;

use crate::balance::service::{Balancers, NoCandidate};
use crate::breaker::{Breakers, Outcome, Rejected};
use crate::registry::Registry;
use crate::telemetry;
use crate::telemetry::metrics::MetricsHub;
use axum::body::Body;
use axum::response::IntoResponse;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::time::Instant;
use tracing::Instrument;

/// Largest request body kept in memory so an idempotent request can be retried; bigger ones
/// stream through once.
const MAX_REPLAY_BODY: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq)]
pub struct ClientSettings {
    pub call_timeout: Duration,
    pub attempts: u32,
    pub budget_percent: u32,
    pub min_retries_per_second: u32,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            call_timeout: Duration::from_secs(2),
            attempts: 3,
            budget_percent: 20,
            min_retries_per_second: 10,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    NoInstance(#[from] NoCandidate),
    #[error(transparent)]
    Rejected(#[from] Rejected),
    #[error("{instance} did not answer within {after:?}")]
    Timeout { instance: String, after: Duration },
    #[error("{instance} failed: {message}")]
    Upstream { instance: String, message: String },
    #[error("{0}")]
    BadRequest(String),
}

impl CallError {
    pub fn status(&self) -> StatusCode {
        match self {
            CallError::NoInstance(_) | CallError::Rejected(_) => StatusCode::SERVICE_UNAVAILABLE,
            CallError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            CallError::Upstream { .. } => StatusCode::BAD_GATEWAY,
            CallError::BadRequest(_) => StatusCode::BAD_REQUEST,
        }
    }
}

impl IntoResponse for CallError {
    fn into_response(self) -> axum::response::Response {
        let mut body = json!({"error": self.to_string()});
        if let CallError::Rejected(r) = &self {
            body["breaker"] = json!(r.breaker);
            body["state"] = json!(r.state);
            body["mode"] = json!(r.mode);
        }
        (self.status(), axum::Json(body)).into_response()
    }
}

/// One outgoing call.
pub struct Call {
    pub method: Method,
    /// Path and query as the upstream should see them (already rewritten).
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Body,
    /// Named path parameters, for `hash_key = "path:NAME"`.
    pub params: Vec<(String, String)>,
}

impl Call {
    pub fn get(path_and_query: impl Into<String>) -> Call {
        Call {
            method: Method::GET,
            path_and_query: path_and_query.into(),
            headers: HeaderMap::new(),
            body: Body::empty(),
            params: Vec::new(),
        }
    }
}

fn idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS | Method::TRACE
    )
}

pub struct ServiceClient {
    caller: String,
    registry: Registry,
    balancers: Arc<Balancers>,
    breakers: Arc<Breakers>,
    http: Client<HttpConnector, Body>,
    settings: RwLock<ClientSettings>,
    budget: RetryBudget,
    hash_keys: RwLock<BTreeMap<String, String>>,
    metrics: Option<Arc<MetricsHub>>,
}

impl ServiceClient {
    pub fn new(
        caller: impl Into<String>,
        registry: Registry,
        balancers: Arc<Balancers>,
        breakers: Arc<Breakers>,
        settings: ClientSettings,
        hash_keys: BTreeMap<String, String>,
    ) -> ServiceClient {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(settings.call_timeout));
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(256)
            .build(connector);
        ServiceClient {
            caller: caller.into(),
            registry,
            balancers,
            breakers,
            http,
            budget: RetryBudget::new(settings.budget_percent, settings.min_retries_per_second),
            metrics: None,
            settings: RwLock::new(settings),
            hash_keys: RwLock::new(hash_keys),
        }
    }

    pub fn caller(&self) -> &str {
        &self.caller
    }

    pub fn settings(&self) -> ClientSettings {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_settings(&self, s: ClientSettings) {
        self.budget.set(s.budget_percent, s.min_retries_per_second);
        *self.settings.write().unwrap_or_else(|e| e.into_inner()) = s;
    }

    pub fn set_hash_keys(&self, keys: BTreeMap<String, String>) {
        *self.hash_keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
    }

    /// The balancing key of a call to `target`, per its `hash_key` setting.
    pub fn hash_key(
        &self,
        target: &str,
        headers: &HeaderMap,
        params: &[(String, String)],
    ) -> Option<String> {
        let keys = self.hash_keys.read().unwrap_or_else(|e| e.into_inner());
        let spec = keys.get(target)?;
        if let Some(h) = spec.strip_prefix("header:") {
            return headers
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
        }
        let p = spec.strip_prefix("path:")?;
        params.iter().find(|(k, _)| k == p).map(|(_, v)| v.clone())
    }

    /// Sends `call` to a passing instance of `target`. An upstream 5xx after the last attempt
    /// is returned as the upstream sent it; failures to get any answer are `CallError`s.
    pub async fn call(&self, target: &str, call: Call) -> Result<Response<Body>, CallError> {
        // One span for the call (a child of the caller's span: it inherits its service), one
        // per attempt below it; the attempt's context is what the callee sees as its parent.
        let span = tracing::info_span!(
            "call",
            otel.name = %format_args!("call {target}"),
            peer.service = %target,
            http.method = %call.method,
            attempts = tracing::field::Empty,
            http.status_code = tracing::field::Empty,
            error = tracing::field::Empty,
        );
        let result = self
            .call_in(target, call, &span)
            .instrument(span.clone())
            .await;
        match &result {
            Ok(resp) => {
                span.record("http.status_code", resp.status().as_u16());
                if resp.status().is_server_error() {
                    span.record("error", true);
                }
            }
            Err(e) => {
                span.record("http.status_code", e.status().as_u16());
                span.record("error", true);
            }
        }
        result
    }

    /// Counts every attempt into `hub` (the admin port's `/metrics`).
    #[must_use]
    pub fn with_metrics(mut self, hub: Arc<MetricsHub>) -> Self {
        self.metrics = Some(hub);
        self
    }

    async fn call_in(
        &self,
        target: &str,
        mut call: Call,
        call_span: &tracing::Span,
    ) -> Result<Response<Body>, CallError> {
        let settings = self.settings();
        headers::strip_hop_by_hop(&mut call.headers);
        let key = self.hash_key(target, &call.headers, &call.params);
        let retryable = idempotent(&call.method) && settings.attempts > 1;
        let replay = if retryable {
            let bytes = axum::body::to_bytes(std::mem::take(&mut call.body), MAX_REPLAY_BODY)
                .await
                .map_err(|e| CallError::BadRequest(format!("cannot read request body: {e}")))?;
            Some(bytes)
        } else {
            None
        };
        let balancer = self.balancers.get(target);
        let breaker_name = Breakers::name(&self.caller, target);
        let breaker = self.breakers.get(&breaker_name);
        self.budget.deposit();
        let mut tried: Vec<String> = Vec::new();
        let mut attempt = 0;
        loop {
            attempt += 1;
            call_span.record("attempts", attempt);
            let span = tracing::info_span!(
                "attempt",
                otel.name = %format_args!("{} {target}", call.method),
                attempt,
                peer.instance = tracing::field::Empty,
                balancer.strategy = %balancer.strategy(),
                balancer.reason = tracing::field::Empty,
                breaker = %breaker_name,
                breaker.state = tracing::field::Empty,
                http.status_code = tracing::field::Empty,
                error = tracing::field::Empty,
            );
            let trace_id = headers::propagate(
                &mut call.headers,
                telemetry::context_of(&span),
                telemetry::context_of(call_span),
            );
            let trace = trace_id.to_string();
            let instances = self.registry.service_shared(target);
            let picked = balancer.pick(
                &self.caller,
                &instances,
                key.as_deref(),
                &tried,
                Some(&trace),
                attempt,
            );
            let picked = match picked {
                Ok(p) => p,
                Err(e) => {
                    span.record("otel.name", e.to_string());
                    span.record("error", true);
                    return Err(e.into());
                }
            };
            let inst = &instances[picked.index];
            span.record("peer.instance", inst.id.as_str());
            span.record("balancer.reason", picked.record.reason.as_str());
            let (state, _) = breaker.state();
            span.record("breaker.state", state.as_str());
            // A refused call is a span of its own that says so.
            let permit = match breaker.try_acquire() {
                Ok(p) => p,
                Err(r) => {
                    span.record("otel.name", r.to_string());
                    span.record("error", true);
                    return Err(r.into());
                }
            };
            let uri = format!(
                "http://{}:{}{}",
                inst.address, inst.port, call.path_and_query
            );
            let mut builder = Request::builder().method(call.method.clone()).uri(&uri);
            if let Some(h) = builder.headers_mut() {
                h.clone_from(&call.headers);
                if let Ok(v) =
                    http::HeaderValue::from_str(&format!("{}:{}", inst.address, inst.port))
                {
                    h.insert(http::header::HOST, v);
                }
            }
            let body = match &replay {
                Some(b) => Body::from(b.clone()),
                None => std::mem::take(&mut call.body),
            };
            let req = builder.body(body).map_err(|e| {
                CallError::BadRequest(format!("invalid upstream request {uri}: {e}"))
            })?;
            let started = Instant::now();
            let in_flight = picked.load.start();
            let result = tokio::time::timeout(settings.call_timeout, self.http.request(req))
                .instrument(span.clone())
                .await;
            drop(in_flight);
            let elapsed = started.elapsed();
            let (outcome, error) = match result {
                Ok(Ok(resp)) => {
                    let failure = resp.status().is_server_error();
                    span.record("http.status_code", resp.status().as_u16());
                    (Ok(resp.map(Body::new)), failure)
                }
                Ok(Err(e)) => (
                    Err(CallError::Upstream {
                        instance: inst.id.clone(),
                        message: headers::root_cause(&e),
                    }),
                    true,
                ),
                Err(_) => (
                    Err(CallError::Timeout {
                        instance: inst.id.clone(),
                        after: settings.call_timeout,
                    }),
                    true,
                ),
            };
            if error {
                span.record("error", true);
            }
            if let Some(m) = &self.metrics {
                let outcome_label = match &outcome {
                    Ok(r) if r.status().is_server_error() => "5xx",
                    Ok(_) => "ok",
                    Err(CallError::Timeout { .. }) => "timeout",
                    Err(_) => "connect_error",
                };
                m.record_call(&self.caller, target, &inst.id, outcome_label, elapsed);
            }
            if let Err(e) = &outcome {
                span.in_scope(|| tracing::warn!("{e}"));
            }
            permit.record(Outcome {
                failure: error,
                duration: elapsed,
            });
            balancer.report(&inst.id, &picked.load, elapsed, error);
            let again =
                error && replay.is_some() && attempt < settings.attempts && self.budget.withdraw();
            if !again {
                return outcome;
            }
            span.in_scope(|| {
                tracing::debug!(caller = %self.caller, %target, instance = %inst.id, attempt, "retrying on another instance");
            });
            tried.push(inst.id.clone());
        }
    }
}
