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
use std::time::Duration;

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

    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let kv = format!("{}/v1/kv/lgo/traffic/rps", cluster.registry_url());
    g.bench_function("kv_put_to_blocking_query_return", |b| {
        b.iter(|| {
            rt.block_on(async {
                let index: u64 = http.get(&kv).send().await.unwrap().headers()["X-Consul-Index"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                let watch = tokio::spawn({
                    let (http, url) = (http.clone(), format!("{kv}?index={index}&wait=10s"));
                    async move { http.get(url).send().await.unwrap().bytes().await.unwrap() }
                });
                // Let the watcher's request arrive and block before the write.
                tokio::task::yield_now().await;
                n = (n + 1) % 1000;
                http.put(&kv).body(n.to_string()).send().await.unwrap();
                watch.await.unwrap()
            })
        });
    });
    g.finish();
    rt.block_on(cluster.shutdown());
}

criterion_group!(benches, config);
criterion_main!(benches);
