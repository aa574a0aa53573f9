//! OTLP/gRPC ingestion: batches of 512 spans exported over a real loopback connection to the
//! receiver, converted and stored. Client and server share this process (and the machine's two
//! cores), so the figure includes the client's encoding too.
//!
//! Run: `cargo bench -p devcluster --bench otlp`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use devcluster::telemetry::otlp::{Receiver, serve_grpc};
use devcluster::telemetry::{LogStore, SpanStore};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use std::sync::Arc;
use std::time::Duration;

/// The binary's allocator, so the figure is what `lgo-dash` does.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

/// `n` spans of traces numbered from `round`: each round's are new to the store (it skips a
/// span it holds, as an exporter's retry sends it again).
fn batch(n: u64, round: u64) -> ExportTraceServiceRequest {
    let spans = (0..n)
        .map(|i| Span {
            trace_id: ((u128::from(round) << 64) | u128::from(i / 8 + 1))
                .to_be_bytes()
                .to_vec(),
            span_id: (i + 1).to_be_bytes().to_vec(),
            parent_span_id: if i.is_multiple_of(8) {
                vec![]
            } else {
                i.to_be_bytes().to_vec()
            },
            name: "GET /users/{id}".into(),
            start_time_unix_nano: 1_700_000_000_000_000_000 + i * 1000,
            end_time_unix_nano: 1_700_000_000_000_850_000 + i * 1000,
            attributes: vec![kv("http.method", "GET"), kv("http.status_code", "200")],
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "bench-service")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn otlp(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let store = Arc::new(SpanStore::new(100_000));
    let receiver = Receiver::new(store.clone(), Arc::new(LogStore::new(10)));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    rt.spawn(serve_grpc(receiver, listener, std::future::pending()));
    let client = rt
        .block_on(TraceServiceClient::connect(url))
        .unwrap()
        .max_decoding_message_size(64 << 20);
    let mut round = 0;

    let mut g = c.benchmark_group("otlp");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(512));
    g.bench_function("grpc_export_batch_512", |b| {
        b.iter_batched(
            || {
                round += 1;
                batch(512, round)
            },
            |req| {
                let mut client = client.clone();
                rt.block_on(client.export(req)).unwrap()
            },
            criterion::BatchSize::SmallInput,
        );
    });
    g.finish();
    assert!(store.added() > 0);
}

criterion_group!(benches, otlp);
criterion_main!(benches);
