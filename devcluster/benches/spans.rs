//! Span ingestion: into the store directly (batches of 512, as an OTLP export sends them),
//! through the `tracing` layer (create, enter, record, close: what an instrumented hop pays),
//! and a traffic-path span (an attempt's, made and recorded into a full store the way the
//! client does it: target ≤ 300 ns).
//! Also prints the resident memory a stored span costs, from filling a 100 000-span store.
//!
//! Run: `cargo bench -p devcluster --bench spans`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use devcluster::balance::{Reason, Strategy};
use devcluster::breaker::State;
use devcluster::telemetry::names::Name;
use devcluster::telemetry::path::{AttemptSpan, PathSpan, Timing};
use devcluster::telemetry::{SpanContext, SpanId, SpanLayer, SpanRecord, SpanStore, TraceId};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::layer::SubscriberExt;

fn record(i: u64) -> SpanRecord {
    SpanRecord {
        trace_id: TraceId(u128::from(i / 7 + 1)),
        span_id: SpanId(i + 1),
        parent_id: (!i.is_multiple_of(7)).then_some(SpanId(i)),
        service: "user-service".into(),
        instance: "user-service-2".into(),
        name: "GET /users/{id}".into(),
        start_unix_ns: 1_700_000_000_000_000_000 + i * 1000,
        duration_ns: 850_000,
        error: false,
        attributes: vec![
            ("http.method".into(), "GET".into()),
            ("http.status_code".into(), "200".into()),
        ],
        events: vec![],
    }
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn store(c: &mut Criterion) {
    // Memory: fill a fresh store with 100 000 spans and look at the resident set.
    let before = rss_bytes();
    let s = SpanStore::new(100_000);
    s.extend((0..100_000).map(record));
    let after = rss_bytes();
    eprintln!(
        "memory: 100000 stored spans add {:.1} MB resident, {} bytes per span",
        (after.saturating_sub(before)) as f64 / 1e6,
        after.saturating_sub(before) / 100_000
    );
    drop(s);

    let mut g = c.benchmark_group("spans");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let s = SpanStore::new(100_000);
    let batch: Vec<SpanRecord> = (0..512).map(record).collect();
    let mut n = 0u64;
    g.throughput(Throughput::Elements(512));
    g.bench_function("store_extend_batch_512", |b| {
        b.iter_batched(
            || {
                n += 512;
                batch
                    .iter()
                    .cloned()
                    .map(|mut r| {
                        r.span_id = SpanId(n + r.span_id.0);
                        r
                    })
                    .collect::<Vec<_>>()
            },
            |spans| s.extend(black_box(spans)),
            criterion::BatchSize::LargeInput,
        );
    });

    let layer_store = Arc::new(SpanStore::new(100_000));
    let subscriber = tracing_subscriber::registry().with(SpanLayer::new(layer_store.clone()));
    g.throughput(Throughput::Elements(1));
    tracing::subscriber::with_default(subscriber, || {
        g.bench_function("layer_span_create_record_close", |b| {
            b.iter(|| {
                let span = tracing::info_span!(
                    "server",
                    otel.name = "GET /users/{id}",
                    service = "user-service",
                    instance = "user-service-2",
                    http.status_code = tracing::field::Empty,
                );
                let _e = span.enter();
                span.record("http.status_code", 200u16);
            });
        });
    });
    assert!(layer_store.added() > 0, "the layer recorded spans");

    // A traffic-path span: names looked up once (as a client's target keeps them), the span's
    // id drawn, the record pushed into a store already full (every push evicts the oldest).
    let path_store = SpanStore::new(100_000);
    path_store.extend((0..100_000).map(record));
    let (service, instance, op, peer, breaker) = (
        Name::of("gateway"),
        Name::of("gateway"),
        Name::of("GET user-service"),
        Name::of("user-service-2"),
        Name::of("gateway->user-service"),
    );
    let trace = TraceId::random();
    let parent = SpanId::random();
    let mut i = 0u64;
    g.bench_function("traffic_path_span_recorded", |b| {
        b.iter(|| {
            i += 1;
            path_store.push_path(PathSpan::Attempt(AttemptSpan {
                timing: Timing::new(
                    SpanContext {
                        trace_id: TraceId(trace.0 + u128::from(i / 3)),
                        span_id: SpanId::random(),
                        flags: devcluster::telemetry::context::SAMPLED,
                    },
                    Some(parent),
                    1_700_000_000_000_000_000 + i,
                    850_000,
                    false,
                ),
                service,
                instance,
                op,
                attempt: 1,
                peer,
                strategy: Strategy::RoundRobin,
                reason: Reason::Turn(i),
                breaker,
                breaker_state: State::Closed,
                status: 200,
                failure: None,
            }));
        });
    });
    g.finish();
}

criterion_group!(benches, store);
criterion_main!(benches);
