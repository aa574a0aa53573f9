//! Edit to applied: a config change through the config center (check the whole config, write
//! the KV layer, rebuild the effective config, hand it to the running cluster's parts), and a
//! KV write seen by a Consul blocking query on that key (the way a service watching its keys
//! learns of it), over loopback.
//!
//! Run: `cargo bench -p devcluster --bench config`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use devcluster::cluster::{Cluster, ClusterOptions};
use devcluster::config::Config;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn config(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cluster = rt
        .block_on(Cluster::start(
            ClusterOptions::new(Config::defaults())
                .auto_ports(true)
                .traffic(false),
        ))
        .unwrap();
    let center = cluster.config().clone();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let kv = format!("{}/v1/kv/lgo/traffic/rps", cluster.registry_url());

    // The targets are on p99: time 2000 of each one by one and print the percentiles.
    let mut set_us = Vec::new();
    let mut kv_us = Vec::new();
    for n in 0..2000u32 {
        let t = Instant::now();
        center
            .set("traffic.rps", &(n % 1000).to_string(), "bench")
            .unwrap();
        set_us.push(t.elapsed().as_micros() as u64);
        kv_us.push(rt.block_on(kv_round_trip(&http, &kv, n % 1000 + 1)));
    }
    eprintln!(
        "edit to applied, in process: {}; KV write to blocking query return: {}",
        percentiles(&mut set_us),
        percentiles(&mut kv_us)
    );

    let mut g = c.benchmark_group("config");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    let mut n = 0u32;
    g.bench_function("set_to_applied_in_process", |b| {
        b.iter(|| {
            n = (n + 1) % 1000;
            center.set("traffic.rps", &n.to_string(), "bench").unwrap()
        });
    });

    // Timed from the write only (the watcher is given 2 ms to block first).
    g.bench_function("kv_put_to_blocking_query_return", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|i| {
                    Duration::from_micros(rt.block_on(kv_round_trip(&http, &kv, i as u32 % 1000)))
                })
                .sum()
        });
    });
    g.finish();
    rt.block_on(cluster.shutdown());
}

/// From a KV write to the return of a blocking query waiting on that key, in microseconds.
async fn kv_round_trip(http: &reqwest::Client, kv: &str, value: u32) -> u64 {
    let index: u64 = http.get(kv).send().await.unwrap().headers()["X-Consul-Index"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let watch = tokio::spawn({
        let (http, url) = (http.clone(), format!("{kv}?index={index}&wait=10s"));
        async move { http.get(url).send().await.unwrap().bytes().await.unwrap() }
    });
    // Let the watcher's request arrive and block before the write.
    tokio::time::sleep(Duration::from_millis(2)).await;
    let t = Instant::now();
    http.put(kv).body(value.to_string()).send().await.unwrap();
    watch.await.unwrap();
    t.elapsed().as_micros() as u64
}

fn percentiles(us: &mut [u64]) -> String {
    us.sort_unstable();
    let at = |q: f64| us[((us.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        at(0.5),
        at(0.99),
        at(1.0)
    )
}

criterion_group!(benches, config);
criterion_main!(benches);
