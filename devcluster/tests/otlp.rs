//! The OTLP receiver with real OpenTelemetry clients: spans exported by the `opentelemetry-otlp`
//! exporter over gRPC, over HTTP/protobuf and over HTTP/JSON, and logs over gRPC, show up with
//! their service names in what `ctl traces --json` and `ctl logs` read (the admin API).
//! Malformed exports get the protocol's error answer and are counted; an export with some
//! invalid items keeps the others and says so (partial success); gzipped exports are taken on
//! both transports; an export sent again is stored once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use devcluster::cluster::{Cluster, ClusterOptions};
use devcluster::config::Config;
use devcluster::control::AdminClient;
use devcluster::telemetry::{LogFilter, SpanRecord, TraceFilter, TraceId};
use opentelemetry::KeyValue;
use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::trace::{Span as _, TraceContextExt as _, Tracer as _, TracerProvider as _};
use opentelemetry_otlp::{
    Compression, Protocol, WithExportConfig as _, WithHttpConfig as _, WithTonicConfig as _,
};
use opentelemetry_sdk::Resource;
use std::time::{Duration, Instant};

async fn start() -> Cluster {
    Cluster::start(
        ClusterOptions::new(Config::defaults())
            .auto_ports(true)
            .traffic(false),
    )
    .await
    .unwrap()
}

fn endpoint(cluster: &Cluster, name: &str) -> String {
    cluster
        .handle()
        .snapshot()
        .endpoints
        .iter()
        .find(|e| e.name == name)
        .map(|e| e.url.clone())
        .unwrap_or_else(|| panic!("no {name} endpoint"))
}

/// Exports one trace (a root and a child) as `service` through `exporter` and returns its id.
/// The SDK's simple processor blocks on the export; it runs on a blocking thread of the test's
/// runtime so the client's connections are driven by the runtime's workers.
async fn export_trace(
    service: &str,
    exporter: impl FnOnce() -> opentelemetry_otlp::SpanExporter + Send + 'static,
) -> TraceId {
    let service = service.to_string();
    tokio::task::spawn_blocking(move || {
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_simple_exporter(exporter())
            .with_resource(
                Resource::builder()
                    .with_service_name(service.clone())
                    .with_attribute(KeyValue::new("service.instance.id", format!("{service}-7")))
                    .build(),
            )
            .build();
        let tracer = provider.tracer("lgo-dash-test");
        let id = tracer.in_span("checkout", |cx| {
            let mut child = tracer.start("charge card");
            child.set_attribute(KeyValue::new("amount", 42));
            child.end();
            cx.span().span_context().trace_id()
        });
        provider.shutdown().unwrap();
        TraceId(u128::from_be_bytes(id.to_bytes()))
    })
    .await
    .unwrap()
}

