//! The config center over real sockets: layers and origins, edits through the admin API (what
//! `ctl config` uses) and through the Consul KV API, refusals that change nothing, hot apply under
//! load, history and undo.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{fault_user_service, http, start, start_layered, start_with};
use devcluster::cluster::Cluster;
use devcluster::config::{Config, Effective};
use devcluster::control::AdminClient;
use devcluster::services::faults::Fault;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[test]
fn each_layer_overrides_the_one_below_and_keys_know_their_origin() {
    let dir = std::env::temp_dir().join(format!("lgo-layers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("mine.toml");
    std::fs::write(
        &file,
        "[retries]\nattempts = 4\n[timeouts]\ncall_ms = 1500\n",
    )
    .unwrap();
    let layers = Config::base_layers(
        "staging",
        Some(&file),
        [("LGO__TIMEOUTS__CALL_MS".to_string(), "900".to_string())],
    )
    .unwrap();
    let e = Effective::of(&layers).unwrap();
    let c = &e.config;
    assert_eq!(c.health.interval_ms, 1000, "defaults");
    assert_eq!(c.traffic.rps, 50, "staging file over the defaults");
    assert_eq!(c.retries.attempts, 4, "user file over staging's 2");
    assert_eq!(c.timeouts.call_ms, 900, "LGO__ variable over the user file");
    let origin = |k: &str| e.origins[k].clone();
    assert_eq!(origin("health.interval_ms"), "defaults");
    assert_eq!(origin("traffic.rps"), "assets/config/staging.toml");
    assert!(origin("retries.attempts").ends_with("mine.toml"));
    assert_eq!(origin("timeouts.call_ms"), "env LGO__TIMEOUTS__CALL_MS");

    let prod = Effective::of(&Config::base_layers("production", None, []).unwrap()).unwrap();
    assert_eq!(
        prod.config.timeouts.call_ms, 1000,
        "production.json (JSON) applies"
    );
    assert_eq!(
        prod.origins["balancer.user-service.strategy"],
        "assets/config/production.json"
    );
    let bad = Config::base_layers(
        "development",
        None,
        [("LGO__TRAFFIC__RPS".into(), "lots".into())],
    )
    .and_then(|l| Effective::of(&l));
    let msg = bad.unwrap_err().to_string();
    assert!(msg.contains("rps"), "{msg}");
    std::fs::remove_dir_all(&dir).ok();
}

async fn post_config(cluster: &Cluster, key: &str, value: &str) -> (u16, Value) {
    let r = http()
        .post(format!("{}/api/config", cluster.admin_url()))
        .json(&serde_json::json!({"key": key, "value": value}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn kv_put(cluster: &Cluster, key: &str, value: &str) -> (u16, String) {
    let r = http()
        .put(format!("{}/v1/kv/{key}", cluster.registry_url()))
        .body(value.to_string())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn invalid_edits_are_refused_through_every_way_in_and_change_nothing() {
    let cluster = start().await;
    let before = cluster.config().config();
    let version = cluster.config().version();
    // Through the admin API (ctl config set, the dashboard): a 400 whose body names the key, the
    // value as read and what was expected, each on its own for scripts, and says it in words.
    for (key, value, (want_key, want_value, expect)) in [
        (
            "traffic.rps",
            "\"fast\"",
            (
                "traffic.rps",
                "\"fast\"",
                "a whole number from 0 to 4294967295",
            ),
        ),
        (
            "traffic.rps",
            "20000",
            ("traffic.rps", "20000", "0 to 10000"),
        ),
        (
            "balancer.user-service.strategy",
            "fastest",
            (
                "balancer.user-service.strategy",
                "\"fastest\"",
                "one of `round_robin`",
            ),
        ),
        (
            "breaker.default.failure_rate_threshold",
            "150",
            (
                "breaker.\"default\".failure_rate_threshold",
                "150",
                "a percentage from 1 to 100",
            ),
        ),
        (
            "retries.attemps",
            "2",
            ("retries.attemps", "2", "a known key: one of `attempts`"),
        ),
        (
            "routes",
            r#"[{path = "/x", service = "", rewrite = "/x"}]"#,
            ("routes[0].service", "\"\"", "a service name"),
        ),
    ] {
        let (status, v) = post_config(&cluster, key, value).await;
        assert_eq!(status, 400, "{key} = {value}: {v}");
        assert_eq!(v["key"], want_key, "{v}");
        assert_eq!(v["value"], want_value, "{v}");
        let expected = v["expected"].as_str().unwrap();
        assert!(expected.starts_with(expect), "{v}");
        assert_eq!(
            v["error"].as_str().unwrap(),
            format!("refused: {want_key} = {want_value}: expected {expected}"),
        );
    }
    // Through the Consul KV API: a 400 with the reason, and nothing stored.
    let (status, body) = kv_put(&cluster, "lgo/traffic/rps", "-5").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("traffic.rps"), "{body}");
    let r = http()
        .get(format!("{}/v1/kv/lgo/traffic/rps", cluster.registry_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "the refused value was not stored");
    assert_eq!(cluster.config().config(), before, "the live config stayed");
    assert_eq!(cluster.config().version(), version);
    assert!(cluster.config().history().is_empty());
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_kv_write_reaches_the_running_cluster_and_undo_brings_it_back() {
    let cluster = start().await;
    let admin = AdminClient::new(cluster.admin_url());
    let (status, body) = kv_put(&cluster, "lgo/balancer/user-service/strategy", "p2c").await;
    assert_eq!((status, body.as_str()), (200, "true"));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let b = admin.balancers().await.unwrap();
        let s = b.iter().find(|b| b.target == "user-service").unwrap();
        if s.strategy.to_string() == "p2c" {
            break;
        }
        assert!(Instant::now() < deadline, "the balancer never switched");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let e = admin
        .config_get("balancer.user-service.strategy")
        .await
        .unwrap();
    assert_eq!((e.value.as_str(), e.origin.as_str()), ("\"p2c\"", "kv"));

    // ctl config set, then history and undo.
    let applied = admin
        .config_set("traffic.rps", Some("0"), "ctl")
        .await
        .unwrap();
    assert_eq!(applied.changes.len(), 1);
    let h = admin.config_history().await.unwrap();
    let keys: Vec<(&str, &str)> = h.iter().map(|c| (c.key.as_str(), c.who.as_str())).collect();
    assert_eq!(
        keys,
        [
            ("balancer.user-service.strategy", "kv"),
            ("traffic.rps", "ctl")
        ]
    );
    assert_eq!(h[1].old.as_deref(), Some("20"));
    admin.config_undo().await.unwrap();
    let e = admin.config_get("traffic.rps").await.unwrap();
    assert_eq!(
        (e.value.as_str(), e.origin.as_str()),
        ("20", "config"),
        "back to the layer below"
    );
    admin.config_undo().await.unwrap();
    let b = admin.balancers().await.unwrap();
    let s = b.iter().find(|b| b.target == "user-service").unwrap();
    assert_eq!(s.strategy.to_string(), "round_robin");
    cluster.shutdown().await;
}

/// Waits until `n` more requests have been answered (at most 10 s).
async fn served_more(ok: &AtomicUsize, n: usize) {
    let from = ok.load(Ordering::Relaxed);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while ok.load(Ordering::Relaxed) < from + n {
        assert!(
            std::time::Instant::now() < deadline,
            "the load stalled: {} answered",
            ok.load(Ordering::Relaxed) - from
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn strategies_switched_under_load_lose_no_request() {
    let cluster = start().await;
    let gw = cluster.gateway_url();
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut load = Vec::new();
    for w in 0..8 {
        let (gw, stop, ok, failed) = (gw.clone(), stop.clone(), ok.clone(), failed.clone());
        load.push(tokio::spawn(async move {
            let client = http();
            let mut i = w;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let r = client
                    .get(format!("{gw}/api/users/{}", i % 5 + 1))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    let admin = AdminClient::new(cluster.admin_url());
    for s in [
        "random",
        "weighted",
        "least_request",
        "p2c",
        "consistent_hash",
        "round_robin",
    ] {
        // Each switch lands in the middle of traffic: requests answered before it and after it
        // (a fixed pause would prove nothing on a machine too slow to send any meanwhile).
        served_more(&ok, 20).await;
        admin
            .config_set("balancer.user-service.strategy", Some(s), "ctl")
            .await
            .unwrap();
    }
    served_more(&ok, 20).await;
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.await.unwrap();
    }
    assert!(ok.load(Ordering::Relaxed) > 100, "load ran");
    assert_eq!(failed.load(Ordering::Relaxed), 0, "no request failed");
    assert_eq!(cluster.config().history().len(), 6);
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_lowered_breaker_threshold_opens_the_breaker_at_the_new_threshold() {
    let cluster = start_with(Config::defaults()).await;
    let handle = cluster.handle();
    let failing = Fault {
        error_rate: 1.0,
        ..Default::default()
    };
    fault_user_service(&handle, failing).await;
    let admin = AdminClient::new(cluster.admin_url());
    let breaker = "breaker.gateway->user-service";
    for (k, v) in [
        ("minimum_calls", "4"),
        ("window", "4"),
        ("failure_rate_threshold", "75"),
    ] {
        admin
            .config_set(&format!("{breaker}.{k}"), Some(v), "ctl")
            .await
            .unwrap();
    }
    let state = || async {
        admin
            .breakers()
            .await
            .unwrap()
            .into_iter()
            .find(|b| b.name == "gateway->user-service")
            .unwrap()
    };
    // POSTs are not retried: one call each. Under the defaults (minimum 10 calls) three failed
    // calls would leave it closed; with minimum_calls 4 the fourth opens it.
    let post = || async {
        http()
            .post(format!("{}/api/users", cluster.gateway_url()))
            .json(&serde_json::json!({"name": "x", "email": "x@example.com"}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    for _ in 0..3 {
        assert_eq!(post().await, 500);
    }
    assert_eq!(state().await.state.to_string(), "closed", "3 of 4 calls");
    assert_eq!(post().await, 500);
    let b = state().await;
    assert_eq!(b.state.to_string(), "open", "{b:?}");
    assert_eq!(post().await, 503, "refused by the open breaker");
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_cluster_started_from_layers_reports_their_origins() {
    let cluster = start_layered("staging", None).await;
    let e = cluster.config().get("traffic.rps").unwrap();
    assert_eq!(
        (e.value.as_str(), e.origin.as_str()),
        ("50", "assets/config/staging.toml")
    );
    assert_eq!(
        cluster.config().get("ports.admin").unwrap().origin,
        "defaults"
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn switching_environment_shows_its_diff_first_then_applies_it() {
    let cluster = start_layered("development", None).await;
    let center = cluster.config();
    assert_eq!(center.env().as_deref(), Some("development"));
    let diff = center.env_diff("staging").unwrap();
    let keys: Vec<(&str, Option<&str>, Option<&str>)> = diff
        .iter()
        .map(|c| (c.key.as_str(), c.old.as_deref(), c.new.as_deref()))
        .collect();
    assert!(
        keys.contains(&("traffic.rps", Some("20"), Some("50"))),
        "{keys:?}"
    );
    assert!(
        keys.contains(&("retries.attempts", Some("3"), Some("2"))),
        "{keys:?}"
    );
    assert_eq!(center.config().traffic.rps, 20, "a preview applies nothing");

    let admin = AdminClient::new(cluster.admin_url());
    let applied = admin.config_env("staging", true).await.unwrap();
    assert_eq!(applied.changes.len(), diff.len());
    assert_eq!(center.env().as_deref(), Some("staging"));
    assert_eq!(center.config().traffic.rps, 50);
    assert_eq!(
        center.get("traffic.rps").unwrap().origin,
        "assets/config/staging.toml"
    );
    let err = admin.config_env("qa", false).await.unwrap_err().to_string();
    assert!(
        err.contains("known: development, staging, production"),
        "{err}"
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn faults_are_config_too() {
    let cluster = start().await;
    let admin = AdminClient::new(cluster.admin_url());
    let fault_of = |id: &str| {
        let snap = cluster.handle().snapshot();
        snap.instances
            .iter()
            .find(|i| i.view.id == id)
            .and_then(|i| i.fault.clone())
    };
    admin
        .config_set("faults.user-service-2.latency_ms", Some("150"), "ctl")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while fault_of("user-service-2").is_none() {
        assert!(Instant::now() < deadline, "the fault never showed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(fault_of("user-service-2").unwrap().fault.latency_ms, 150);
    let err = admin
        .config_set("faults.user-service-2.error_rate", Some("2"), "ctl")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("error_rate = 2: expected 0.0 to 1.0"), "{err}");
    admin
        .config_set("faults.user-service-2", None, "ctl")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while fault_of("user-service-2").is_some() {
        assert!(Instant::now() < deadline, "the fault was never cleared");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.shutdown().await;
}

/// The history names who changed a knob through a command: the dashboard (through its handle,
/// in this process or attached) or `ctl` (the admin API's default).
#[tokio::test]
async fn the_history_says_whether_the_dashboard_or_ctl_switched_a_strategy() {
    use devcluster::balance::Strategy;
    use devcluster::control::Command;
    let cluster = common::start().await;
    let strategy = |s| Command::Strategy {
        service: "user-service".into(),
        strategy: s,
    };
    cluster
        .handle()
        .send(strategy(Strategy::P2c))
        .await
        .unwrap();
    let admin = AdminClient::new(cluster.admin_url());
    admin.send(&strategy(Strategy::Random)).await.unwrap();
    let attached = devcluster::ClusterHandle::remote(admin.clone());
    attached
        .send(strategy(Strategy::LeastRequest))
        .await
        .unwrap();
    let who: Vec<String> = cluster
        .config()
        .history()
        .iter()
        .map(|c| format!("{} {}", c.who, c.new.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(
        who,
        [
            "dashboard \"p2c\"",
            "ctl \"random\"",
            "dashboard \"least_request\""
        ]
    );
    cluster.shutdown().await;
}
