//! Breaker overhead per call: admit + record the outcome, uncontended and from 2 threads at
//! once; and what a forced-open breaker costs to say no.
//!
//! Run: `cargo bench -p devcluster --bench breaker`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use devcluster::breaker::{Breaker, BreakerSettings, Mode, Outcome};
use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

const OK: Outcome = Outcome {
    failure: false,
    duration: Duration::from_micros(800),
};

fn call(b: &Breaker) {
    if let Ok(p) = b.try_acquire() {
        p.record(black_box(OK));
    }
}

fn breaker(c: &mut Criterion) {
    let mut g = c.benchmark_group("breaker");
    let b = Breaker::new("gateway->user-service", BreakerSettings::default());
    g.bench_function("admit_record/1_thread", |bench| bench.iter(|| call(&b)));

    // Each of 2 threads makes `iters` calls on one breaker; the figure is the time per call as
    // each thread sees it, contention included.
    g.bench_function("admit_record/2_threads", |bench| {
        bench.iter_custom(|iters| {
            let barrier = Barrier::new(2);
            let times: Vec<Duration> = std::thread::scope(|s| {
                let hs: Vec<_> = (0..2)
                    .map(|_| {
                        s.spawn(|| {
                            barrier.wait();
                            let t = Instant::now();
                            for _ in 0..iters {
                                call(&b);
                            }
                            t.elapsed()
                        })
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).collect()
            });
            times.into_iter().max().unwrap()
        });
    });

    let open = Breaker::new("gateway->user-service", BreakerSettings::default());
    open.set_mode(Mode::ForcedOpen);
    g.bench_function("reject/forced_open", |bench| {
        bench.iter(|| black_box(open.try_acquire().is_err()));
    });
    g.finish();
}

criterion_group!(benches, breaker);
criterion_main!(benches);
