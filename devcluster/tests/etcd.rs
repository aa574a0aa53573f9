//! The registry shared through a real etcd (Debian's `etcd-server`; `.ci/run` installs it):
//! each test starts its own etcd on free loopback ports with a temporary data directory.
//! Two registries stand for two processes: what one registers the other discovers, with its
//! health; a process that dies without deregistering is dropped when its lease expires; etcd
//! stopped and started again loses no registration; a config key put in etcd reaches every
//! running cluster on it (a bad one refused), and an edit on one goes out to the others.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/shared_store.rs"]
mod shared_store;

#[path = "common/etcd.rs"]
mod etcd_server;

use devcluster::config::Config;
use devcluster::registry::etcd::{EtcdMirror, EtcdOptions, Link};
use devcluster::registry::{Health, Registry};
use etcd_server::Etcd;
use shared_store::{health_in, instance, until};
use std::time::{Duration, Instant};

fn options(etcd: &Etcd) -> EtcdOptions {
    let mut o = EtcdOptions::new(etcd.url());
    o.lease_ttl = Duration::from_secs(2);
    o
}

#[tokio::test]
async fn what_one_process_registers_another_discovers_with_its_health() {
    let etcd = Etcd::start();
    let (a, b) = (Registry::new(), Registry::new());
    let ma = EtcdMirror::start(a.clone(), None, "process-a", options(&etcd));
    let mb = EtcdMirror::start(b.clone(), None, "process-b", options(&etcd));
    a.register(instance("payments-1")).unwrap();
    until("b discovers a's instance", Duration::from_secs(10), || {
        health_in(&b, "payments-1") == Some(Health::Passing)
    })
    .await;
    let seen = b.instance("payments-1").unwrap();
    assert_eq!(seen.service, "payments");
    assert_eq!(seen.meta.get("version").map(String::as_str), Some("2.1.0"));
    assert_eq!(seen.checks[0].kind, "ttl", "the check as its owner runs it");
    assert!(
        seen.checks[0].definition.contains("process-a"),
        "{:?}",
        seen.checks[0]
    );
    assert_eq!(b.discover("payments").len(), 1);

    // Health as a's check sees it reaches b.
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
    assert!(
        b.discover("payments").is_empty(),
        "not passing: not discovered"
    );

    // And b's own instances reach a, both ways at once.
    b.register(instance("payments-2")).unwrap();
    until("a discovers b's instance", Duration::from_secs(10), || {
        health_in(&a, "payments-2") == Some(Health::Passing)
    })
    .await;

    a.deregister("payments-1").unwrap();
    until(
        "b drops the deregistered instance",
        Duration::from_secs(10),
        || b.instance("payments-1").is_none(),
    )
    .await;
    assert_eq!(ma.link(), Link::Up);
    assert_eq!(mb.link(), Link::Up);
    mb.stop().await;
    until(
        "a drops b's instances once b stops",
        Duration::from_secs(10),
        || a.instance("payments-2").is_none(),
    )
    .await;
}

