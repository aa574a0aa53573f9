//! The traffic generator's achieved rate: for each asked rate, the requests it sent and the
//! answers it got per second over a measured window, against the rate asked (target: within 5 %
//! up to 2000 req/s).
//!
//! Run: `cargo bench -p devcluster --bench traffic`   (SECS=N for a longer window; default 10)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use devcluster::cluster::{Cluster, ClusterOptions};
use devcluster::config::Config;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let secs: u64 = std::env::var("SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let cluster = Cluster::start(
            ClusterOptions::new(Config::defaults())
                .auto_ports(true)
                .traffic(false),
        )
        .await
        .unwrap();
        println!("asked req/s | sent req/s | answered req/s | sent/asked | skipped");
        for rps in [100u32, 500, 1000, 2000] {
            cluster
                .config()
                .set("traffic.rps", &rps.to_string(), "bench")
                .unwrap();
            tokio::time::sleep(Duration::from_secs(2)).await;
            let (t0, a) = (Instant::now(), cluster.traffic());
            tokio::time::sleep(Duration::from_secs(secs)).await;
            let (t1, b) = (Instant::now(), cluster.traffic());
            let dt = (t1 - t0).as_secs_f64();
            let answered = |v: &devcluster::services::traffic::TrafficView| {
                v.ok + v.client_errors + v.failed_idempotent + v.failed_other
            };
            let sent = (b.sent - a.sent) as f64 / dt;
            println!(
                "{rps:>11} | {sent:>10.1} | {:>14.1} | {:>10.3} | {}",
                (answered(&b) - answered(&a)) as f64 / dt,
                sent / f64::from(rps),
                b.skipped - a.skipped
            );
        }
        cluster.shutdown().await;
    });
}
