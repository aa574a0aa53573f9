//! The `tracing` layer that records spans into the store.
//!
//! Field conventions (all optional): `otel.name` names the operation (else the span's name);
//! `service` and `instance` say who made it (inherited from the parent span when absent);
//! `error = true` or `otel.status_code = "ERROR"` marks it failed; `trace_id` and
//! `parent_span_id` (hex) attach it to a caller in another process or hop. Every other field
//! becomes an attribute; events inside the span become its events.

use super::Telemetry;
use super::context::{SpanContext, SpanId, TraceId};
use super::logs::{Level, LogRecord, LogStore};
use super::span::{SpanEvent, SpanRecord};
use super::store::SpanStore;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Events kept per span; a chatty loop inside one span must not grow it without bound.
const MAX_EVENTS: usize = 64;

pub struct SpanLayer {
    sink: Sink,
}

/// Where the layer writes.
enum Sink {
    /// Into these stores, whoever made the span.
    Fixed {
        store: Arc<SpanStore>,
        logs: Option<Arc<LogStore>>,
    },
    /// Into the telemetry of the cluster whose task made the span or event.
    Routed,
}

impl SpanLayer {
    /// Spans into `store`, events nowhere.
    pub fn new(store: Arc<SpanStore>) -> Self {
        SpanLayer {
            sink: Sink::Fixed { store, logs: None },
        }
    }

    /// Spans and events (debug and above) into the telemetry of the cluster that made them
    /// (see [`super::current`]).
    pub fn routed() -> Self {
        SpanLayer { sink: Sink::Routed }
    }

    /// Also keeps every event (debug and above) as a log record.
    #[must_use]
    pub fn with_logs(mut self, logs: Arc<LogStore>) -> Self {
        if let Sink::Fixed { logs: l, .. } = &mut self.sink {
            *l = Some(logs);
        }
        self
    }

    /// The telemetry a span made now belongs to (routed layers only).
    fn owner(&self) -> Option<Arc<Telemetry>> {
        match self.sink {
            Sink::Fixed { .. } => None,
            Sink::Routed => super::current(),
        }
    }

    fn logs_for(&self, owner: Option<&Arc<Telemetry>>) -> Option<Arc<LogStore>> {
        match &self.sink {
            Sink::Fixed { logs, .. } => logs.clone(),
            Sink::Routed => owner
                .cloned()
                .or_else(super::current)
                .map(|t| t.logs.clone()),
        }
    }

    fn store_for(&self, owner: Option<&Arc<Telemetry>>) -> Option<Arc<SpanStore>> {
        match &self.sink {
            Sink::Fixed { store, .. } => Some(store.clone()),
            Sink::Routed => owner.map(|t| t.spans.clone()),
        }
    }
}

/// What the layer keeps in a live span's extensions.
struct SpanData {
    ctx: SpanContext,
    parent: Option<SpanId>,
    fields: Fields,
    events: Vec<SpanEvent>,
    start_unix_ns: u64,
    started: Instant,
    /// The cluster it was made in: it is stored there when it closes, wherever that happens.
    owner: Option<Arc<Telemetry>>,
}

#[derive(Default)]
struct Fields {
    name: Option<String>,
    service: Option<String>,
    instance: Option<String>,
    error: bool,
    remote_trace: Option<TraceId>,
    remote_parent: Option<SpanId>,
    message: Option<String>,
    attributes: Vec<(String, String)>,
}

impl Fields {
    fn set(&mut self, field: &Field, value: String) {
        match field.name() {
            "otel.name" => self.name = Some(value),
            "service" => self.service = Some(value),
            "instance" => self.instance = Some(value),
            "error" => self.error |= value == "true",
            "otel.status_code" => self.error |= value.eq_ignore_ascii_case("error"),
            "trace_id" => self.remote_trace = TraceId::parse(&value),
            "parent_span_id" => self.remote_parent = SpanId::parse(&value),
            "message" => self.message = Some(value),
            name => match self.attributes.iter_mut().find(|(k, _)| k == name) {
                Some((_, v)) => *v = value,
                None => self.attributes.push((name.to_string(), value)),
            },
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field, value.to_string());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field, value.to_string());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field, value.to_string());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.set(field, value.to_string());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.set(field, value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut s = String::new();
        let _ = write!(s, "{value:?}");
        self.set(field, s);
    }
}

fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl<S> Layer<S> for SpanLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        // The parent: an enclosing `tracing` span of ours, else the request being handled
        // (a traffic-path server span, known through the task's scope).
        let inherited = span
            .parent()
            .and_then(|p| {
                let ext = p.extensions();
                ext.get::<SpanData>()
                    .map(|d| (d.ctx, d.fields.service.clone(), d.fields.instance.clone()))
            })
            .or_else(|| {
                super::path::current().map(|s| {
                    let name = |n: super::names::Name| (!n.is_empty()).then(|| n.to_string());
                    (s.ctx, name(s.service), name(s.instance))
                })
            });
        // An explicit remote context (from request headers) wins over the in-process parent.
        let (trace_id, parent, flags) = match (fields.remote_trace, &inherited) {
            (Some(t), _) => (t, fields.remote_parent, super::context::SAMPLED),
            (None, Some((p, _, _))) => (p.trace_id, Some(p.span_id), p.flags),
            (None, None) => (TraceId::random(), None, super::context::SAMPLED),
        };
        if let Some((_, service, instance)) = inherited {
            if fields.service.is_none() {
                fields.service = service;
            }
            if fields.instance.is_none() {
                fields.instance = instance;
            }
        }
        if fields.service.is_none() {
            fields.service = Some(attrs.metadata().target().to_string());
        }
        let data = SpanData {
            ctx: SpanContext {
                trace_id,
                span_id: SpanId::random(),
                flags,
            },
            parent,
            fields,
            events: Vec::new(),
            start_unix_ns: unix_ns(),
            started: Instant::now(),
            owner: span
                .parent()
                .and_then(|p| p.extensions().get::<SpanData>().map(|d| d.owner.clone()))
                .unwrap_or_else(|| self.owner()),
        };
        span.extensions_mut().insert(data);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(data) = span.extensions_mut().get_mut::<SpanData>()
        {
            values.record(&mut data.fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut f = Fields::default();
        event.record(&mut f);
        let span = ctx.event_span(event);
        let logs = if *meta.level() <= tracing::Level::DEBUG {
            let owner = span
                .as_ref()
                .and_then(|s| s.extensions().get::<SpanData>().map(|d| d.owner.clone()))
                .flatten();
            self.logs_for(owner.as_ref())
        } else {
            None
        };
        if let Some(logs) = logs {
            let (service, instance, ctx_ids) = span
                .as_ref()
                .and_then(|s| {
                    let ext = s.extensions();
                    ext.get::<SpanData>().map(|d| {
                        (
                            d.fields.service.clone(),
                            d.fields.instance.clone(),
                            Some(d.ctx),
                        )
                    })
                })
                .or_else(|| {
                    // Outside any `tracing` span but inside a request: the request's.
                    let s = span.is_none().then(super::path::current).flatten()?;
                    let name = |n: super::names::Name| (!n.is_empty()).then(|| n.to_string());
                    Some((name(s.service), name(s.instance), Some(s.ctx)))
                })
                .unwrap_or((None, None, None));
            logs.push(LogRecord {
                seq: 0,
                at_unix_ns: unix_ns(),
                level: Level::from_tracing(*meta.level()),
                service: f
                    .service
                    .clone()
                    .or(service)
                    .unwrap_or_else(|| outside_service(meta.target())),
                instance: f.instance.clone().or(instance).unwrap_or_default(),
                target: meta.target().to_string(),
                message: f.message.clone().unwrap_or_default(),
                fields: f.attributes.clone(),
                trace_id: ctx_ids.map(|c| c.trace_id),
                span_id: ctx_ids.map(|c| c.span_id),
            });
        }
        let Some(span) = span else {
            // An event inside a request but no `tracing` span: an event of the request's span.
            super::path::add_scope_event(SpanEvent {
                at_unix_ns: unix_ns(),
                message: f.message.unwrap_or_default(),
                attributes: f.attributes,
            });
            return;
        };
        let mut ext = span.extensions_mut();
        let Some(data) = ext.get_mut::<SpanData>() else {
            return;
        };
        if *meta.level() == tracing::Level::ERROR {
            data.fields.error = true;
        }
        if data.events.len() >= MAX_EVENTS {
            return;
        }
        data.events.push(SpanEvent {
            at_unix_ns: unix_ns(),
            message: f.message.unwrap_or_default(),
            attributes: f.attributes,
        });
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let Some(data) = span.extensions_mut().remove::<SpanData>() else {
            return;
        };
        let Some(store) = self.store_for(data.owner.as_ref()) else {
            return;
        };
        let f = data.fields;
        store.push(SpanRecord {
            trace_id: data.ctx.trace_id,
            span_id: data.ctx.span_id,
            parent_id: data.parent,
            service: f.service.unwrap_or_default(),
            instance: f.instance.unwrap_or_default(),
            name: f.name.unwrap_or_else(|| span.name().to_string()),
            start_unix_ns: data.start_unix_ns,
            duration_ns: data.started.elapsed().as_nanos() as u64,
            error: f.error,
            attributes: f.attributes,
            events: data.events,
        });
    }
}

/// Who logged an event outside any request: the cluster itself is `lgo-dash`; anything else
/// is named by its `tracing` target.
fn outside_service(target: &str) -> String {
    if target.starts_with("devcluster") {
        "lgo-dash".into()
    } else {
        target.to_string()
    }
}

/// The trace context of `span`, when our layer records it.
pub fn context_of(span: &tracing::Span) -> Option<SpanContext> {
    span.with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
        let span = registry.span(id)?;
        let ext = span.extensions();
        ext.get::<SpanData>().map(|d| d.ctx)
    })
    .flatten()
}

/// The context of the span the caller is in.
pub fn current_context() -> Option<SpanContext> {
    context_of(&tracing::Span::current())
}
