//! Pick cost per strategy at 3, 100 and 1000 instances.
//!
//! `strategy/*` is the algorithm alone, choosing among prepared candidates (what the issue's
//! ≤ 50 ns target at 100 instances is about). `service/*` is the whole pick a call makes: the
//! candidate set from a real registry (rebuilt only when the registry changed), the ejection
//! check, the candidates' loads, the choice, and the pick's entry in the ring the dashboard
//! shows (targets: ≤ 150 ns at 3 instances, ≤ 1 µs at 100).
//!
//! Run: `cargo bench -p devcluster --bench balance`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use devcluster::balance::load::OutlierSettings;
use devcluster::balance::service::{PickFor, ServiceBalancer};
use devcluster::balance::{Candidate, Strategy, picker};
use devcluster::registry::{Registration, Registry};
use devcluster::telemetry::TraceId;
use devcluster::telemetry::names::Name;
use std::hint::black_box;
use std::time::Duration;

const SIZES: [usize; 3] = [3, 100, 1000];

fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("user-service-{i}")).collect()
}

fn strategies(c: &mut Criterion) {
    let keys: Vec<String> = (0..1024).map(|i| format!("user-{i}")).collect();
    let mut g = c.benchmark_group("strategy");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    for n in SIZES {
        let ids = ids(n);
        let cands: Vec<Candidate<'_>> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| Candidate {
                id,
                weight: 1 + (i % 5) as u32,
                in_flight: (i % 3) as u32,
                ewma_ns: 1_000_000.0 + (i * 1000) as f64,
            })
            .collect();
        for s in Strategy::ALL {
            let p = picker(s, 7);
            // Warm the consistent-hash ring: it is built once per candidate set.
            p.pick(&cands, Some("warm"));
            let mut k = 0usize;
            g.bench_with_input(BenchmarkId::new(s.as_str(), n), &cands, |b, cands| {
                b.iter(|| {
                    k = (k + 1) & 1023;
                    black_box(p.pick(black_box(cands), Some(&keys[k])))
                });
            });
        }
    }
    g.finish();
}

fn service(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let mut g = c.benchmark_group("service");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    let caller = Name::of("gateway");
    for n in SIZES {
        let registry = Registry::new();
        for id in ids(n) {
            registry
                .register(Registration {
                    id,
                    name: "user-service".into(),
                    address: "127.0.0.1".into(),
                    port: 8081,
                    weight_passing: 1,
                    ..Default::default()
                })
                .unwrap();
        }
        for s in [Strategy::RoundRobin, Strategy::P2c] {
            let b = ServiceBalancer::new("user-service", s, OutlierSettings::default(), 7);
            let trace = TraceId::random();
            g.bench_with_input(
                BenchmarkId::new(s.as_str(), n),
                &registry,
                |bench, registry| {
                    bench.iter(|| {
                        let members = b.members(registry);
                        let at = PickFor {
                            caller,
                            key: None,
                            exclude: &[],
                            trace_id: Some(trace),
                            attempt: 1,
                        };
                        black_box(b.pick(&members, at).unwrap().index)
                    });
                },
            );
        }
    }
    g.finish();
}

criterion_group!(benches, strategies, service);
criterion_main!(benches);
