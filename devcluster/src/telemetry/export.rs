//! Traces to and from OTLP/JSON files: `ctl traces export --format otlp-json` writes what the
//! store holds as an `ExportTraceServiceRequest` (the file any OTLP tool reads), and
//! `lgo-dash --open FILE` reads one back to browse offline.

use super::otlp::{Receiver, SPAN_KIND, kind_number};
use super::span::SpanRecord;
use super::store::SpanStore;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use std::collections::BTreeMap;
use std::sync::Arc;

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// The spans as one OTLP export, one resource per (service, instance).
pub fn to_otlp(spans: &[SpanRecord]) -> ExportTraceServiceRequest {
    let mut by_resource: BTreeMap<(&str, &str), Vec<Span>> = BTreeMap::new();
    for s in spans {
        by_resource
            .entry((s.service.as_str(), s.instance.as_str()))
            .or_default()
            .push(Span {
                trace_id: s.trace_id.0.to_be_bytes().to_vec(),
                span_id: s.span_id.0.to_be_bytes().to_vec(),
                parent_span_id: s
                    .parent_id
                    .map(|p| p.0.to_be_bytes().to_vec())
                    .unwrap_or_default(),
                name: s.name.clone(),
                kind: s.attribute(SPAN_KIND).and_then(kind_number).unwrap_or(0),
                start_time_unix_nano: s.start_unix_ns,
                end_time_unix_nano: s.end_unix_ns(),
                // The kind travels in its own field.
                attributes: s
                    .attributes
                    .iter()
                    .filter(|(k, _)| k != SPAN_KIND)
                    .map(|(k, v)| kv(k, v))
                    .collect(),
                events: s
                    .events
                    .iter()
                    .map(|e| span::Event {
                        time_unix_nano: e.at_unix_ns,
                        name: e.message.clone(),
                        attributes: e.attributes.iter().map(|(k, v)| kv(k, v)).collect(),
                        ..Default::default()
                    })
                    .collect(),
                status: s.error.then(|| Status {
                    code: 2,
                    message: String::new(),
                }),
                ..Default::default()
            });
    }
    ExportTraceServiceRequest {
        resource_spans: by_resource
            .into_iter()
            .map(|((service, instance), spans)| {
                let mut attributes = vec![kv("service.name", service)];
                if !instance.is_empty() {
                    attributes.push(kv("service.instance.id", instance));
                }
                ResourceSpans {
                    resource: Some(Resource {
                        attributes,
                        ..Default::default()
                    }),
                    scope_spans: vec![ScopeSpans {
                        spans,
                        ..Default::default()
                    }],
                    ..Default::default()
                }
            })
            .collect(),
    }
}

pub fn to_otlp_json(spans: &[SpanRecord]) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(&to_otlp(spans))
}

/// Reads an OTLP/JSON trace file into a fresh store (for `--open`).
pub fn read_otlp_json(text: &str) -> Result<Arc<SpanStore>, String> {
    let req: ExportTraceServiceRequest =
        serde_json::from_str(text).map_err(|e| format!("not an OTLP/JSON trace file: {e}"))?;
    let store = Arc::new(SpanStore::new(usize::MAX / 2));
    let receiver = Receiver::new(store.clone(), Arc::new(super::logs::LogStore::new(1)));
    // A file with some spans unreadable (a bad id) opens with the others.
    let taken = receiver.take_traces(req);
    if taken.accepted == 0 && taken.rejected > 0 {
        return Err(format!(
            "no span of the file could be read: {}",
            taken.first_error
        ));
    }
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::span::SpanEvent;
    use crate::telemetry::{SpanId, TraceFilter, TraceId};

    #[test]
    fn a_trace_survives_the_round_trip_through_a_file() {
        let spans = vec![
            SpanRecord {
                trace_id: TraceId(0xabc),
                span_id: SpanId(1),
                parent_id: None,
                service: "gateway".into(),
                instance: "gateway".into(),
                name: "GET /api/orders/{id}".into(),
                start_unix_ns: 1_000,
                duration_ns: 5_000,
                error: true,
                attributes: vec![
                    ("http.status_code".into(), "503".into()),
                    ("span.kind".into(), "server".into()),
                ],
                events: vec![SpanEvent {
                    at_unix_ns: 2_000,
                    message: "rejected".into(),
                    attributes: vec![("breaker".into(), "gateway->order-service".into())],
                }],
            },
            SpanRecord {
                trace_id: TraceId(0xabc),
                span_id: SpanId(2),
                parent_id: Some(SpanId(1)),
                service: "order-service".into(),
                instance: "order-service-2".into(),
                name: "GET /orders/{id}".into(),
                start_unix_ns: 1_500,
                duration_ns: 1_000,
                error: false,
                attributes: vec![],
                events: vec![],
            },
        ];
        let json = to_otlp_json(&spans).unwrap();
        assert!(
            json.contains("\"resourceSpans\"") && json.contains("service.name"),
            "{json}"
        );
        // The kind in its field (SERVER), not among the attributes.
        assert!(json.contains("\"kind\": 2"), "{json}");
        assert!(!json.contains("span.kind"), "{json}");
        let store = read_otlp_json(&json).unwrap();
        let back = store.trace(TraceId(0xabc));
        assert_eq!(back, spans);
        assert_eq!(store.traces(&TraceFilter::default()).len(), 1);
        assert!(read_otlp_json("{\"nope\": 1}").is_ok_and(|s| s.is_empty()));
        let Err(e) = read_otlp_json("not json") else {
            panic!("garbage read as a trace file");
        };
        assert!(e.contains("not an OTLP/JSON"), "{e}");
    }
}
