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

/// An attached dashboard fetches only the slices that changed since the version it holds: a
/// strategy switch (a config change) travels without the instances, and rebuilds the same
/// snapshot the cluster holds; a dashboard of another run (epoch) gets everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attached_dashboard_fetches_only_the_slices_that_changed() {
    use devcluster::balance::Strategy;
    use devcluster::control::Command;
    let cluster = Cluster::start(
        ClusterOptions::new(Config::from_layers(&[("defaults", DEFAULTS_TOML)]).unwrap())
            .traffic(false)
            .auto_ports(true),
    )
    .await
    .unwrap();
    let handle = cluster.handle();
    wait_until("every instance passing", Duration::from_secs(10), || {
        let s = handle.snapshot();
        !s.instances.is_empty()
            && s.instances
                .iter()
                .all(|i| i.view.health == devcluster::registry::Health::Passing)
    })
    .await;
    let client = AdminClient::new(cluster.admin_url());
    let whole = client
        .snapshot_since(0, 0, Duration::ZERO)
        .await
        .unwrap()
        .apply(&Default::default())
        .unwrap();
    assert!(!whole.instances.is_empty() && whole.epoch != 0);
    let key = "balancer.user-service.strategy";
    let strategy = |s: &devcluster::handle::ClusterSnapshot| {
        s.config
            .entries
            .iter()
            .find(|e| e.key == key)
            .map(|e| e.value.clone())
    };
    let before = strategy(&whole);

    client
        .send(&Command::Strategy {
            service: "user-service".into(),
            strategy: Strategy::LeastRequest,
        })
        .await
        .unwrap();
    let mut held = whole;
    let mut seen = Vec::new();
    let mut alone = false;
    let start = Instant::now();
    while strategy(&held) == before {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the change never came: {seen:?}"
        );
        let d = client
            .snapshot_since(held.version, held.epoch, Duration::from_secs(2))
            .await
            .unwrap();
        let size = serde_json::to_string(&d).unwrap().len();
        seen.push(format!(
            "v{} instances:{} config:{} {size} B",
            d.version,
            d.instances.is_some(),
            d.config.is_some(),
        ));
        let carried_instances = d.instances.is_some();
        let carried_config = d.config.is_some();
        held = d.apply(&held).unwrap();
        if carried_config && !carried_instances {
            // The instances' bytes did not travel: the delta is the whole snapshot of that
            // version less them.
            let whole_now = serde_json::to_string(&held.since(0, 0)).unwrap().len();
            let instances_now = serde_json::to_string(&held.instances).unwrap().len();
            assert!(
                size + instances_now <= whole_now,
                "{size} B + {instances_now} B of instances against {whole_now} B"
            );
            alone = true;
        }
    }
    assert!(alone, "the config change came with the instances: {seen:?}");
    // What the deltas rebuilt is what the cluster holds at that version.
    let now = handle.snapshot();
    if now.version == held.version {
        let differ: Vec<&str> = [
            ("instances", now.instances == held.instances),
            ("balancers", now.balancers == held.balancers),
            ("breakers", now.breakers == held.breakers),
            ("traffic", now.traffic == held.traffic),
            ("metrics", now.metrics == held.metrics),
            ("config", now.config == held.config),
            ("slices", now.slices == held.slices),
            ("index", now.registry_index == held.registry_index),
        ]
        .into_iter()
        .filter(|(_, same)| !same)
        .map(|(n, _)| n)
        .collect();
        assert!(
            differ.is_empty(),
            "rebuilt differs in {differ:?} at v{}",
            now.version
        );
    }
    // Another run's dashboard gets every slice.
    let other = client
        .snapshot_since(held.version, held.epoch + 1, Duration::ZERO)
        .await
        .unwrap();
    assert!(other.instances.is_some() && other.config.is_some() && other.metrics.is_some());
    cluster.shutdown().await;
}
