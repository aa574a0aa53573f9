//! Telemetry: distributed tracing built on the `tracing` crate. A subscriber layer
//! ([`SpanLayer`]) turns every closed span into a [`SpanRecord`] in a bounded [`SpanStore`],
//! so the cluster's own spans and a user's `tracing` spans land in the same place. Context
//! crosses HTTP hops in W3C `traceparent` and the framework's `X-Trace-ID` / `X-Span-ID` /
//! `X-Parent-ID` headers ([`context`]).

pub mod clock;
pub mod context;
pub mod export;
pub mod grpc;
pub mod histogram;
pub mod http;
mod intern;
mod layer;
pub mod logs;
pub mod metrics;
pub mod names;
pub mod otlp;
pub mod path;
pub mod rolling;
pub mod slots;
pub mod span;
pub mod store;

pub use context::{SpanContext, SpanId, TraceId};
pub use layer::{SpanLayer, context_of, current_context};
pub use logs::{Level, LogFilter, LogRecord, LogStore};
pub use span::{SpanRecord, TraceSummary};
pub use store::{SpanStore, TraceFilter};

use std::future::Future;
use std::sync::{Arc, Mutex, Weak};

/// Spans kept by default (the store is bounded by span count).
pub const DEFAULT_SPAN_CAPACITY: usize = 100_000;

/// One cluster's telemetry: the spans and logs it recorded. Each [`crate::Cluster`] has its
/// own, so that two clusters in one process (tests, or a program embedding two) each read
/// only their own traces and logs.
pub struct Telemetry {
    pub spans: Arc<SpanStore>,
    pub logs: Arc<LogStore>,
    /// The cluster's live config version, stamped on its server spans (`config.version`).
    pub config_version: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("spans", &self.spans.len())
            .finish_non_exhaustive()
    }
}

/// The clusters' telemetries alive in this process, in the order they started: what a task
/// that belongs to no cluster records into is the first of them.
static LIVE: Mutex<Vec<Weak<Telemetry>>> = Mutex::new(Vec::new());

tokio::task_local! {
    /// The telemetry of the cluster the running task belongs to.
    static OWNER: Option<Arc<Telemetry>>;
}

impl Telemetry {
    /// A new telemetry with the default capacities, known to the process from now on.
    pub fn new() -> Arc<Telemetry> {
        let t = Arc::new(Telemetry {
            spans: Arc::new(SpanStore::new(DEFAULT_SPAN_CAPACITY)),
            logs: Arc::new(LogStore::new(logs::DEFAULT_LOG_CAPACITY)),
            config_version: std::sync::atomic::AtomicU64::new(1),
        });
        let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        live.retain(|w| w.strong_count() > 0);
        live.push(Arc::downgrade(&t));
        t
    }

    /// Runs `f` as a task of this telemetry's cluster: what it records (and what the tasks it
    /// spawns through [`spawn`] record) lands here.
    pub fn scope<F: Future>(self: &Arc<Self>, f: F) -> impl Future<Output = F::Output> {
        OWNER.scope(Some(self.clone()), f)
    }
}

/// The telemetry the running task records into: its cluster's, else (a task of no cluster:
/// a library's thread, a test) the first cluster still running in the process.
pub fn current() -> Option<Arc<Telemetry>> {
    owner().or_else(first_live)
}

/// The telemetry of the cluster the running task belongs to; none outside a cluster's tasks.
pub fn owner() -> Option<Arc<Telemetry>> {
    OWNER.try_with(Option::clone).ok().flatten()
}

fn first_live() -> Option<Arc<Telemetry>> {
    LIVE.lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find_map(Weak::upgrade)
}

/// `f`, carrying the running task's cluster along (a spawned task does not inherit
/// task-locals by itself).
pub fn bound<F: Future>(f: F) -> impl Future<Output = F::Output> {
    OWNER.scope(owner(), f)
}

/// `tokio::spawn` for the cluster's tasks: the new task records into the same cluster.
pub fn spawn<F>(f: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(bound(f))
}

/// hyper's executor for the cluster's HTTP/2 connections: the task of each stream records
/// into the cluster its connection belongs to (`TokioExecutor` would lose it).
#[derive(Clone, Copy, Debug, Default)]
pub struct Executor;

impl<F> hyper::rt::Executor<F> for Executor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        spawn(fut);
    }
}

/// `spawn_blocking` for the cluster's blocking work, carrying its cluster along.
pub fn spawn_blocking<R: Send + 'static>(
    f: impl FnOnce() -> R + Send + 'static,
) -> tokio::task::JoinHandle<R> {
    let owner = owner();
    tokio::task::spawn_blocking(move || OWNER.sync_scope(owner, f))
}

/// The layer to add to a `tracing_subscriber::registry()`; it writes spans and events into
/// the telemetry of the cluster whose task made them ([`current`]). It takes info and above
/// from anyone, debug from the cluster's own code, and never trace: libraries' chatty
/// per-request events (hyper's pool, say) would cost more than the requests themselves.
pub fn layer<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use tracing_subscriber::Layer;
    SpanLayer::routed().with_filter(tracing_subscriber::filter::filter_fn(wanted))
}

fn wanted(meta: &tracing::Metadata<'_>) -> bool {
    let level = *meta.level();
    level <= tracing::Level::INFO
        || (level == tracing::Level::DEBUG && meta.target().starts_with("devcluster"))
}

/// Installs a subscriber with only the span layer when the process has none yet (tests, or an
/// embedding program that set up nothing). A program with its own subscriber adds [`layer()`].
pub fn install_if_absent() {
    use tracing_subscriber::layer::SubscriberExt;
    if !tracing::dispatcher::has_been_set() {
        let _ =
            tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer()));
    }
}
