//! The registry shared through a Consul agent — here the embedded registry's own Consul API
//! (no Consul server can be installed on this machine), reached over HTTP like any agent:
//! each process registers its instances with TTL checks it passes, the others follow them with
//! blocking queries; a process that dies is marked critical, then removed; config keys in the
//! agent's KV store reach every cluster on it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/shared_store.rs"]
mod shared_store;

use devcluster::cluster::{Cluster, ClusterOptions};
use devcluster::config::Config;
use devcluster::registry::consul_store::{ConsulMirror, ConsulOptions, Link};
use devcluster::registry::{Health, Registry, Store};
use shared_store::{health_in, instance, until};
use std::time::Duration;

/// A cluster whose registry plays the Consul agent (without sample instances of its own).
async fn agent() -> Cluster {
    let cfg = Config::from_layers(&[
        ("defaults", devcluster::config::DEFAULTS_TOML),
        (
            "agent",
            "[services.user-service]\ninstances = 0\n[services.order-service]\ninstances = 0\n",
        ),
    ])
    .unwrap();
    Cluster::start(ClusterOptions::new(cfg).auto_ports(true).traffic(false))
        .await
        .unwrap()
}

fn options(agent: &Cluster) -> ConsulOptions {
    let mut o = ConsulOptions::new(agent.registry_url());
    o.check_ttl = Duration::from_secs(2);
    o.deregister_after = Duration::from_secs(2);
    o
}

#[tokio::test]
async fn instances_go_through_the_agent_with_their_health_and_leave_when_withdrawn() {
    let agent = agent().await;
    let (a, b) = (Registry::new(), Registry::new());
    let ma = ConsulMirror::start(a.clone(), None, "process-a", options(&agent));
    let mb = ConsulMirror::start(b.clone(), None, "process-b", options(&agent));
    a.register(instance("payments-1")).unwrap();
    until("b discovers a's instance", Duration::from_secs(10), || {
        health_in(&b, "payments-1") == Some(Health::Passing)
    })
    .await;
    // In the agent: registered with a TTL check a passes.
    let there = agent.registry().instance("payments-1").unwrap();
    assert_eq!(there.checks[0].kind, "ttl");
    assert_eq!(there.health, Health::Passing);
    assert_eq!(
        there.meta.get("lgo_owner").map(String::as_str),
        Some("process-a")
    );

    a.update_ttl("service:payments-1", Health::Critical, "disk full")
        .unwrap();
    until("b sees it critical", Duration::from_secs(10), || {
        health_in(&b, "payments-1") == Some(Health::Critical)
    })
    .await;
    assert_eq!(
        b.instance("payments-1").unwrap().checks[0].output,
        "disk full"
    );

    // Still passing after several TTLs: a keeps passing its check.
    a.update_ttl("service:payments-1", Health::Passing, "ok")
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(health_in(&b, "payments-1"), Some(Health::Passing));

    a.deregister("payments-1").unwrap();
    until("b drops it", Duration::from_secs(10), || {
        b.instance("payments-1").is_none()
    })
    .await;
    assert!(agent.registry().instance("payments-1").is_none());
    assert_eq!((ma.link(), mb.link()), (Link::Up, Link::Up));
    agent.shutdown().await;
}

#[tokio::test]
async fn a_process_that_dies_turns_critical_then_is_removed() {
    let agent = agent().await;
    let (a, b) = (Registry::new(), Registry::new());
    let ma = ConsulMirror::start(a.clone(), None, "process-a", options(&agent));
    let _mb = ConsulMirror::start(b.clone(), None, "process-b", options(&agent));
    a.register(instance("payments-1")).unwrap();
    until("b discovers it", Duration::from_secs(10), || {
        health_in(&b, "payments-1") == Some(Health::Passing)
    })
    .await;
    // Dies: no deregistration, no more TTL passes.
    drop(ma);
    until(
        "critical once its TTL runs out",
        Duration::from_secs(10),
        || health_in(&b, "payments-1") == Some(Health::Critical),
    )
    .await;
    until(
        "removed by the agent after that",
        Duration::from_secs(15),
        || b.instance("payments-1").is_none(),
    )
    .await;
    agent.shutdown().await;
}

#[tokio::test]
async fn clusters_on_one_agent_share_instances_and_config_keys() {
    let agent = agent().await;
    let store = Store::Consul {
        address: agent.registry_url(),
    };
    let start = || {
        Cluster::start(
            ClusterOptions::new(Config::defaults())
                .auto_ports(true)
                .traffic(false)
                .store(store.clone()),
        )
    };
    let (x, y) = (start().await.unwrap(), start().await.unwrap());
    let sees = |c: &Cluster| {
        c.registry()
            .instances()
            .iter()
            .filter(|i| i.health == Health::Passing)
            .count()
    };
    until(
        "each sees the other's eight beside its own",
        Duration::from_secs(20),
        || sees(&x) == 16 && sees(&y) == 16,
    )
    .await;

    // A config key put in the agent's KV store (as text, binary-safe on the wire).
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    http.put(format!("{}/v1/kv/lgo/traffic/rps", agent.registry_url()))
        .body("42")
        .send()
        .await
        .unwrap();
    let rps = |c: &Cluster| c.config().config().traffic.rps;
    until("both run at 42 req/s", Duration::from_secs(10), || {
        rps(&x) == 42 && rps(&y) == 42
    })
    .await;
    // An edit on one goes out to the other.
    x.handle()
        .config_set("balancer.user-service.strategy", Some("p2c"))
        .await
        .unwrap();
    until("y switches too", Duration::from_secs(10), || {
        y.config().config().balancer["user-service"]
            .strategy
            .to_string()
            == "p2c"
    })
    .await;
    x.shutdown().await;
    until(
        "y drops x's instances once x stops",
        Duration::from_secs(10),
        || sees(&y) == 8,
    )
    .await;
    y.shutdown().await;
    agent.shutdown().await;
}
