//! The OTLP receiver: traces and logs from any OpenTelemetry SDK, over OTLP/gRPC (port 4317)
//! and OTLP/HTTP (port 4318, protobuf or JSON), merged into the same stores as the cluster's
//! own spans and logs. Service names come from the `service.name` resource attribute.
//! Bodies and messages may come gzipped. An export whose body cannot be read at all gets the
//! protocol's error answer (HTTP 400 with a `Status` body; gRPC's own for an undecodable
//! message) and is counted; an export with some invalid items (a bad id) keeps the valid ones
//! and says what it refused in OTLP's `partial_success`. Nothing takes the receiver down.

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
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prometheus_client::metrics::counter::Counter;
use prost::Message;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tonic::codec::CompressionEncoding;

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

/// OTLP severity numbers: 1–4 trace, 5–8 debug, 9–12 info, 13–16 warn, 17–20 error, 21–24
/// fatal.
fn level(severity: i32, text: &str) -> Level {
    match severity {
        1..=4 => Level::Trace,
        5..=8 => Level::Debug,
        9..=12 => Level::Info,
        13..=16 => Level::Warn,
        17..=20 => Level::Error,
        21.. => Level::Fatal,
        _ => text.parse().unwrap_or(Level::Info),
    }
}

/// What one export left: the items stored, the items refused, and why the first was.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Taken {
    /// Items that were valid (a span already stored counts, though it is not stored again).
    pub accepted: usize,
    /// Items refused as invalid; the others of the export were kept.
    pub rejected: usize,
    /// Why the first refused item was refused (empty when none was).
    pub first_error: String,
}

impl Taken {
    fn reject(&mut self, why: String) {
        if self.rejected == 0 {
            self.first_error = why;
        }
        self.rejected += 1;
    }

    /// OTLP's `partial_success.error_message`: how many of what were refused, and the first
    /// reason.
    fn message(&self, what: &str) -> String {
        let more = match self.rejected {
            0 | 1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        let whole = self.rejected + self.accepted;
        if self.accepted == 0 {
            format!("all {whole} {what} refused: {}{more}", self.first_error)
        } else {
            format!(
                "{} of {whole} {what} refused, the others kept: {}{more}",
                self.rejected, self.first_error
            )
        }
    }
}

/// OTLP's span kinds, as the store keeps them: a `span.kind` attribute (Jaeger's convention,
/// so the Traces tab shows it beside the others), turned back into the field on export.
pub const SPAN_KIND: &str = "span.kind";

/// The `span.kind` attribute value of an OTLP `SpanKind` (none for UNSPECIFIED).
pub fn kind_name(kind: i32) -> Option<&'static str> {
    match kind {
        1 => Some("internal"),
        2 => Some("server"),
        3 => Some("client"),
        4 => Some("producer"),
        5 => Some("consumer"),
        _ => None,
    }
}

/// The OTLP `SpanKind` of a `span.kind` attribute value.
pub fn kind_number(name: &str) -> Option<i32> {
    (1..=5).find(|&k| kind_name(k).is_some_and(|n| n.eq_ignore_ascii_case(name)))
}

/// One OTLP span as the store takes it, or why it is refused.
fn span_record(
    s: opentelemetry_proto::tonic::trace::v1::Span,
    service: &str,
    instance: &str,
) -> Result<SpanRecord, String> {
    let tid = trace_id(&s.trace_id)
        .ok_or_else(|| format!("span {:?}: trace_id must be 16 bytes, not all zero", s.name))?;
    let sid = span_id(&s.span_id)
        .ok_or_else(|| format!("span {:?}: span_id must be 8 bytes, not all zero", s.name))?;
    // An all-zero parent is what some exporters send for a root: no parent.
    let parent = match s.parent_span_id.as_slice() {
        [] | [0, 0, 0, 0, 0, 0, 0, 0] => None,
        p => Some(
            span_id(p)
                .ok_or_else(|| format!("span {:?}: parent_span_id must be 8 bytes", s.name))?,
        ),
    };
    let error = s.status.as_ref().is_some_and(|st| st.code == 2);
    let mut attributes = into_pairs(s.attributes);
    if let Some(kind) = kind_name(s.kind) {
        attributes.push((SPAN_KIND.into(), kind.into()));
    }
    if let Some(st) = s.status.filter(|st| !st.message.is_empty()) {
        attributes.push(("status.message".into(), st.message));
    }
    Ok(SpanRecord {
        trace_id: tid,
        span_id: sid,
        parent_id: parent,
        service: service.to_string(),
        instance: instance.to_string(),
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
    })
}

