//! Shared by the cluster tests: a cluster on free ports without the traffic generator, once all
//! its sample instances pass their health checks, and an HTTP client that ignores proxies.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use devcluster::cluster::{Cluster, ClusterOptions};
use devcluster::config::Config;
use devcluster::registry::Health;
use std::time::{Duration, Instant};

pub async fn start_with(cfg: Config) -> Cluster {
    let cluster = Cluster::start(ClusterOptions::new(cfg).auto_ports(true).traffic(false))
        .await
        .unwrap();
    let reg = cluster.registry().clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !reg.instances().iter().all(|i| i.health == Health::Passing) {
        assert!(
            Instant::now() < deadline,
            "sample instances never all passed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster
}

/// A cluster built from the real layers: the defaults, environment `env`'s file, and `file`
/// (written back to and watched) when given.
pub async fn start_layered(env: &str, file: Option<&std::path::Path>) -> Cluster {
    let layers = Config::base_layers(env, file, []).unwrap();
    let cfg = devcluster::config::Effective::of(&layers).unwrap().config;
    Cluster::start(
        ClusterOptions::new(cfg)
            .layers(layers)
            .config_file(file.map(std::path::Path::to_path_buf))
            .auto_ports(true)
            .traffic(false),
    )
    .await
    .unwrap()
}

pub async fn start() -> Cluster {
    start_with(Config::defaults()).await
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// The text of the admin port's `/metrics`.
pub async fn admin_metrics(cluster: &Cluster) -> String {
    http()
        .get(format!("{}/metrics", cluster.admin_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Gives each of the three user-service instances `fault` until it is cleared.
pub async fn fault_user_service(
    handle: &devcluster::ClusterHandle,
    fault: devcluster::services::faults::Fault,
) {
    for n in 1..=3 {
        handle
            .send(devcluster::control::Command::Fault {
                id: format!("user-service-{n}"),
                fault: fault.clone(),
                for_s: None,
            })
            .await
            .unwrap();
    }
}

/// The next snapshot published after now (they are rebuilt on a short tick).
pub async fn fresh(
    handle: &devcluster::ClusterHandle,
) -> std::sync::Arc<devcluster::handle::ClusterSnapshot> {
    let mut rx = handle.subscribe();
    rx.borrow_and_update();
    rx.changed().await.unwrap();
    rx.borrow().clone()
}