/// Two processes and one instance id. Registered by a first, the id is a's: b's API clients
/// cannot register over it, deregister it, pass its checks or weigh it (a refusal naming the
/// owner, not a silent local copy). Registered by both before either saw the other's, each
/// keeps its own, and one deregistering never removes the other's, here or in etcd.
#[tokio::test]
async fn an_instance_id_belongs_to_the_process_that_registered_it() {
    use devcluster::registry::RegistryError;
    let etcd = Etcd::start();
    let (a, b) = (Registry::new(), Registry::new());
    let _ma = EtcdMirror::start(a.clone(), None, "process-a", options(&etcd));
    let _mb = EtcdMirror::start(b.clone(), None, "process-b", options(&etcd));
    a.register(instance("pay-1")).unwrap();
    until("b takes in a's instance", Duration::from_secs(10), || {
        b.instance("pay-1").is_some()
    })
    .await;
    let owned = |r: Result<(), RegistryError>| match r {
        Err(RegistryError::Owned { owner, .. }) => owner == "process-a",
        _ => false,
    };
    assert!(owned(
        b.register_as_consul(instance("pay-1"), false).map(|_| ())
    ));
    assert!(owned(b.deregister_own("pay-1")));
    assert!(owned(b.update_ttl("service:pay-1", Health::Passing, "")));
    assert!(owned(b.set_weight("pay-1", 5)));
    let msg = b.deregister_own("pay-1").unwrap_err().to_string();
    assert!(
        msg.contains("another lgo-dash") && msg.contains("process-a"),
        "{msg}"
    );
    assert!(b.instance("pay-1").is_some() && a.instance("pay-1").is_some());

    // Both register the same id before either sees the other's (d, starting with its own
    // dup-1 while b's is in etcd already): each keeps its own; b's deregistration removes
    // b's alone, and d's goes out then (a process starting now, c, takes it in).
    let mut mine_b = instance("dup-1");
    mine_b.port = 7102;
    b.register(mine_b).unwrap();
    until("b's dup-1 is in etcd", Duration::from_secs(10), || {
        a.instance("dup-1").is_some_and(|i| i.port == 7102)
    })
    .await;
    let d = Registry::new();
    let mut mine_d = instance("dup-1");
    mine_d.port = 7101;
    d.register(mine_d).unwrap();
    let _md = EtcdMirror::start(d.clone(), None, "process-d", options(&etcd));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        d.instance("dup-1").unwrap().port,
        7101,
        "never replaced by b's"
    );
    assert_eq!(b.instance("dup-1").unwrap().port, 7102, "nor b's by d's");
    b.deregister("dup-1").unwrap();
    let c = Registry::new();
    let _mc = EtcdMirror::start(c.clone(), None, "process-c", options(&etcd));
    until(
        "c takes in d's dup-1 from etcd",
        Duration::from_secs(10),
        || c.instance("dup-1").is_some_and(|i| i.port == 7101),
    )
    .await;
    assert_eq!(d.instance("dup-1").map(|i| i.port), Some(7101));
    // A process that kept its own dup-1 beside d's, then deregistered it, shows d's then.
    let e = Registry::new();
    let mut mine_e = instance("dup-1");
    mine_e.port = 7103;
    e.register(mine_e).unwrap();
    let _me = EtcdMirror::start(e.clone(), None, "process-e", options(&etcd));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(e.instance("dup-1").unwrap().port, 7103);
    e.deregister("dup-1").unwrap();
    until(
        "e takes in d's dup-1 once its own went",
        Duration::from_secs(10),
        || e.instance("dup-1").is_some_and(|i| i.port == 7101),
    )
    .await;
}

#[tokio::test]
async fn a_process_that_dies_without_deregistering_is_dropped_when_its_lease_expires() {
    let etcd = Etcd::start();
    let (a, b) = (Registry::new(), Registry::new());
    let ma = EtcdMirror::start(a.clone(), None, "process-a", options(&etcd));
    let _mb = EtcdMirror::start(b.clone(), None, "process-b", options(&etcd));
    a.register(instance("payments-1")).unwrap();
    until("b discovers it", Duration::from_secs(10), || {
        b.instance("payments-1").is_some()
    })
    .await;
    // Dies: no deregistration, no revoke; its lease is no longer kept alive.
    drop(ma);
    let died = Instant::now();
    until(
        "b drops it after the lease's TTL",
        Duration::from_secs(10),
        || b.instance("payments-1").is_none(),
    )
    .await;
    assert!(
        died.elapsed() >= Duration::from_millis(500),
        "dropped by the lease's expiry, not at once ({:?})",
        died.elapsed()
    );
}

#[tokio::test]
async fn etcd_stopped_and_started_again_loses_no_registration() {
    let mut etcd = Etcd::start();
    let (a, b) = (Registry::new(), Registry::new());
    let ma = EtcdMirror::start(a.clone(), None, "process-a", options(&etcd));
    let mb = EtcdMirror::start(b.clone(), None, "process-b", options(&etcd));
    a.register(instance("payments-1")).unwrap();
    until("b discovers it", Duration::from_secs(10), || {
        b.instance("payments-1").is_some()
    })
    .await;

    etcd.stop();
    until("the mirrors notice", Duration::from_secs(15), || {
        matches!(ma.link(), Link::Down { .. }) && matches!(mb.link(), Link::Down { .. })
    })
    .await;
    // While etcd is away b keeps what it knew, and a registers another instance.
    assert!(
        b.instance("payments-1").is_some(),
        "the last known instances stay"
    );
    a.register(instance("payments-3")).unwrap();
    // Longer than a lease: etcd comes back to find every lease expired.
    tokio::time::sleep(Duration::from_secs(3)).await;

    etcd.spawn();
    until("both back up", Duration::from_secs(20), || {
        ma.link() == Link::Up && mb.link() == Link::Up
    })
    .await;
    until(
        "b sees a's instances again, the new one too",
        Duration::from_secs(20),
        || b.instance("payments-1").is_some() && b.instance("payments-3").is_some(),
    )
    .await;
    // And they stay: the leases are kept alive again (well past the 2 s TTL).
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(b.instance("payments-1").is_some() && b.instance("payments-3").is_some());
}