impl Receiver {
    pub fn new(spans: Arc<SpanStore>, logs: Arc<LogStore>) -> Self {
        Receiver {
            spans,
            logs,
            counters: Counters::default(),
        }
    }

    /// Converts and stores a trace export. As OTLP's partial success has it, an invalid span
    /// (a bad id) is refused alone and counted; the valid ones are kept. A span already
    /// stored (an exporter's retry) is accepted and not stored again.
    pub fn take_traces(&self, req: ExportTraceServiceRequest) -> Taken {
        let mut taken = Taken::default();
        let mut out = Vec::new();
        for rs in req.resource_spans {
            let res = rs.resource.as_ref();
            let service =
                resource_attr(res, "service.name").unwrap_or_else(|| "unknown_service".into());
            let instance = resource_attr(res, "service.instance.id").unwrap_or_default();
            for ss in rs.scope_spans {
                for s in ss.spans {
                    match span_record(s, &service, &instance) {
                        Ok(r) => out.push(r),
                        Err(why) => taken.reject(why),
                    }
                }
            }
        }
        taken.accepted = out.len();
        self.spans.extend(out);
        self.counters.spans.inc_by(taken.accepted as u64);
        self.partly(&taken, "spans");
        taken
    }

    /// An OTLP/HTTP trace export body (protobuf, or JSON when `json`), decoded and stored as
    /// the HTTP receiver does: the spans accepted, or why the body could not be read.
    pub fn take_traces_body(&self, json: bool, body: &[u8]) -> Result<usize, String> {
        decode(json, body).map(|req| self.take_traces(req).accepted)
    }

    /// An OTLP/HTTP log export body, as [`Receiver::take_traces_body`].
    pub fn take_logs_body(&self, json: bool, body: &[u8]) -> Result<usize, String> {
        decode(json, body).map(|req| self.take_logs(req).accepted)
    }

    /// Converts and stores a log export; a record with a bad trace or span id is refused alone
    /// (partial success), the others are kept. A record without a time takes the time it
    /// arrived.
    pub fn take_logs(&self, req: ExportLogsServiceRequest) -> Taken {
        let mut taken = Taken::default();
        let received = super::clock::unix_ns();
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
                    let ids = (|| {
                        let trace = match r.trace_id.as_slice() {
                            [] => None,
                            t => Some(trace_id(t).ok_or(
                                "log record: trace_id must be 16 bytes, not all zero (or empty)",
                            )?),
                        };
                        let span = match r.span_id.as_slice() {
                            [] => None,
                            s => Some(span_id(s).ok_or(
                                "log record: span_id must be 8 bytes, not all zero (or empty)",
                            )?),
                        };
                        Ok::<_, &str>((trace, span))
                    })();
                    let (trace, span) = match ids {
                        Ok(ids) => ids,
                        Err(why) => {
                            taken.reject(why.into());
                            continue;
                        }
                    };
                    let at = match (r.time_unix_nano, r.observed_time_unix_nano) {
                        (0, 0) => received,
                        (0, observed) => observed,
                        (t, _) => t,
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
                        span_id: span,
                    });
                    taken.accepted += 1;
                }
            }
        }
        self.counters.logs.inc_by(taken.accepted as u64);
        self.partly(&taken, "log records");
        taken
    }

    fn refused(&self, why: String) -> String {
        self.counters.rejected.inc();
        tracing::warn!(target: "devcluster::otlp", "refused an OTLP export: {why}");
        why
    }

    /// Says in the log when part of an export was refused.
    fn partly(&self, taken: &Taken, what: &str) {
        if taken.rejected > 0 {
            tracing::warn!(target: "devcluster::otlp", "took part of an OTLP export: {}", taken.message(what));
        }
    }
}

