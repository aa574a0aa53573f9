//! The OTLP receiver: traces and logs from any OpenTelemetry SDK, over OTLP/gRPC (port 4317)
//! and OTLP/HTTP (port 4318, protobuf or JSON), merged into the same stores as the cluster's
//! own spans and logs. Service names come from the `service.name` resource attribute.
//! A malformed payload gets the protocol's error answer (gRPC `INVALID_ARGUMENT`, HTTP 400 with
//! a `Status` body) and is counted; it never takes the receiver down.

use super::context::{SpanId, TraceId};
use super::logs::{Level, LogRecord, LogStore};
use super::span::{SpanEvent, SpanRecord};
use super::store::SpanStore;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prometheus_client::metrics::counter::Counter;
use prost::Message;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What the receiver has taken in and refused (served on the admin port's `/metrics`).
#[derive(Debug, Default, Clone)]
pub struct Counters {
    pub spans: Counter,
    pub logs: Counter,
    pub rejected: Counter,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountersView {
    pub spans: u64,
    pub logs: u64,
    pub rejected: u64,
}

impl Counters {
    pub fn view(&self) -> CountersView {
        CountersView {
            spans: self.spans.get(),
            logs: self.logs.get(),
            rejected: self.rejected.get(),
        }
    }
}

#[derive(Clone)]
pub struct Receiver {
    spans: Arc<SpanStore>,
    logs: Arc<LogStore>,
    pub counters: Counters,
}

fn text(v: &AnyValue) -> String {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BytesValue(b)) => b.iter().map(|x| format!("{x:02x}")).collect(),
        Some(any_value::Value::ArrayValue(a)) => {
            let items: Vec<String> = a.values.iter().map(text).collect();
            format!("[{}]", items.join(", "))
        }
        Some(any_value::Value::KvlistValue(kv)) => {
            let items: Vec<String> = kv
                .values
                .iter()
                .map(|k| {
                    format!(
                        "{}={}",
                        k.key,
                        k.value.as_ref().map(text).unwrap_or_default()
                    )
                })
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        Some(any_value::Value::StringValueStrindex(i)) => format!("#{i}"),
        None => String::new(),
    }
}

fn pairs(attrs: &[KeyValue]) -> Vec<(String, String)> {
    attrs
        .iter()
        .map(|kv| {
            (
                kv.key.clone(),
                kv.value.as_ref().map(text).unwrap_or_default(),
            )
        })
        .collect()
}

/// Like [`pairs`], moving the strings out (the ingest path: no copy per attribute).
fn into_pairs(attrs: Vec<KeyValue>) -> Vec<(String, String)> {
    attrs
        .into_iter()
        .map(|kv| {
            let value = match kv.value {
                Some(AnyValue {
                    value: Some(any_value::Value::StringValue(s)),
                }) => s,
                Some(v) => text(&v),
                None => String::new(),
            };
            (kv.key, value)
        })
        .collect()
}

fn resource_attr(r: Option<&Resource>, key: &str) -> Option<String> {
    r?.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .map(text)
}

fn trace_id(b: &[u8]) -> Option<TraceId> {
    let a: [u8; 16] = b.try_into().ok()?;
    let v = u128::from_be_bytes(a);
    (v != 0).then_some(TraceId(v))
}

fn span_id(b: &[u8]) -> Option<SpanId> {
    let a: [u8; 8] = b.try_into().ok()?;
    let v = u64::from_be_bytes(a);
    (v != 0).then_some(SpanId(v))
}

/// OTLP severity numbers: 1–4 trace, 5–8 debug, 9–12 info, 13–16 warn, 17–24 error/fatal.
fn level(severity: i32, text: &str) -> Level {
    match severity {
        1..=4 => Level::Trace,
        5..=8 => Level::Debug,
        9..=12 => Level::Info,
        13..=16 => Level::Warn,
        17.. => Level::Error,
        _ => text.parse().unwrap_or(Level::Info),
    }
}

impl Receiver {
    pub fn new(spans: Arc<SpanStore>, logs: Arc<LogStore>) -> Self {
        Receiver {
            spans,
            logs,
            counters: Counters::default(),
        }
    }

    /// Converts and stores a trace export; an invalid id refuses the whole request (as a
    /// collector does) so nothing half-read is kept.
    pub fn take_traces(&self, req: ExportTraceServiceRequest) -> Result<usize, String> {
        let mut out = Vec::new();
        for rs in req.resource_spans {
            let res = rs.resource.as_ref();
            let service =
                resource_attr(res, "service.name").unwrap_or_else(|| "unknown_service".into());
            let instance = resource_attr(res, "service.instance.id").unwrap_or_default();
            for ss in rs.scope_spans {
                for s in ss.spans {
                    let tid = trace_id(&s.trace_id).ok_or_else(|| {
                        format!("span {:?}: trace_id must be 16 bytes, not all zero", s.name)
                    })?;
                    let sid = span_id(&s.span_id).ok_or_else(|| {
                        format!("span {:?}: span_id must be 8 bytes, not all zero", s.name)
                    })?;
                    let parent = if s.parent_span_id.is_empty() {
                        None
                    } else {
                        Some(span_id(&s.parent_span_id).ok_or_else(|| {
                            format!("span {:?}: parent_span_id must be 8 bytes", s.name)
                        })?)
                    };
                    let error = s.status.as_ref().is_some_and(|st| st.code == 2);
                    let mut attributes = into_pairs(s.attributes);
                    if let Some(st) = s.status.filter(|st| !st.message.is_empty()) {
                        attributes.push(("status.message".into(), st.message));
                    }
                    out.push(SpanRecord {
                        trace_id: tid,
                        span_id: sid,
                        parent_id: parent,
                        service: service.clone(),
                        instance: instance.clone(),
                        name: s.name,
                        start_unix_ns: s.start_time_unix_nano,
                        duration_ns: s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano),
                        error,
                        attributes,
                        events: s
                            .events
                            .into_iter()
                            .map(|e| SpanEvent {
                                at_unix_ns: e.time_unix_nano,
                                message: e.name,
                                attributes: into_pairs(e.attributes),
                            })
                            .collect(),
                    });
                }
            }
        }
        let n = out.len();
        self.spans.extend(out);
        self.counters.spans.inc_by(n as u64);
        Ok(n)
    }

    /// An OTLP/HTTP trace export body (protobuf, or JSON when `json`), decoded and stored as
    /// the HTTP receiver does: the spans taken, or why none were.
    pub fn take_traces_body(&self, json: bool, body: &[u8]) -> Result<usize, String> {
        decode(json, body).and_then(|req| self.take_traces(req))
    }

    /// An OTLP/HTTP log export body, as [`Receiver::take_traces_body`].
    pub fn take_logs_body(&self, json: bool, body: &[u8]) -> Result<usize, String> {
        decode(json, body).and_then(|req| self.take_logs(req))
    }

    pub fn take_logs(&self, req: ExportLogsServiceRequest) -> Result<usize, String> {
        let mut n = 0;
        for rl in &req.resource_logs {
            let res = rl.resource.as_ref();
            let service =
                resource_attr(res, "service.name").unwrap_or_else(|| "unknown_service".into());
            let instance = resource_attr(res, "service.instance.id").unwrap_or_default();
            for sl in &rl.scope_logs {
                let target = sl
                    .scope
                    .as_ref()
                    .map(|s| s.name.clone())
                    .unwrap_or_default();
                for r in &sl.log_records {
                    let trace = if r.trace_id.is_empty() {
                        None
                    } else {
                        Some(trace_id(&r.trace_id).ok_or("log trace_id must be 16 bytes")?)
                    };
                    let at = if r.time_unix_nano != 0 {
                        r.time_unix_nano
                    } else {
                        r.observed_time_unix_nano
                    };
                    self.logs.push(LogRecord {
                        seq: 0,
                        at_unix_ns: at,
                        level: level(r.severity_number, &r.severity_text),
                        service: service.clone(),
                        instance: instance.clone(),
                        target: target.clone(),
                        message: r.body.as_ref().map(text).unwrap_or_default(),
                        fields: pairs(&r.attributes),
                        trace_id: trace,
                        span_id: span_id(&r.span_id),
                    });
                    n += 1;
                }
            }
        }
        self.counters.logs.inc_by(n as u64);
        Ok(n)
    }

    fn refused(&self, why: String) -> String {
        self.counters.rejected.inc();
        tracing::warn!(target: "devcluster::otlp", "refused an OTLP export: {why}");
        why
    }
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.take_traces(request.into_inner())
            .map_err(|e| tonic::Status::invalid_argument(self.refused(e)))?;
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tonic::async_trait]
impl LogsService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.take_logs(request.into_inner())
            .map_err(|e| tonic::Status::invalid_argument(self.refused(e)))?;
        Ok(tonic::Response::new(ExportLogsServiceResponse {
            partial_success: None,
        }))
    }
}