/// A cluster sharing its registry and config through `etcd`, on free ports, quiet.
async fn cluster_on(etcd: &Etcd) -> devcluster::Cluster {
    use devcluster::cluster::{Cluster, ClusterOptions};
    use devcluster::registry::Store;
    Cluster::start(
        ClusterOptions::new(Config::defaults())
            .auto_ports(true)
            .traffic(false)
            .store(Store::Etcd {
                endpoint: etcd.url(),
            }),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_config_key_put_in_etcd_reaches_every_running_cluster_and_a_bad_one_is_refused() {
    let etcd = Etcd::start();
    let (a, b) = (cluster_on(&etcd).await, cluster_on(&etcd).await);
    let mut client = etcd_client::Client::connect([etcd.url()], None)
        .await
        .unwrap();
    let rps = |c: &devcluster::Cluster| c.config().config().traffic.rps;
    client
        .put("lgo/config/traffic/rps", "42", None)
        .await
        .unwrap();
    until(
        "both clusters run at 42 req/s",
        Duration::from_secs(10),
        || rps(&a) == 42 && rps(&b) == 42,
    )
    .await;
    assert!(
        a.config()
            .history()
            .iter()
            .any(|c| c.key == "traffic.rps" && c.new.as_deref() == Some("42")),
        "the change is in the history"
    );

    // Not a number: refused, the config stays as it was.
    client
        .put("lgo/config/traffic/rps", "\"lots\"", None)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!((rps(&a), rps(&b)), (42, 42));

    // An edit on one cluster goes out through etcd to the other.
    a.handle()
        .config_set("balancer.user-service.strategy", Some("p2c"))
        .await
        .unwrap();
    let strategy = |c: &devcluster::Cluster| {
        c.config().config().balancer["user-service"]
            .strategy
            .to_string()
    };
    until("b switches to p2c", Duration::from_secs(10), || {
        strategy(&b) == "p2c"
    })
    .await;
    let stored = client
        .get("lgo/config/balancer/user-service/strategy", None)
        .await
        .unwrap();
    // As the KV layer keeps values: TOML text.
    assert_eq!(stored.kvs()[0].value_str().unwrap(), "\"p2c\"");

    // Deleted in etcd: back to the default everywhere.
    client.delete("lgo/config/traffic/rps", None).await.unwrap();
    let default = Config::defaults().traffic.rps;
    until("back to the default", Duration::from_secs(10), || {
        rps(&a) == default && rps(&b) == default
    })
    .await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn etcd_restarted_mid_traffic_fails_no_request_and_brings_every_registration_back() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let mut etcd = Etcd::start();
    let (a, b) = (cluster_on(&etcd).await, cluster_on(&etcd).await);
    let sees_all = |c: &devcluster::Cluster| {
        let i = c.registry().instances();
        i.len() == 16 && i.iter().all(|i| i.health == Health::Passing)
    };
    until(
        "each sees all sixteen, passing",
        Duration::from_secs(20),
        || sees_all(&a) && sees_all(&b),
    )
    .await;

    // Idempotent requests through a's gateway, to its instances and b's alike.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let gateway = a.gateway_url();
    let load: Vec<_> = (0..4)
        .map(|n| {
            let (stop, ok, failed, gateway) =
                (stop.clone(), ok.clone(), failed.clone(), gateway.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::builder().no_proxy().build().unwrap();
                let path = if n % 2 == 0 {
                    "/api/users/1"
                } else {
                    "/api/orders/2"
                };
                while !stop.load(Ordering::Relaxed) {
                    match http.get(format!("{gateway}{path}")).send().await {
                        Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect();

    etcd.stop();
    let store_problem = |c: &devcluster::Cluster| {
        c.handle()
            .snapshot()
            .endpoints
            .iter()
            .find(|e| e.name == "store")
            .and_then(|e| e.problem.clone())
    };
    until(
        "the dashboard is told the store is away",
        Duration::from_secs(15),
        || store_problem(&a).is_some(),
    )
    .await;
    until(
        "b's instances read as stale in a",
        Duration::from_secs(5),
        || {
            let snap = a.handle().snapshot();
            let stale = snap.instances.iter().filter(|i| i.stale).count();
            stale == 8 && snap.instances.iter().filter(|i| !i.stale).count() == 8
        },
    )
    .await;
    assert!(
        store_problem(&a).unwrap().contains("unreachable"),
        "{:?}",
        store_problem(&a)
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    etcd.spawn();
    until("back, nothing stale", Duration::from_secs(20), || {
        store_problem(&a).is_none()
            && store_problem(&b).is_none()
            && a.handle().snapshot().instances.iter().all(|i| !i.stale)
    })
    .await;
    until(
        "every registration back on both sides",
        Duration::from_secs(20),
        || sees_all(&a) && sees_all(&b),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.await.unwrap();
    }
    assert!(ok.load(Ordering::Relaxed) > 100, "the load ran");
    assert_eq!(failed.load(Ordering::Relaxed), 0, "no request failed");
    a.shutdown().await;
    b.shutdown().await;
}