/// OTLP's `partial_success` of a trace export (none when everything was taken).
fn trace_response(t: &Taken) -> ExportTraceServiceResponse {
    ExportTraceServiceResponse {
        partial_success: (t.rejected > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: t.rejected as i64,
            error_message: t.message("spans"),
        }),
    }
}

/// OTLP's `partial_success` of a log export.
fn logs_response(t: &Taken) -> ExportLogsServiceResponse {
    ExportLogsServiceResponse {
        partial_success: (t.rejected > 0).then(|| ExportLogsPartialSuccess {
            rejected_log_records: t.rejected as i64,
            error_message: t.message("log records"),
        }),
    }
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let taken = self.take_traces(request.into_inner());
        Ok(tonic::Response::new(trace_response(&taken)))
    }
}

#[tonic::async_trait]
impl LogsService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        let taken = self.take_logs(request.into_inner());
        Ok(tonic::Response::new(logs_response(&taken)))
    }
}

/// The largest export taken, on either transport, once decompressed: exporters batch, and a
/// batch of a few thousand spans is several megabytes (tonic's default stops at 4 MiB).
pub const MAX_EXPORT: usize = 32 << 20;

/// Serves OTLP/gRPC on `listener` until `shutdown` resolves. Messages may come gzipped (the
/// OpenTelemetry Collector's default).
pub async fn serve_grpc(
    receiver: Receiver,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .http2_max_header_list_size(crate::services::user_grpc::MAX_HEADER_LIST)
        .add_service(
            TraceServiceServer::new(receiver.clone())
                .accept_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(MAX_EXPORT),
        )
        .add_service(
            LogsServiceServer::new(receiver)
                .accept_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(MAX_EXPORT),
        )
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

/// An OTLP/HTTP refusal: a `google.rpc.Status` in the request's encoding.
fn answer(json: bool, status: StatusCode, message: String) -> Response {
    // RESOURCE_EXHAUSTED for a body too large, INVALID_ARGUMENT for the rest.
    let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
        8
    } else {
        3
    };
    if json {
        (
            status,
            [(header::CONTENT_TYPE, JSON)],
            serde_json::json!({"code": code, "message": message}).to_string(),
        )
            .into_response()
    } else {
        let st = RpcStatus {
            code,
            message,
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

/// The OTLP/HTTP answer to an export taken: the export's response message (empty, or its
/// `partial_success`), in the request's encoding.
fn accepted<R: Message + Serialize>(json: bool, response: &R, partial: bool) -> Response {
    if json {
        // `{}` for a full success: what exporters expect, rather than `"partialSuccess": null`.
        let body = if partial {
            serde_json::to_string(response).unwrap_or_else(|_| "{}".into())
        } else {
            "{}".into()
        };
        (StatusCode::OK, [(header::CONTENT_TYPE, JSON)], body).into_response()
    } else {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, PROTOBUF)],
            response.encode_to_vec(),
        )
            .into_response()
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
    if !json {
        return T::decode(body).map_err(|e| format!("invalid OTLP protobuf: {e}"));
    }
    serde_json::from_slice(body).or_else(|first| {
        // Protobuf's JSON mapping allows an enum by its name (`"kind": "SPAN_KIND_SERVER"`):
        // read as numbers, the way the generated types take them. Only when the body did not
        // read as it is, so the usual body is parsed once.
        let invalid = |e: serde_json::Error| format!("invalid OTLP/JSON: {e}");
        let mut v: serde_json::Value = serde_json::from_slice(body).map_err(invalid)?;
        if !enum_numbers(&mut v) {
            return Err(invalid(first));
        }
        serde_json::from_value(v).map_err(invalid)
    })
}

/// Replaces the enum names of OTLP's JSON (span kind, status code, severity number) by
/// their numbers, in place; whether any was.
fn enum_numbers(v: &mut serde_json::Value) -> bool {
    use opentelemetry_proto::tonic::logs::v1::SeverityNumber;
    use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode as Code};
    match v {
        serde_json::Value::Object(map) => {
            let mut changed = false;
            for (key, value) in map.iter_mut() {
                if let serde_json::Value::String(name) = value {
                    let number = match key.as_str() {
                        "kind" => SpanKind::from_str_name(name).map(|k| k as i32),
                        "code" => Code::from_str_name(name).map(|c| c as i32),
                        "severityNumber" => SeverityNumber::from_str_name(name).map(|s| s as i32),
                        _ => None,
                    };
                    if let Some(n) = number {
                        *value = n.into();
                        changed = true;
                    }
                } else {
                    changed |= enum_numbers(value);
                }
            }
            changed
        }
        serde_json::Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, item| enum_numbers(item) | changed),
        _ => false,
    }
}

