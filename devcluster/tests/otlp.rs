//! The OTLP receiver with real OpenTelemetry clients: spans exported by the `opentelemetry-otlp`
//! exporter over gRPC, over HTTP/protobuf and over HTTP/JSON, and logs over gRPC, show up with
//! their service names in what `ctl traces --json` and `ctl logs` read (the admin API).
//! Malformed exports get the protocol's error answer and are counted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use devcluster::cluster::{Cluster, ClusterOptions};
use devcluster::config::Config;
use devcluster::control::AdminClient;
use devcluster::telemetry::{LogFilter, SpanRecord, TraceFilter, TraceId};
use opentelemetry::KeyValue;
use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::trace::{Span as _, TraceContextExt as _, Tracer as _, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
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
    service: &'static str,
    exporter: impl FnOnce() -> opentelemetry_otlp::SpanExporter + Send + 'static,
) -> TraceId {
    tokio::task::spawn_blocking(move || {
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_simple_exporter(exporter())
            .with_resource(
                Resource::builder()
                    .with_service_name(service)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_from_the_otlp_exporter_over_grpc_and_http_arrive_with_their_services() {
    let cluster = start().await;
    let admin = AdminClient::new(cluster.admin_url());
    let grpc = endpoint(&cluster, "otlp-grpc");
    let http = endpoint(&cluster, "otlp-http");

    let id = export_trace("payments-grpc", move || {
        opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(grpc)
            .build()
            .unwrap()
    })
    .await;
    assert_exported(&admin, "payments-grpc", id).await;

    for (service, protocol) in [
        ("payments-protobuf", Protocol::HttpBinary),
        ("payments-json", Protocol::HttpJson),
    ] {
        let url = format!("{http}/v1/traces");
        let id = export_trace(service, move || {
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(protocol)
                .with_endpoint(url)
                .build()
                .unwrap()
        })
        .await;
        assert_exported(&admin, service, id).await;
    }
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

    // gRPC: a span whose trace id is 3 bytes long.
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
    let err = grpc.export(bad).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("trace_id must be 16 bytes"),
        "{}",
        err.message()
    );

    // Counted, and the receiver still takes good exports.
    let metrics = common::admin_metrics(&cluster).await;
    assert!(
        metrics.contains("otlp_rejected_exports_total 4"),
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