async fn spans_of(admin: &AdminClient, id: TraceId, want: usize) -> Vec<SpanRecord> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let spans = admin.trace(id).await.unwrap_or_default();
        if spans.len() >= want || Instant::now() > deadline {
            return spans;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn assert_exported(admin: &AdminClient, service: &str, id: TraceId) {
    let spans = spans_of(admin, id, 2).await;
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let root = spans.iter().find(|s| s.name == "checkout").unwrap();
    let child = spans.iter().find(|s| s.name == "charge card").unwrap();
    assert_eq!(child.parent_id, Some(root.span_id));
    assert_eq!(root.parent_id, None);
    for s in &spans {
        assert_eq!(s.service, service);
        assert_eq!(s.instance, format!("{service}-7"));
    }
    assert_eq!(child.attribute("amount"), Some("42"));
    // As `ctl traces --service S --json` lists them.
    let list = admin
        .traces(&TraceFilter {
            service: Some(service.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let t = list.iter().find(|t| t.trace_id == id).expect("listed");
    assert_eq!((t.root.as_str(), t.span_count), ("checkout", 2));
    assert_eq!(t.services, [service]);
}

/// A trace exported each way an SDK can (gRPC, HTTP/protobuf, HTTP/JSON), as services
/// `PREFIX-grpc`, `PREFIX-protobuf` and `PREFIX-json`, gzipped or not; each arrives whole.
async fn export_every_way(cluster: &Cluster, admin: &AdminClient, prefix: &str, gzip: bool) {
    let compression = gzip.then_some(Compression::Gzip);
    let grpc = endpoint(cluster, "otlp-grpc");
    let service = format!("{prefix}-grpc");
    let id = export_trace(&service, move || {
        let b = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(grpc);
        match compression {
            Some(c) => b.with_compression(c),
            None => b,
        }
        .build()
        .unwrap()
    })
    .await;
    assert_exported(admin, &service, id).await;
    let http = endpoint(cluster, "otlp-http");
    for (way, protocol) in [
        ("protobuf", Protocol::HttpBinary),
        ("json", Protocol::HttpJson),
    ] {
        let url = format!("{http}/v1/traces");
        let service = format!("{prefix}-{way}");
        let id = export_trace(&service, move || {
            let b = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(protocol)
                .with_endpoint(url);
            match compression {
                Some(c) => b.with_compression(c),
                None => b,
            }
            .build()
            .unwrap()
        })
        .await;
        assert_exported(admin, &service, id).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_from_the_otlp_exporter_over_grpc_and_http_arrive_with_their_services() {
    let cluster = start().await;
    let admin = AdminClient::new(cluster.admin_url());
    export_every_way(&cluster, &admin, "payments", false).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_from_the_otlp_exporter_arrive_with_level_service_and_body() {
    let cluster = start().await;
    let admin = AdminClient::new(cluster.admin_url());
    let grpc = endpoint(&cluster, "otlp-grpc");
    tokio::task::spawn_blocking(move || {
        let exporter = opentelemetry_otlp::LogExporter::builder()
            .with_tonic()
            .with_endpoint(grpc)
            .build()
            .unwrap();
        let provider = opentelemetry_sdk::logs::SdkLoggerProvider::builder()
            .with_simple_exporter(exporter)
            .with_resource(Resource::builder().with_service_name("inventory").build())
            .build();
        let logger = provider.logger("lgo-dash-test");
        let mut r = logger.create_log_record();
        r.set_severity_number(Severity::Warn);
        r.set_severity_text("WARN");
        r.set_body("stock below threshold".into());
        r.add_attribute("sku", "A-113");
        logger.emit(r);
        provider.shutdown().unwrap();
    })
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let logs = admin
            .logs(&LogFilter {
                service: Some("inventory".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        if let Some(l) = logs.first() {
            assert_eq!(l.message, "stock below threshold");
            assert_eq!(l.level, devcluster::telemetry::Level::Warn);
            assert!(l.fields.contains(&("sku".into(), "A-113".into())));
            break;
        }
        assert!(Instant::now() < deadline, "the log never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_exports_get_the_protocols_error_and_are_counted() {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    let cluster = start().await;
    let http = endpoint(&cluster, "otlp-http");
    let client = reqwest::Client::builder().no_proxy().build().unwrap();

    let r = client
        .post(format!("{http}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(vec![0xff, 0xff, 0xff, 0x01])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["content-type"], "application/x-protobuf");
    let body = r.bytes().await.unwrap();
    assert!(String::from_utf8_lossy(&body).contains("invalid OTLP protobuf"));

    let r = client
        .post(format!("{http}/v1/traces"))
        .header("content-type", "application/json")
        .body(r#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "xyz"}]}]}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(v["message"].as_str().unwrap().contains("OTLP/JSON"), "{v}");

    let r = client
        .post(format!("{http}/v1/traces"))
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);

    // gRPC: a span whose trace id is 3 bytes long is refused alone, in the answer's
    // partial_success (the export itself was read).
    let mut grpc = TraceServiceClient::connect(endpoint(&cluster, "otlp-grpc"))
        .await
        .unwrap();
    let bad = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![1, 2, 3],
                    span_id: vec![1; 8],
                    name: "bad".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let partial = grpc
        .export(bad)
        .await
        .unwrap()
        .into_inner()
        .partial_success
        .expect("a partial success");
    assert_eq!(partial.rejected_spans, 1);
    assert!(
        partial.error_message.contains("trace_id must be 16 bytes"),
        "{}",
        partial.error_message
    );

    // The three refused bodies counted, and the receiver still takes good exports.
    let metrics = common::admin_metrics(&cluster).await;
    assert!(
        metrics.contains("otlp_rejected_exports_total 3"),
        "{metrics}"
    );
    let good = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![9; 16],
                    span_id: vec![9; 8],
                    name: "fine".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    grpc.export(good).await.unwrap();
    let admin = AdminClient::new(cluster.admin_url());
    let spans = spans_of(&admin, TraceId(u128::from_be_bytes([9; 16])), 1).await;
    assert_eq!(spans[0].service, "unknown_service");
    cluster.shutdown().await;
}

/// A body gzipped, as an exporter with compression on sends it.
fn gzip(body: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(body).unwrap();
    e.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzipped_exports_are_taken_on_both_transports_and_a_zip_bomb_is_a_413() {
    let cluster = start().await;
    let admin = AdminClient::new(cluster.admin_url());
    let http = endpoint(&cluster, "otlp-http");

    // The SDK's exporters with gzip on: what the OpenTelemetry Collector does by default.
    export_every_way(&cluster, &admin, "gzip", true).await;

    let client = common::http();
    let post = |encoding: &'static str, ct: &'static str, body: Vec<u8>| {
        client
            .post(format!("{http}/v1/traces"))
            .header("content-type", ct)
            .header("content-encoding", encoding)
            .body(body)
            .send()
    };
    // 40 MiB of zeros gzip to 40 KiB: refused once past the 32 MiB an export may be.
    let bomb = gzip(&vec![0u8; 40 << 20]);
    assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
    let r = post("gzip", "application/json", bomb).await.unwrap();
    assert_eq!(r.status(), 413);
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("at most 33554432 bytes once decompressed"),
        "{v}"
    );
    // Not gzip at all, and an encoding it does not speak: said as such, not as bad JSON.
    let r = post("gzip", "application/json", b"{}".to_vec())
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(v["message"].as_str().unwrap().contains("gzip"), "{v}");
    let r = post("br", "application/json", b"{}".to_vec())
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(v["message"].as_str().unwrap().contains("\"br\""), "{v}");
    // And the receiver goes on taking gzipped exports.
    let body = json_trace(0x51, &[("kept", "0000000000000051")]);
    let r = post("gzip", "application/json", gzip(body.as_bytes()))
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(spans_of(&admin, TraceId(0x51), 1).await.len(), 1);
    cluster.shutdown().await;
}

/// An OTLP/JSON trace export of one trace: `(name, span id)` per span, the kind given by name.
fn json_trace(trace: u128, spans: &[(&str, &str)]) -> String {
    let spans: Vec<serde_json::Value> = spans
        .iter()
        .map(|(name, id)| {
            serde_json::json!({
                "traceId": format!("{trace:032x}"),
                "spanId": id,
                "name": name,
                "kind": "SPAN_KIND_SERVER",
                "startTimeUnixNano": "1700000000000000000",
                "endTimeUnixNano": "1700000000001000000",
            })
        })
        .collect();
    serde_json::json!({
        "resourceSpans": [{
            "resource": {"attributes": [
                {"key": "service.name", "value": {"stringValue": "checkout"}}
            ]},
            "scopeSpans": [{"spans": spans}]
        }]
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_items_are_refused_alone_and_an_export_sent_again_is_stored_once() {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use prost::Message as _;
    let cluster = start().await;
    let admin = AdminClient::new(cluster.admin_url());
    let http = endpoint(&cluster, "otlp-http");
    let client = common::http();

    // JSON: the span with an all-zero id is refused, the two others kept.
    let body = json_trace(
        0x61,
        &[
            ("first", "0000000000000001"),
            ("zero", "0000000000000000"),
            ("third", "0000000000000003"),
        ],
    );
    let r = client
        .post(format!("{http}/v1/traces"))
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["partialSuccess"]["rejectedSpans"], 1, "{v}");
    let why = v["partialSuccess"]["errorMessage"].as_str().unwrap();
    assert!(
        why.contains("1 of 3 spans") && why.contains("\"zero\""),
        "{why}"
    );
    let names = |spans: Vec<SpanRecord>| -> Vec<String> {
        let mut v: Vec<String> = spans.into_iter().map(|s| s.name).collect();
        v.sort();
        v
    };
    assert_eq!(
        names(spans_of(&admin, TraceId(0x61), 2).await),
        ["first", "third"]
    );

    // The same export again (an exporter's retry after a timeout): nothing stored twice.
    for _ in 0..2 {
        let r = client
            .post(format!("{http}/v1/traces"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let spans = admin.trace(TraceId(0x61)).await.unwrap();
    assert_eq!(names(spans.clone()), ["first", "third"], "{spans:#?}");
    // The kind, given by its name, is what the export file says.
    let file = devcluster::telemetry::export::to_otlp_json(&spans).unwrap();
    assert!(file.contains("\"kind\": 2"), "{file}");

    // Protobuf: the partial success in the protobuf answer.
    let req: opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest =
        serde_json::from_str(
            &json_trace(0x62, &[("ok", "0000000000000001")]).replace("\"SPAN_KIND_SERVER\"", "2"),
        )
        .unwrap();
    let mut bad = req.clone();
    bad.resource_spans[0].scope_spans[0].spans[0].span_id = vec![0; 8];
    let mut both = req;
    both.resource_spans[0].scope_spans[0]
        .spans
        .extend(bad.resource_spans[0].scope_spans[0].spans.clone());
    let r = client
        .post(format!("{http}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(both.encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let answer = ExportTraceServiceResponse::decode(r.bytes().await.unwrap()).unwrap();
    assert_eq!(answer.partial_success.unwrap().rejected_spans, 1);
    assert_eq!(spans_of(&admin, TraceId(0x62), 1).await.len(), 1);

    // Logs over gRPC: a bad trace id and a short span id are refused alone, whichever
    // record they are; the records before and after are kept; a record without a time
    // takes the time it came.
    let record = |body: &str, trace: Vec<u8>, span: Vec<u8>| LogRecord {
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(body.into())),
        }),
        severity_number: 9,
        trace_id: trace,
        span_id: span,
        ..Default::default()
    };
    let logs = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(opentelemetry_proto::tonic::resource::v1::Resource {
                attributes: vec![opentelemetry_proto::tonic::common::v1::KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue("billing".into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: vec![
                    record("before", vec![7; 16], vec![7; 8]),
                    record("bad trace", vec![1, 2, 3], vec![]),
                    LogRecord {
                        // FATAL (Python's `critical`): its own level, above error.
                        severity_number: 21,
                        ..record("after", vec![], vec![])
                    },
                    record("short span", vec![7; 16], vec![1, 2, 3, 4]),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let mut grpc = LogsServiceClient::connect(endpoint(&cluster, "otlp-grpc"))
        .await
        .unwrap();
    let partial = grpc
        .export(logs)
        .await
        .unwrap()
        .into_inner()
        .partial_success
        .expect("a partial success");
    assert_eq!(partial.rejected_log_records, 2, "{partial:?}");
    assert!(
        partial.error_message.contains("trace_id must be 16 bytes"),
        "{partial:?}"
    );
    let stored = admin
        .logs(&LogFilter {
            service: Some("billing".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let messages: Vec<&str> = stored.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(messages, ["before", "after"]);
    assert_eq!(stored[1].level, devcluster::telemetry::Level::Fatal);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    for l in &stored {
        assert!(
            now.abs_diff(l.at_unix_ns) < 60_000_000_000,
            "{}: at {} (now {now})",
            l.message,
            l.at_unix_ns
        );
    }
    cluster.shutdown().await;
}
