//! The service client: every call between services goes through it, as one stack of small
//! layers in tower's shape (`Layer`/`Service`), in this order:
//!
//! ```text
//! call span        (ServiceClient::call: the call's span, its trace context)
//!  → guard         breaker CALLER->TARGET: admits the call, counts the whole call's outcome
//!  → retry         idempotent requests again on an instance not tried yet, within a budget
//!  → pick          the balancer's choice among passing, non-ejected instances, recorded
//!  → attempt       the attempt's span, trace headers, client metrics
//!  → outlier       in-flight count, latency and failures reported to the balancer
//!  → timeout       per attempt
//!  → connect       the pooled HTTP/1.1 connection to the chosen instance
//! ```
//!
//! The breaker guards the **service** (after retries), outlier ejection the **instance**, as
//! Envoy and linkerd separate them. The breaker is asked before the pick, so a refused call is
//! never counted as a pick. The per-attempt timeout sits below the pick (which takes no time)
//! so that the outlier report and the attempt's span see a timeout as that instance's outcome.
//!
//! [`ServiceClient::explain`] runs the same stack as a dry run: each layer says what it would
//! do and changes nothing (no breaker count, no turn of a rotation, no pick recorded); the
//! route inspector and `ctl route explain` show that.

mod attempt;
mod budget;
pub mod explain;
pub mod grpc;
mod guard;
mod h2;
pub mod headers;
pub(crate) mod http1;
mod outlier;
mod pick;
pub mod pool;
pub mod request;
mod retry;
pub mod target;
mod then;
mod timeout;

pub use budget::RetryBudget;
pub use explain::Explain;
pub use request::{CallError, Resp};

use crate::balance::service::Balancers;
use crate::breaker::Breakers;
use crate::registry::Registry;
use crate::telemetry::metrics::MetricsHub;
use crate::telemetry::names::Name;
use crate::telemetry::path::{self, CallSpan, PathSpan, Scope, Timing};
use crate::telemetry::{SpanContext, SpanId, TraceId};
use axum::body::Body;
use http::{HeaderMap, HeaderValue, Method};
use pool::{Connect, Pool};
use request::{CallShared, Req, ReqBody};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use target::Target;
use tower::Service;

/// Largest request body kept in memory so an idempotent request can be retried; bigger ones
/// stream through once.
const MAX_REPLAY_BODY: usize = 1 << 20;

/// The future of a layer that waits for something of its own (retries, the connection).
pub type BoxFuture = Pin<Box<dyn Future<Output = Result<Resp, CallError>> + Send>>;

/// What a layer needs of the layers below it. Every layer does its own work when called and
/// returns a future that only waits for the layers below (then, for some, does a little more:
/// `then::Then`): no request is moved into a future, and there is no `poll_ready` to wait for
/// (every layer is always ready).
pub trait Stack:
    Service<Req, Response = Resp, Error = CallError, Future: Send + Unpin + 'static>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<T> Stack for T where
    T: Service<Req, Response = Resp, Error = CallError, Future: Send + Unpin + 'static>
        + Clone
        + Send
        + Sync
        + 'static
{
}

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

/// The settings the layers read on every call, as atomics (changed live by the config center).
#[derive(Debug)]
pub struct Knobs {
    pub timeout_ms: AtomicU64,
    pub attempts: AtomicU32,
}

impl Default for Knobs {
    fn default() -> Self {
        let d = ClientSettings::default();
        Knobs {
            timeout_ms: AtomicU64::new(d.call_timeout.as_millis() as u64),
            attempts: AtomicU32::new(d.attempts),
        }
    }
}

