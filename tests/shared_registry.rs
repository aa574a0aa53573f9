//! Two `lgo-dash serve` processes on one real etcd (`--registry etcd://…`, as two developers
//! sharing an environment would run them): each lists the other's instances with their
//! health, a request through one gateway can land on the other's instances, and one stopping
//! withdraws its instances from the other's view at once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../devcluster/tests/common/etcd.rs"]
mod etcd_server;
#[path = "common/served.rs"]
mod served;

use serde_json::Value;
use served::{BIN, Served};
use std::time::{Duration, Instant};
use tokio::process::Command;

async fn serve(store: &str) -> Served {
    served::start(
        &[
            "serve",
            "--ports",
            "auto",
            "--no-traffic",
            "--registry",
            store,
        ],
        &[],
    )
    .await
}

async fn instances(admin: &str) -> Vec<Value> {
    let out = Command::new(BIN)
        .args(["ctl", "--admin", admin, "instances", "--json"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
}

fn ids(list: &[Value], health: Option<&str>) -> Vec<String> {
    list.iter()
        .filter(|i| health.is_none_or(|h| i["health"] == h))
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn two_processes_on_one_etcd_see_each_others_instances() {
    let etcd = etcd_server::Etcd::start();
    let store = format!("etcd://{}", etcd.url().trim_start_matches("http://"));
    let a = serve(&store).await;
    let b = serve(&store).await;
    assert_eq!(a.url("store"), store, "serve names the store it shares");

    // Each lists the other's eight instances beside its own, passing.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (list_a, list_b) = loop {
        let (la, lb) = (
            instances(&a.url("admin")).await,
            instances(&b.url("admin")).await,
        );
        if ids(&la, Some("passing")).len() == 16 && ids(&lb, Some("passing")).len() == 16 {
            break (la, lb);
        }
        assert!(
            Instant::now() < deadline,
            "a sees {:?}\nb sees {:?}",
            ids(&la, None),
            ids(&lb, None)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut seen_a = ids(&list_a, None);
    let mut seen_b = ids(&list_b, None);
    seen_a.sort();
    seen_b.sort();
    assert_eq!(seen_a, seen_b, "one view");
    // The ids carry each process's tag: two user-service-1, told apart.
    let firsts: Vec<&String> = seen_a
        .iter()
        .filter(|i| i.starts_with("user-service-1-") && !i.ends_with("-grpc"))
        .collect();
    assert_eq!(firsts.len(), 2, "{seen_a:?}");
    // b's own instances are external to a: a can show them but not kill them.
    let own_b: Vec<&Value> = list_b
        .iter()
        .filter(|i| i["process"] == "running")
        .collect();
    assert_eq!(own_b.len(), 8);
    let theirs = own_b[0]["id"].as_str().unwrap();
    let out = Command::new(BIN)
        .args(["ctl", "--admin", &a.url("admin"), "kill", theirs])
        .output()
        .await
        .unwrap();
    assert!(
        !out.status.success(),
        "another process's instance is not a's to kill"
    );

    // b stops gracefully: a's view drops its instances at once (its lease is revoked).
    let mut b = b;
    let pid = b.child.id().unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await;
    assert!(b.child.wait().await.unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let la = instances(&a.url("admin")).await;
        if la.len() == 8 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a still sees {:?}",
            ids(&la, None)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(a);
}
