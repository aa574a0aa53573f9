//! Span ingestion: into the store directly (batches of 512, as an OTLP export sends them), and
//! through the `tracing` layer (create, enter, record, close: what an instrumented hop pays).
//! Also prints the resident memory a stored span costs, from filling a 100 000-span store.
//!
//! Run: `cargo bench -p devcluster --bench spans`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use devcluster::telemetry::{SpanId, SpanLayer, SpanRecord, SpanStore, TraceId};
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
    g.finish();
}

criterion_group!(benches, store);
criterion_main!(benches);
