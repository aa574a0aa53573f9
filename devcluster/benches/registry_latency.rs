//! How long a registration takes to be seen, and a discovery to answer: the embedded registry
//! against the registry shared through a real etcd on loopback (an etcd of its own, as the
//! tests start one; Debian's `etcd-server` must be on PATH).
//!
//! - register → seen: from `register()` in one registry until a watcher of another sees the
//!   instance. Embedded in-process: the same registry's change watch. Embedded over the Consul
//!   API: `PUT /v1/agent/service/register` while a blocking query on `/v1/health/service/NAME`
//!   waits. etcd: two registries, each mirrored through etcd (two processes would do the same).
//! - discover: one lookup of a service's passing instances: the embedded registry's, and an
//!   etcd prefix read of the same instances (what a process without the mirror would pay).
//!
//! Run: `cargo bench -p devcluster --bench registry_latency`   (N=registrations, default 200)

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/latency.rs"]
mod latency;
use latency::summary;

#[path = "../tests/common/etcd.rs"]
mod etcd_server;

use devcluster::registry::etcd::{EtcdMirror, EtcdOptions, Link, PREFIX};
use devcluster::registry::{Registration, Registry};
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn instance(id: &str, service: &str) -> Registration {
    Registration {
        id: id.into(),
        name: service.into(),
        address: "127.0.0.1".into(),
        port: 7000,
        weight_passing: 1,
        weight_warning: 1,
        ..Default::default()
    }
}

fn main() {
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        // Embedded, in-process: register, the change watch wakes, the instance is there.
        let r = Registry::new();
        let mut seen = Vec::new();
        for i in 0..n {
            let mut rx = r.subscribe();
            let t = Instant::now();
            r.register(instance(&format!("a-{i}"), "embedded")).unwrap();
            rx.changed().await.unwrap();
            assert!(r.instance(&format!("a-{i}")).is_some());
            seen.push(t.elapsed());
        }
        summary("register → seen, embedded in-process", seen);

        // Embedded over the Consul API: a blocking query answers the registration.
        let cluster = devcluster::Cluster::start(
            devcluster::cluster::ClusterOptions::new(devcluster::config::Config::defaults())
                .auto_ports(true)
                .traffic(false),
        )
        .await
        .unwrap();
        let url = cluster.registry_url();
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let mut seen = Vec::new();
        for i in 0..n {
            let id = format!("c-{i}");
            let mut index = cluster.registry().index();
            // A watcher as a Consul client runs one: blocking queries, each from the index
            // the last answered, until the instance is there (health checks move the index
            // too, so some answers come back without it).
            let waiter = {
                let (http, url, id) = (http.clone(), url.clone(), id.clone());
                tokio::spawn(async move {
                    loop {
                        let resp = http
                            .get(format!(
                                "{url}/v1/health/service/consul-api?index={index}&wait=5s"
                            ))
                            .send()
                            .await
                            .unwrap();
                        index = resp.headers()["x-consul-index"]
                            .to_str()
                            .unwrap()
                            .parse()
                            .unwrap();
                        if resp.text().await.unwrap().contains(&format!("\"{id}\"")) {
                            return Instant::now();
                        }
                    }
                })
            };
            // Let the query reach the server and block.
            tokio::time::sleep(Duration::from_millis(2)).await;
            let t = Instant::now();
            http.put(format!("{url}/v1/agent/service/register"))
                .body(format!(
                    r#"{{"ID":"{id}","Name":"consul-api","Address":"127.0.0.1","Port":7000}}"#
                ))
                .send()
                .await
                .unwrap();
            let seen_at = waiter.await.unwrap();
            seen.push(seen_at.saturating_duration_since(t));
        }
        summary("register → seen, embedded over the Consul API", seen);
        let mut lookups = Vec::new();
        for _ in 0..n {
            let t = Instant::now();
            let found = cluster.registry().service("consul-api", true);
            lookups.push(t.elapsed());
            assert_eq!(found.len(), n);
        }
        summary("discover, embedded (in-process)", lookups);
        cluster.shutdown().await;

        // Through a real etcd: registered in one registry, seen in another.
        let etcd = etcd_server::Etcd::start();
        let (a, b) = (Registry::new(), Registry::new());
        let ma = EtcdMirror::start(a.clone(), None, "bench-a", EtcdOptions::new(etcd.url()));
        let mb = EtcdMirror::start(b.clone(), None, "bench-b", EtcdOptions::new(etcd.url()));
        while ma.link() != Link::Up || mb.link() != Link::Up {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut seen = Vec::new();
        for i in 0..n {
            let id = format!("e-{i}");
            let mut rx = b.subscribe();
            let t = Instant::now();
            a.register(instance(&id, "shared")).unwrap();
            while b.instance(&id).is_none() {
                rx.changed().await.unwrap();
            }
            seen.push(t.elapsed());
        }
        summary("register → seen, through etcd (two registries)", seen);
        let mut client = etcd_client::Client::connect([etcd.url()], None)
            .await
            .unwrap();
        let mut lookups = Vec::new();
        for _ in 0..n {
            let t = Instant::now();
            let got = client
                .get(PREFIX, Some(etcd_client::GetOptions::new().with_prefix()))
                .await
                .unwrap();
            lookups.push(t.elapsed());
            assert_eq!(got.kvs().len(), n);
        }
        summary("discover, etcd prefix read", lookups);
        let mut lookups = Vec::new();
        for _ in 0..n {
            let t = Instant::now();
            let found = b.service("shared", true);
            lookups.push(t.elapsed());
            assert_eq!(found.len(), n);
        }
        summary("discover, mirrored from etcd (in-process)", lookups);
        drop((ma, mb));
    });
}
