//! How soon a Nacos config listener wakes on a publish: a long poll (`POST
//! /nacos/v1/cs/configs/listener`, holding the current MD5) is waiting; the time from sending
//! the publish (`POST /nacos/v1/cs/configs`) until the listener's answer arrives, on loopback.
//! Interleaved with the same for the Consul KV API (a blocking query on the key, woken by a
//! `PUT`), the embedded registry's other watch, as the reference.
//!
//! Run: `cargo bench -p devcluster --bench nacos_listener`   (N=rounds, default 300)

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/latency.rs"]
mod latency;
use latency::summary;

use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn md5(text: &str) -> String {
    use md5::Digest;
    md5::Md5::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn main() {
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let cluster = devcluster::Cluster::start(
            devcluster::cluster::ClusterOptions::new(devcluster::config::Config::defaults())
                .auto_ports(true)
                .traffic(false),
        )
        .await
        .unwrap();
        let nacos = cluster
            .endpoints()
            .iter()
            .find(|e| e.name == "nacos")
            .unwrap()
            .url
            .clone();
        let registry = cluster.registry_url();
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let form = |pairs: &[(&str, &str)]| serde_urlencoded::to_string(pairs).unwrap();
        let (mut woke_nacos, mut woke_consul) = (Vec::new(), Vec::new());
        for i in 0..n {
            // Nacos: a listener on the config as it is now, then a publish that changes it.
            let content = format!("round: {i}\n");
            let listening = format!("bench.yaml\u{2}DEFAULT_GROUP\u{2}{}\u{1}", md5(&content));
            http.post(format!("{nacos}/nacos/v1/cs/configs"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form(&[
                    ("dataId", "bench.yaml"),
                    ("group", "DEFAULT_GROUP"),
                    ("content", &content),
                ]))
                .send()
                .await
                .unwrap();
            let listener = {
                let (http, nacos) = (http.clone(), nacos.clone());
                let body = form(&[("Listening-Configs", &listening)]);
                tokio::spawn(async move {
                    let r = http
                        .post(format!("{nacos}/nacos/v1/cs/configs/listener"))
                        .header("Long-Pulling-Timeout", "30000")
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(body)
                        .send()
                        .await
                        .unwrap();
                    let text = r.text().await.unwrap();
                    assert!(
                        text.contains("bench.yaml"),
                        "woken for the change: {text:?}"
                    );
                    Instant::now()
                })
            };
            // Let the poll reach the server and wait there.
            tokio::time::sleep(Duration::from_millis(3)).await;
            let t = Instant::now();
            http.post(format!("{nacos}/nacos/v1/cs/configs"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form(&[
                    ("dataId", "bench.yaml"),
                    ("group", "DEFAULT_GROUP"),
                    ("content", &format!("changed: {i}\n")),
                ]))
                .send()
                .await
                .unwrap();
            woke_nacos.push(listener.await.unwrap().duration_since(t));

            // Consul KV: a blocking query on a key, woken by a PUT of it.
            let key = format!("{registry}/v1/kv/bench/key");
            let r = http.put(&key).body(format!("{i}")).send().await.unwrap();
            assert!(r.status().is_success());
            let index = http.get(&key).send().await.unwrap().headers()["x-consul-index"]
                .to_str()
                .unwrap()
                .to_string();
            let waiter = {
                let (http, key) = (http.clone(), key.clone());
                tokio::spawn(async move {
                    http.get(format!("{key}?index={index}&wait=30s"))
                        .send()
                        .await
                        .unwrap()
                        .bytes()
                        .await
                        .unwrap();
                    Instant::now()
                })
            };
            tokio::time::sleep(Duration::from_millis(3)).await;
            let t = Instant::now();
            http.put(&key)
                .body(format!("changed {i}"))
                .send()
                .await
                .unwrap();
            woke_consul.push(waiter.await.unwrap().duration_since(t));
        }
        summary("Nacos listener woken by a publish", woke_nacos);
        summary("Consul KV blocking query woken by a PUT", woke_consul);
        cluster.shutdown().await;
    });
}