/// The body of an OTLP/HTTP request as its `Content-Encoding` says: as it is, or gunzipped
/// (at most [`MAX_EXPORT`] bytes of it: more is a 413, not memory spent on a zip bomb).
fn content(headers: &HeaderMap, body: Bytes) -> Result<Bytes, (StatusCode, String)> {
    let Some(encoding) = headers.get(header::CONTENT_ENCODING) else {
        return Ok(body);
    };
    let encoding = String::from_utf8_lossy(encoding.as_bytes())
        .trim()
        .to_ascii_lowercase();
    match encoding.as_str() {
        "" | "identity" => Ok(body),
        "gzip" | "x-gzip" => gunzip(&body, MAX_EXPORT).map(Bytes::from),
        other => Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "content encoding {other:?} is not supported: send the body as it is or with \
                 Content-Encoding: gzip"
            ),
        )),
    }
}

/// `body` gunzipped, if it is gzip and comes to at most `limit` bytes.
fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, (StatusCode, String)> {
    use std::io::Read;
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    flate2::read::MultiGzDecoder::new(body)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                format!("invalid gzip body (Content-Encoding: gzip): {e}"),
            )
        })?;
    if out.len() > limit {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body may be at most {limit} bytes once decompressed: export smaller batches"
            ),
        ));
    }
    Ok(out)
}

/// One kind of OTLP export over HTTP: traces or logs.
trait Export: Message + Default + serde::de::DeserializeOwned {
    type Response: Message + Serialize;
    fn take(self, r: &Receiver) -> (Self::Response, bool);
}

impl Export for ExportTraceServiceRequest {
    type Response = ExportTraceServiceResponse;
    fn take(self, r: &Receiver) -> (Self::Response, bool) {
        let t = r.take_traces(self);
        (trace_response(&t), t.rejected > 0)
    }
}

impl Export for ExportLogsServiceRequest {
    type Response = ExportLogsServiceResponse;
    fn take(self, r: &Receiver) -> (Self::Response, bool) {
        let t = r.take_logs(self);
        (logs_response(&t), t.rejected > 0)
    }
}

/// One export over OTLP/HTTP: the body decompressed and decoded by its headers, taken, and
/// answered in kind.
fn http_export<T: Export>(r: &Receiver, headers: &HeaderMap, body: Bytes) -> Response {
    let Some(json) = is_json(headers) else {
        let why =
            r.refused("content type must be application/x-protobuf or application/json".into());
        return answer(false, StatusCode::UNSUPPORTED_MEDIA_TYPE, why);
    };
    let body = match content(headers, body) {
        Ok(body) => body,
        Err((status, why)) => return answer(json, status, r.refused(why)),
    };
    match decode::<T>(json, &body) {
        Ok(req) => {
            let (response, partial) = req.take(r);
            accepted(json, &response, partial)
        }
        Err(e) => answer(json, StatusCode::BAD_REQUEST, r.refused(e)),
    }
}

async fn http_traces(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> Response {
    http_export::<ExportTraceServiceRequest>(&r, &headers, body)
}

async fn http_logs(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> Response {
    http_export::<ExportLogsServiceRequest>(&r, &headers, body)
}

/// OTLP/HTTP: `POST /v1/traces` and `POST /v1/logs`.
pub fn http_router(receiver: Receiver) -> Router {
    Router::new()
        .route("/v1/traces", post(http_traces))
        .route("/v1/logs", post(http_logs))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_EXPORT))
        .with_state(receiver)
}