impl Knobs {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.load(Ordering::Relaxed))
    }

    fn set(&self, s: &ClientSettings) {
        self.timeout_ms
            .store(s.call_timeout.as_millis() as u64, Ordering::Relaxed);
        self.attempts.store(s.attempts, Ordering::Relaxed);
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
    pub params: Vec<(Arc<str>, String)>,
    /// The request this call is made for (its trace, its span, who handles it). Without one,
    /// the task's current request scope, then the current `tracing` span, then trace headers
    /// already in `headers`; else a new trace starts.
    pub parent: Option<Scope>,
    /// For a proxy: the answer comes with its header lines as the instance wrote them
    /// (`PooledBody::forwarded`, hop-by-hop ones left out) and an empty header map.
    pub forward: bool,
    /// For a proxy: its client's address, added to `X-Forwarded-For` as the request is written.
    pub forwarded_for: Option<HeaderValue>,
    /// A gRPC call ([`grpc::GrpcChannel`]): sent on the instance's HTTP/2 connection, its
    /// outcome read from its gRPC status.
    pub grpc: bool,
    /// Whether the call may be sent again after it reached an instance; `None`: as its HTTP
    /// method says (GET, PUT, DELETE… may).
    pub idempotent: Option<bool>,
}

impl Call {
    pub fn get(path_and_query: impl Into<String>) -> Call {
        Call {
            method: Method::GET,
            path_and_query: path_and_query.into(),
            headers: HeaderMap::new(),
            body: Body::empty(),
            params: Vec::new(),
            parent: None,
            forward: false,
            forwarded_for: None,
            grpc: false,
            idempotent: None,
        }
    }
}

/// The composed stack, from the guard down to the connection.
type Layers = guard::Guard<
    retry::Retry<pick::PickInstance<attempt::Attempt<outlier::Outlier<timeout::Timeout<Connect>>>>>,
>;

pub struct ServiceClient {
    caller: Arc<str>,
    caller_name: Name,
    balancers: Arc<Balancers>,
    breakers: Arc<Breakers>,
    metrics: Option<Arc<MetricsHub>>,
    settings: RwLock<ClientSettings>,
    knobs: Arc<Knobs>,
    budget: Arc<RetryBudget>,
    hash_keys: RwLock<BTreeMap<String, String>>,
    targets: RwLock<HashMap<String, Arc<Target>, foldhash::fast::FixedState>>,
    pool: Arc<Pool>,
    stack: Layers,
}