/// Serves OTLP/gRPC on `listener` until `shutdown` resolves.
pub async fn serve_grpc(
    receiver: Receiver,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .http2_max_header_list_size(crate::services::user_grpc::MAX_HEADER_LIST)
        // A batch as large as OTLP/HTTP takes (tonic's default stops at 4 MiB).
        .add_service(TraceServiceServer::new(receiver.clone()).max_decoding_message_size(32 << 20))
        .add_service(LogsServiceServer::new(receiver).max_decoding_message_size(32 << 20))
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            shutdown,
        )
        .await
}

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

fn is_json(h: &HeaderMap) -> Option<bool> {
    let ct = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or(PROTOBUF);
    let base = ct.split(';').next().unwrap_or("").trim();
    match base {
        PROTOBUF => Some(false),
        JSON => Some(true),
        _ => None,
    }
}

/// The OTLP/HTTP answer: a (possibly empty) response or a `google.rpc.Status`, in the
/// request's encoding.
fn answer(json: bool, status: StatusCode, message: Option<String>) -> Response {
    match (json, message) {
        (true, None) => (status, [(header::CONTENT_TYPE, JSON)], "{}").into_response(),
        (true, Some(m)) => (
            status,
            [(header::CONTENT_TYPE, JSON)],
            serde_json::json!({"code": 3, "message": m}).to_string(),
        )
            .into_response(),
        (false, None) => (status, [(header::CONTENT_TYPE, PROTOBUF)], Vec::new()).into_response(),
        (false, Some(m)) => {
            let st = RpcStatus {
                code: 3,
                message: m,
                details: Vec::new(),
            };
            (
                status,
                [(header::CONTENT_TYPE, PROTOBUF)],
                st.encode_to_vec(),
            )
                .into_response()
        }
    }
}

