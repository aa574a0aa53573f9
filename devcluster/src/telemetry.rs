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

use std::sync::{Arc, OnceLock};

/// Spans kept by default (the store is bounded by span count).
pub const DEFAULT_SPAN_CAPACITY: usize = 100_000;

/// The process's span store: one per process, like the `tracing` dispatcher that feeds it.
pub fn store() -> &'static Arc<SpanStore> {
    static STORE: OnceLock<Arc<SpanStore>> = OnceLock::new();
    STORE.get_or_init(|| Arc::new(SpanStore::new(DEFAULT_SPAN_CAPACITY)))
}

/// The process's log store, fed by the same layer.
pub fn logs() -> &'static Arc<LogStore> {
    static LOGS: OnceLock<Arc<LogStore>> = OnceLock::new();
    LOGS.get_or_init(|| Arc::new(LogStore::new(logs::DEFAULT_LOG_CAPACITY)))
}

/// The layer to add to a `tracing_subscriber::registry()`; it writes spans into [`store()`]
/// and events into [`logs()`]. It takes info and above from anyone, debug from the cluster's
/// own code, and never trace: libraries' chatty per-request events (hyper's pool, say) would
/// cost more than the requests themselves.
pub fn layer<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use tracing_subscriber::Layer;
    SpanLayer::new(store().clone())
        .with_logs(logs().clone())
        .with_filter(tracing_subscriber::filter::filter_fn(wanted))
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