fn build(
    registry: Registry,
    knobs: &Arc<Knobs>,
    budget: &Arc<RetryBudget>,
    pool: &Arc<Pool>,
) -> Layers {
    tower::ServiceBuilder::new()
        .layer(guard::GuardLayer)
        .layer(retry::RetryLayer::new(knobs.clone(), budget.clone()))
        .layer(pick::PickLayer::new(registry))
        .layer(attempt::AttemptLayer)
        .layer(outlier::OutlierLayer)
        .layer(timeout::TimeoutLayer::new(knobs.clone()))
        .service(Connect::new(pool.clone(), Arc::default()))
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
        let caller: String = caller.into();
        let knobs = Arc::new(Knobs::default());
        knobs.set(&settings);
        let budget = Arc::new(RetryBudget::new(
            settings.budget_percent,
            settings.min_retries_per_second,
        ));
        let pool = Pool::new();
        ServiceClient {
            caller_name: Name::of(&caller),
            caller: Arc::from(caller),
            stack: build(registry, &knobs, &budget, &pool),
            balancers,
            breakers,
            metrics: None,
            settings: RwLock::new(settings),
            knobs,
            budget,
            hash_keys: RwLock::new(hash_keys),
            targets: RwLock::default(),
            pool,
        }
    }

    /// Counts every attempt into `hub` (the admin port's `/metrics`).
    #[must_use]
    pub fn with_metrics(mut self, hub: Arc<MetricsHub>) -> Self {
        self.metrics = Some(hub);
        self.targets = RwLock::default();
        self
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
        self.knobs.set(&s);
        *self.settings.write().unwrap_or_else(|e| e.into_inner()) = s;
    }

    pub fn set_hash_keys(&self, keys: BTreeMap<String, String>) {
        *self.hash_keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
        // Targets carry their key's source: made again on their next call.
        self.targets
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Idle pooled connections to every instance.
    pub fn idle_connections(&self) -> usize {
        self.pool.idle()
    }

    /// The balancing key of a call to `target`, per its `hash_key` setting.
    pub fn hash_key(
        &self,
        target: &str,
        headers: &HeaderMap,
        params: &[(Arc<str>, String)],
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
        params
            .iter()
            .find(|(k, _)| &**k == p)
            .map(|(_, v)| v.clone())
    }

    /// This client's entry for `name`: its balancer, breaker and names, looked up once.
    fn target(&self, name: &str) -> Arc<Target> {
        if let Some(t) = self
            .targets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return t.clone();
        }
        let hash = self
            .hash_keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .and_then(|spec| target::HashKey::parse(spec));
        let t = Arc::new(Target::new(
            &self.caller,
            name,
            self.balancers.get(name),
            self.breakers.get(&Breakers::name(&self.caller, name)),
            self.metrics
                .as_ref()
                .map(|m| m.call_path(&self.caller, name)),
            hash,
        ));
        self.targets
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_string())
            .or_insert(t)
            .clone()
    }

    /// The call's parent and the instance making it: the given scope, the task's request,
    /// the current `tracing` span, or the trace headers already on the call.
    /// The calling span (its trace, its id, its flags) and the instance it runs in.
    fn parent_of(&self, call: &Call) -> (Option<SpanContext>, Name) {
        if let Some(s) = call.parent.or_else(path::current) {
            return (Some(s.ctx), s.instance);
        }
        if let Some(c) = crate::telemetry::current_context() {
            return (Some(c), Name::EMPTY);
        }
        let remote = crate::telemetry::context::extract(&call.headers).map(|r| SpanContext {
            trace_id: r.trace_id,
            span_id: r.parent.unwrap_or(SpanId(0)),
            flags: r.flags,
        });
        (remote, Name::EMPTY)
    }

    /// Turns a call into the stack's request: hop-by-hop headers dropped, the body held in
    /// memory when a retry may need it again — then (the rare case) still to be read, with the
    /// request returned beside it.
    fn request(
        &self,
        target: &str,
        mut call: Call,
        ctx: SpanContext,
        caller_instance: Name,
        dry: bool,
    ) -> Result<(Req, Option<Body>), CallError> {
        // HTTP/2 has no hop-by-hop headers but `te: trailers`, which gRPC needs.
        if !call.grpc {
            headers::strip_hop_by_hop(&mut call.headers);
        }
        let entry = self.target(target);
        let key = entry
            .hash
            .as_ref()
            .and_then(|h| h.of(&call.headers, &call.params));
        // Held in memory (when small) so another attempt can send it again — any method: a
        // request that never reached an instance is retried whatever its method. A body of
        // unknown or larger size streams through once.
        let small = hyper::body::Body::size_hint(&call.body)
            .upper()
            .is_some_and(|u| u <= MAX_REPLAY_BODY as u64);
        let replay = small && self.knobs.attempts.load(Ordering::Relaxed) > 1;
        let (body, to_read) = if dry || hyper::body::Body::is_end_stream(&call.body) {
            (ReqBody::Empty, None)
        } else if replay {
            (ReqBody::Empty, Some(call.body))
        } else {
            (ReqBody::Stream(call.body), None)
        };
        let target_path = call.path_and_query;
        if !target_path.starts_with('/')
            || target_path
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(CallError::BadRequest(format!(
                "invalid path {target_path:?}: expected /path?query without spaces"
            )));
        }
        let req = Req {
            body,
            trace: None,
            call: Arc::new(CallShared {
                path: target_path,
                headers: call.headers,
                target: entry,
                key,
                caller_instance,
                attempts: AtomicU32::new(0),
                dry: dry.then(|| Box::new(Mutex::new(Explain::default()))),
                forward: call.forward,
                forwarded_for: call.forwarded_for,
                idempotent: call
                    .idempotent
                    .unwrap_or_else(|| retry::idempotent(&call.method)),
                grpc: call.grpc,
                method: call.method,
            }),
            ctx,
            attempt: 1,
            tried: Vec::new(),
            picked: None,
        };
        Ok((req, to_read))
    }

    /// Sends `call` to a passing instance of `target` through the stack. An upstream 5xx after
    /// the last attempt is returned as the upstream sent it; failures to get any answer are
    /// `CallError`s. The call is a span (its attempts are spans under it).
    pub async fn call(&self, target: &str, call: Call) -> Result<Resp, CallError> {
        self.call_with(target, call, None).await
    }

    /// [`call`](Self::call) with its body already in memory (`call.body` is then not read):
    /// a gRPC message, read whole by [`grpc::GrpcChannel`].
    pub(crate) async fn call_with(
        &self,
        target: &str,
        call: Call,
        ready: Option<hyper::body::Bytes>,
    ) -> Result<Resp, CallError> {
        let (parent, caller_instance) = self.parent_of(&call);
        let ctx = SpanContext {
            trace_id: parent.map_or_else(TraceId::random, |p| p.trace_id),
            span_id: SpanId::random(),
            flags: parent.map_or(crate::telemetry::context::SAMPLED, |p| p.flags),
        };
        let parent_span = parent.map(|p| p.span_id).filter(|s| s.0 != 0);
        let method = Name::method(&call.method);
        let start = path::stamp();
        let (start_unix_ns, started) = (start.unix_ns, start.at);
        let (mut req, to_read) = self.request(target, call, ctx, caller_instance, false)?;
        if let Some(bytes) = ready.filter(|b| !b.is_empty()) {
            req.body = ReqBody::Full(Some(bytes));
        } else if let Some(body) = to_read {
            // Boxed: reading a body is rare, and its state would otherwise weigh on every call.
            req.body = Box::pin(replayable(body)).await?;
        }
        let shared = req.call.clone();
        // Every layer is always ready: call the stack directly.
        let result = self.stack.clone().call(req).await;
        let t = &shared.target;
        let status = match &result {
            Ok(r) => request::status_of(r, shared.grpc),
            Err(e) => e.status().as_u16(),
        };
        path::record(PathSpan::Call(CallSpan {
            timing: Timing::new(
                ctx,
                parent_span,
                start_unix_ns,
                path::stamp()
                    .at
                    .saturating_duration_since(started)
                    .as_nanos() as u64,
                status >= 500,
            ),
            service: self.caller_name,
            instance: caller_instance,
            op: t.call_op,
            target: t.service,
            method,
            attempts: shared.attempts.load(Ordering::Relaxed).max(1),
            status,
        }));
        result
    }

    /// What `call` would do now, changing nothing: the breaker's verdict, the instance the
    /// balancer would choose and why. Runs the same stack as a real call, dry.
    pub async fn explain(&self, target: &str, call: Call) -> Result<Explain, CallError> {
        let ctx = SpanContext {
            trace_id: TraceId::random(),
            span_id: SpanId::random(),
            flags: crate::telemetry::context::SAMPLED,
        };
        let (req, _) = self.request(target, call, ctx, Name::EMPTY, true)?;
        let shared = req.call.clone();
        self.stack.clone().call(req).await?;
        let e = shared
            .dry
            .as_ref()
            .map(|d| std::mem::take(&mut *d.lock().unwrap_or_else(|e| e.into_inner())))
            .unwrap_or_default();
        Ok(e)
    }
}

/// A request body read into memory, so another attempt can send it again.
async fn replayable(body: Body) -> Result<ReqBody, CallError> {
    let bytes = axum::body::to_bytes(body, MAX_REPLAY_BODY)
        .await
        .map_err(|e| CallError::BadRequest(format!("cannot read request body: {e}")))?;
    Ok(if bytes.is_empty() {
        ReqBody::Empty
    } else {
        ReqBody::Full(Some(bytes))
    })
}

#[cfg(test)]
pub(crate) mod testing;