/// `google.rpc.Status`, the body of an OTLP/HTTP error.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(bytes = "vec", repeated, tag = "3")]
    details: Vec<Vec<u8>>,
}

fn decode<T: Message + Default + serde::de::DeserializeOwned>(
    json: bool,
    body: &[u8],
) -> Result<T, String> {
    if json {
        serde_json::from_slice(body).map_err(|e| format!("invalid OTLP/JSON: {e}"))
    } else {
        T::decode(body).map_err(|e| format!("invalid OTLP protobuf: {e}"))
    }
}

/// One export over OTLP/HTTP: decode by content type, hand to `take`, answer in kind.
fn http_export<T: Message + Default + serde::de::DeserializeOwned>(
    r: &Receiver,
    headers: &HeaderMap,
    body: &[u8],
    take: impl FnOnce(&Receiver, T) -> Result<usize, String>,
) -> Response {
    let Some(json) = is_json(headers) else {
        let why =
            r.refused("content type must be application/x-protobuf or application/json".into());
        return answer(false, StatusCode::UNSUPPORTED_MEDIA_TYPE, Some(why));
    };
    match decode::<T>(json, body).and_then(|req| take(r, req)) {
        Ok(_) => answer(json, StatusCode::OK, None),
        Err(e) => answer(json, StatusCode::BAD_REQUEST, Some(r.refused(e))),
    }
}

async fn http_traces(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> Response {
    http_export(&r, &headers, &body, Receiver::take_traces)
}

async fn http_logs(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> Response {
    http_export(&r, &headers, &body, Receiver::take_logs)
}

/// OTLP/HTTP: `POST /v1/traces` and `POST /v1/logs`.
pub fn http_router(receiver: Receiver) -> Router {
    Router::new()
        .route("/v1/traces", post(http_traces))
        .route("/v1/logs", post(http_logs))
        // Exporters batch; a batch of a few thousand spans is several megabytes.
        .layer(axum::extract::DefaultBodyLimit::max(32 << 20))
        .with_state(receiver)
}
