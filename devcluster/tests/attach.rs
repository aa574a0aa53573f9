//! `--attach` over real sockets: a handle on a cluster behind its admin URL says when the
//! cluster stops answering, keeps what it last showed, and picks up by itself when a cluster
//! answers on that URL again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use devcluster::ClusterHandle;
use devcluster::cluster::{Cluster, ClusterOptions};
use devcluster::config::{Config, DEFAULTS_TOML};
use devcluster::control::AdminClient;
use devcluster::handle::Link;
use std::time::{Duration, Instant};

#[path = "common/fixed_ports.rs"]
mod fixed_ports;

/// A cluster on fixed ports, so a second one takes the first one's admin URL.
fn fixed_ports_config() -> Config {
    let (text, _) = fixed_ports::fixed_ports_toml();
    Config::from_layers(&[("defaults", DEFAULTS_TOML), ("test", &text)]).unwrap()
}

async fn start(cfg: &Config) -> Cluster {
    Cluster::start(ClusterOptions::new(cfg.clone()).traffic(false))
        .await
        .unwrap()
}

async fn wait_until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < within, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_cluster_is_noticed_and_one_that_answers_again_is_picked_up() {
    let cfg = fixed_ports_config();
    let cluster = start(&cfg).await;
    let admin = cluster.admin_url();
    let handle = ClusterHandle::remote(AdminClient::new(&admin));
    wait_until("the first snapshot", Duration::from_secs(10), || {
        handle.link() == Link::Up && !handle.snapshot().instances.is_empty()
    })
    .await;
    let shown = handle.snapshot().instances.len();

    cluster.shutdown().await;
    let noticed = wait_until("the loss noticed", Duration::from_secs(3), || {
        matches!(handle.link(), Link::Lost { ever_up: true, .. })
    })
    .await;
    let Link::Lost { error, .. } = handle.link() else {
        unreachable!()
    };
    assert!(error.contains(&admin), "{error}");
    // What it last showed stays on screen, marked by the link.
    assert_eq!(handle.snapshot().instances.len(), shown);

    let again = start(&cfg).await;
    assert_eq!(again.admin_url(), admin);
    let recovered = wait_until(
        "the cluster picked up again",
        Duration::from_secs(10),
        || handle.link() == Link::Up,
    )
    .await;
    // The new cluster's own snapshot, though its versions started over.
    let before = handle.snapshot().version;
    again
        .handle()
        .send(devcluster::control::Command::Strategy {
            service: "user-service".into(),
            strategy: devcluster::balance::Strategy::P2c,
        })
        .await
        .unwrap();
    wait_until(
        "a change on the new cluster seen",
        Duration::from_secs(10),
        || handle.snapshot().version != before,
    )
    .await;
    eprintln!("loss noticed in {noticed:?}, recovery in {recovered:?}");
    again.shutdown().await;
}

#[tokio::test]
async fn attaching_where_nothing_answers_says_so_at_once() {
    let handle = ClusterHandle::remote(AdminClient::new("http://127.0.0.1:1"));
    wait_until("the failure reported", Duration::from_secs(3), || {
        matches!(handle.link(), Link::Lost { ever_up: false, .. })
    })
    .await;
    let Link::Lost { error, .. } = handle.link() else {
        unreachable!()
    };
    assert!(
        error.contains("nothing answers at http://127.0.0.1:1"),
        "{error}"
    );
    assert!(error.contains("lgo-dash serve"), "{error}");
}
