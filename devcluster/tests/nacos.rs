//! Nacos clients work unchanged: a client written here from Nacos's Open API documentation
//! (form parameters, the `hosts` answer, the beat JSON, `Listening-Configs` with its \x01 and
//! \x02 separators and MD5s) registers, lists, beats and deregisters on the embedded registry,
//! reads and publishes configs, and is woken by its listener — and what it registers is the
//! instance a Consul client sees and the gateway picks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{http, start};
use devcluster::cluster::Cluster;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The Nacos client: the endpoint and an HTTP client, nothing of lgo-dash's.
struct NacosClient {
    base: String,
    http: reqwest::Client,
}

impl NacosClient {
    fn of(cluster: &Cluster) -> NacosClient {
        let base = cluster
            .endpoints()
            .iter()
            .find(|e| e.name == "nacos")
            .expect("a nacos endpoint")
            .url
            .clone();
        NacosClient { base, http: http() }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        form: &[(&str, &str)],
    ) -> (u16, String) {
        let url = format!("{}/nacos/v1/{path}", self.base);
        let req = if method == reqwest::Method::GET || method == reqwest::Method::DELETE {
            let query = serde_urlencoded::to_string(form).unwrap();
            self.http.request(method, format!("{url}?{query}"))
        } else {
            // Form-encoded, as the SDKs send POST and PUT.
            let body = serde_urlencoded::to_string(form).unwrap();
            self.http
                .request(method, url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
        };
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn register(&self, form: &[(&str, &str)]) -> (u16, String) {
        self.send(reqwest::Method::POST, "ns/instance", form).await
    }

    async fn list(&self, service: &str, healthy_only: bool) -> Value {
        let (status, body) = self
            .send(
                reqwest::Method::GET,
                "ns/instance/list",
                &[
                    ("serviceName", service),
                    ("healthyOnly", &healthy_only.to_string()),
                ],
            )
            .await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    async fn beat(&self, service: &str, beat: &Value) -> Value {
        let (status, body) = self
            .send(
                reqwest::Method::PUT,
                "ns/instance/beat",
                &[("serviceName", service), ("beat", &beat.to_string())],
            )
            .await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    async fn get_config(&self, data_id: &str, group: &str) -> (u16, String) {
        self.send(
            reqwest::Method::GET,
            "cs/configs",
            &[("dataId", data_id), ("group", group)],
        )
        .await
    }

    async fn publish(&self, data_id: &str, group: &str, content: &str) -> (u16, String) {
        self.send(
            reqwest::Method::POST,
            "cs/configs",
            &[("dataId", data_id), ("group", group), ("content", content)],
        )
        .await
    }

    /// A long poll on `(dataId, group, md5)` entries; the changed entries, decoded.
    async fn listen(
        &self,
        entries: &[(&str, &str, &str)],
        timeout_ms: u64,
    ) -> Vec<(String, String)> {
        let listening: String = entries
            .iter()
            .map(|(d, g, m)| format!("{d}\u{2}{g}\u{2}{m}\u{1}"))
            .collect();
        let r = self
            .http
            .post(format!("{}/nacos/v1/cs/configs/listener", self.base))
            .header("Long-Pulling-Timeout", timeout_ms.to_string())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string([("Listening-Configs", listening)]).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        let decoded: Vec<(String, String)> =
            serde_urlencoded::from_str(&format!("x={text}")).unwrap();
        decoded[0]
            .1
            .split('\u{1}')
            .filter(|e| !e.is_empty())
            .map(|e| {
                let mut f = e.split('\u{2}');
                (f.next().unwrap().to_string(), f.next().unwrap().to_string())
            })
            .collect()
    }
}

fn md5_of(text: &str) -> String {
    use md5::Digest;
    md5::Md5::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn until(what: &str, limit: Duration, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_registers_lists_beats_expires_and_deregisters() {
    let cluster = start().await;
    let nacos = NacosClient::of(&cluster);

    // Register: Nacos answers "ok"; a missing parameter is said the way Nacos says it.
    let (status, body) = nacos
        .register(&[
            ("serviceName", "payments"),
            ("ip", "127.0.0.1"),
            ("port", "9001"),
            ("weight", "2.5"),
            ("metadata", r#"{"zone":"eu-1"}"#),
        ])
        .await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    let (status, body) = nacos
        .register(&[("serviceName", "payments"), ("port", "1")])
        .await;
    assert_eq!(status, 400);
    assert!(body.contains("'ip'"), "{body}");

    let list = nacos.list("payments", true).await;
    assert_eq!(list["name"], "DEFAULT_GROUP@@payments");
    let hosts = list["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 1, "{list}");
    let h = &hosts[0];
    assert_eq!(
        h["instanceId"],
        "127.0.0.1#9001#DEFAULT#DEFAULT_GROUP@@payments"
    );
    assert_eq!(
        (h["ip"].as_str(), h["port"].as_u64()),
        (Some("127.0.0.1"), Some(9001))
    );
    assert_eq!(h["weight"], 2.5);
    assert_eq!(
        (h["healthy"].as_bool(), h["enabled"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(h["metadata"], json!({"zone": "eu-1"}));

    // A disabled instance stays listed, out of healthyOnly and out of every balancer.
    let (status, _) = nacos
        .send(
            reqwest::Method::PUT,
            "ns/instance",
            &[
                ("serviceName", "payments"),
                ("ip", "127.0.0.1"),
                ("port", "9001"),
                ("enabled", "false"),
            ],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(nacos.list("payments", true).await["hosts"], json!([]));
    assert_eq!(
        nacos.list("payments", false).await["hosts"][0]["enabled"],
        false
    );
    assert!(
        cluster.registry().service("payments", true).is_empty(),
        "not passing for Consul"
    );
    // The update changed only what it said: the weight and metadata are as registered.
    let h = &nacos.list("payments", false).await["hosts"][0];
    assert_eq!(
        (&h["weight"], &h["metadata"]),
        (&json!(2.5), &json!({"zone": "eu-1"}))
    );

    // An ephemeral instance that stops beating: unhealthy after its heart-beat timeout, gone
    // after its delete timeout (Nacos's own metadata keys, shortened for the test).
    let beat = json!({
        "ip": "127.0.0.1", "port": 9002, "cluster": "DEFAULT", "serviceName": "DEFAULT_GROUP@@payments",
        "weight": 1.0, "scheduled": true, "period": 500,
        "metadata": {"preserved.heart.beat.timeout": "1000", "preserved.ip.delete.timeout": "2500"},
    });
    // The first beat of an instance the registry does not know registers it, as Nacos does.
    let answer = nacos.beat("payments", &beat).await;
    assert_eq!(answer["code"], 10200, "{answer}");
    assert!(answer["clientBeatInterval"].as_u64().unwrap() > 0);
    // Whether the beating instance is in the list (of healthy ones only, or all).
    let in_list = async |n: &NacosClient, healthy_only: bool| {
        n.list("payments", healthy_only).await["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["port"] == 9002)
    };
    let healthy = async |n: &NacosClient| in_list(n, true).await;
    assert!(healthy(&nacos).await, "registered by its beat");
    // Beats keep it healthy past its timeout.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(nacos.beat("payments", &beat).await["code"], 10200);
    }
    assert!(healthy(&nacos).await, "kept healthy by its beats");
    let stopped = Instant::now();
    until("it turns unhealthy", Duration::from_secs(5), async || {
        !healthy(&nacos).await
    })
    .await;
    assert!(
        stopped.elapsed() >= Duration::from_millis(800),
        "not before its timeout"
    );
    let listed = async |n: &NacosClient| in_list(n, false).await;
    assert!(listed(&nacos).await, "unhealthy, still listed");
    until("it is removed", Duration::from_secs(8), async || {
        !listed(&nacos).await
    })
    .await;
    assert!(
        stopped.elapsed() >= Duration::from_millis(2000),
        "not before its delete timeout"
    );

    // Deregister: gone for Nacos and for Consul.
    let (status, body) = nacos
        .send(
            reqwest::Method::DELETE,
            "ns/instance",
            &[
                ("serviceName", "payments"),
                ("ip", "127.0.0.1"),
                ("port", "9001"),
            ],
        )
        .await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    assert_eq!(nacos.list("payments", false).await["hosts"], json!([]));
    assert!(cluster.registry().service("payments", false).is_empty());
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nacos_instance_is_found_through_consul_and_picked_by_the_gateway() {
    let cluster = start().await;
    let nacos = NacosClient::of(&cluster);
    // A user-service instance of a developer's own, registered through Nacos: it answers the
    // gateway's rewritten path with a body that says who it is.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().route(
        "/users/{id}",
        axum::routing::get(|| async { axum::Json(json!({"id": 1, "name": "from nacos"})) }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let (status, _) = nacos
        .register(&[
            ("serviceName", "user-service"),
            ("ip", "127.0.0.1"),
            ("port", &port.to_string()),
        ])
        .await;
    assert_eq!(status, 200);

    // Consul's health endpoint lists it among the passing instances.
    let passing: Value = http()
        .get(format!(
            "{}/v1/health/service/user-service?passing",
            cluster.registry_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        passing
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["Service"]["Port"] == port && e["Service"]["Tags"] == json!(["nacos"])),
        "{passing:#}"
    );
    // And the Services view says which API it came through.
    let v = cluster
        .registry()
        .service("user-service", true)
        .into_iter()
        .find(|v| v.port == port)
        .unwrap();
    assert_eq!(v.via, "nacos");

    // The gateway balances over it with the sample instances.
    let mut picked = false;
    for _ in 0..40 {
        let r = http()
            .get(format!("{}/api/users/1", cluster.gateway_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        if r.json::<Value>().await.unwrap()["name"] == "from nacos" {
            picked = true;
            break;
        }
    }
    assert!(picked, "the gateway sent a request to the Nacos instance");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configs_publish_read_wake_listeners_and_refuse_what_the_cluster_cannot_take() {
    let cluster = start().await;
    let nacos = NacosClient::of(&cluster);

    // Plain content in any group: stored, read back with its MD5; an unknown one is a 404.
    assert_eq!(nacos.get_config("app.yaml", "DEFAULT_GROUP").await.0, 404);
    assert_eq!(
        nacos
            .publish("app.yaml", "DEFAULT_GROUP", "timeout: 1s\n")
            .await,
        (200, "true".into())
    );
    let (status, content) = nacos.get_config("app.yaml", "DEFAULT_GROUP").await;
    assert_eq!((status, content.as_str()), (200, "timeout: 1s\n"));

    // A listener holding the current MD5 waits; a publish wakes it within 100 ms.
    let md5 = md5_of(&content);
    let waiting = {
        let nacos = NacosClient {
            base: nacos.base.clone(),
            http: http(),
        };
        let md5 = md5.clone();
        tokio::spawn(async move {
            let changed = nacos
                .listen(&[("app.yaml", "DEFAULT_GROUP", &md5)], 10_000)
                .await;
            (Instant::now(), changed)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "the listener waits while nothing changed"
    );
    let published = Instant::now();
    nacos
        .publish("app.yaml", "DEFAULT_GROUP", "timeout: 2s\n")
        .await;
    let (woke, changed) = waiting.await.unwrap();
    assert_eq!(
        changed,
        vec![("app.yaml".to_string(), "DEFAULT_GROUP".to_string())]
    );
    let after = woke.duration_since(published);
    assert!(
        after < Duration::from_millis(100),
        "woken {after:?} after the publish"
    );
    // A stale MD5 is answered at once.
    let changed = nacos
        .listen(&[("app.yaml", "DEFAULT_GROUP", &md5)], 10_000)
        .await;
    assert_eq!(changed.len(), 1);

    // Group LGO is the live config: read as properties, published through the same checks.
    let (status, live) = nacos.get_config("lgo.properties", "LGO").await;
    assert_eq!(status, 200);
    assert!(live.lines().any(|l| l == "traffic.rps=20"), "{live}");
    let (status, body) = nacos
        .publish("lgo.properties", "LGO", "traffic.rps=40000\n")
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("traffic.rps = 40000: expected 0 to 10000"),
        "{body}"
    );
    assert_eq!(
        cluster.config().config().traffic.rps,
        20,
        "the refused publish changed nothing"
    );
    // A listener on the live config wakes when any way in changes it.
    let live_md5 = md5_of(&live);
    let waiting = {
        let nacos = NacosClient {
            base: nacos.base.clone(),
            http: http(),
        };
        tokio::spawn(async move {
            nacos
                .listen(&[("lgo.properties", "LGO", &live_md5)], 10_000)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, _) = nacos
        .publish(
            "lgo.properties",
            "LGO",
            "traffic.rps=40\nbalancer.user-service.strategy=p2c\n",
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        waiting.await.unwrap(),
        vec![("lgo.properties".to_string(), "LGO".to_string())]
    );
    let cfg = cluster.config().config();
    assert_eq!(cfg.traffic.rps, 40);
    assert_eq!(cfg.strategies()["user-service"].to_string(), "p2c");
    assert_eq!(cluster.config().get("traffic.rps").unwrap().origin, "kv");
    // Publishing back what was read changes nothing.
    let version = cluster.config().version();
    let (_, now) = nacos.get_config("lgo.toml", "LGO").await;
    assert_eq!(nacos.publish("lgo.toml", "LGO", &now).await.0, 200);
    assert_eq!(cluster.config().version(), version);
    cluster.shutdown().await;
}

#[tokio::test]
async fn v2_answers_in_its_envelope() {
    let cluster = start().await;
    let nacos = NacosClient::of(&cluster);
    let c = http();
    let r: Value = c
        .post(format!("{}/nacos/v2/ns/instance", nacos.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("serviceName=billing&ip=127.0.0.1&port=7001")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r, json!({"code": 0, "message": "success", "data": "ok"}));
    // The probes clients use to tell whether the server is up.
    let m: Value = c
        .get(format!("{}/nacos/v1/ns/operator/metrics", nacos.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(m["status"], "UP");
    assert!(m["instanceCount"].as_u64().unwrap() >= 1);
    let live = c
        .get(format!("{}/nacos/v1/console/health/liveness", nacos.base))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    let r: Value = c
        .get(format!(
            "{}/nacos/v2/ns/instance/list?serviceName=billing",
            nacos.base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["code"], 0);
    assert_eq!(r["data"]["hosts"][0]["port"], 7001);
    let r = c
        .get(format!(
            "{}/nacos/v2/cs/config?dataId=nope&group=G",
            nacos.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["code"].as_i64(), v["data"].is_null()),
        (Some(20004), true)
    );
    cluster.shutdown().await;
}

/// An update changes an instance that is registered and never makes one: an unknown instance
/// is an error, as with Nacos. nacos-sdk-python 0.1.17 registers with `clusterName=None` (the
/// text) and modifies without a cluster: that is the same instance, not a second one.
#[tokio::test]
async fn an_update_changes_a_registered_instance_and_refuses_an_unknown_one() {
    let cluster = start().await;
    let nacos = NacosClient::of(&cluster);
    let update = |form: Vec<(&'static str, &'static str)>| {
        let nacos = &nacos;
        async move { nacos.send(reqwest::Method::PUT, "ns/instance", &form).await }
    };

    let (status, body) = update(vec![
        ("serviceName", "ledger"),
        ("ip", "127.0.0.1"),
        ("port", "7100"),
        ("weight", "3"),
    ])
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("instance not exist"), "{body}");
    assert!(
        nacos.list("ledger", false).await["hosts"] == json!([]),
        "nothing made"
    );
    // v2 says the same in its envelope.
    let r = http()
        .put(format!("{}/nacos/v2/ns/instance", nacos.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("serviceName=ledger&ip=127.0.0.1&port=7100&weight=3")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("instance not exist"),
        "{v}"
    );
    assert!(nacos.list("ledger", false).await["hosts"] == json!([]));

    // As the Python SDK does it: add with clusterName=None, modify without one.
    let (status, body) = nacos
        .register(&[
            ("serviceName", "ledger"),
            ("ip", "127.0.0.1"),
            ("port", "7100"),
            ("clusterName", "None"),
            ("metadata", r#"{"zone":"eu-2"}"#),
        ])
        .await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    let (status, body) = update(vec![
        ("serviceName", "ledger"),
        ("ip", "127.0.0.1"),
        ("port", "7100"),
        ("weight", "3"),
    ])
    .await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    let hosts = nacos.list("ledger", false).await["hosts"].clone();
    let hosts = hosts.as_array().unwrap();
    assert_eq!(hosts.len(), 1, "one instance, not two: {hosts:?}");
    assert_eq!(hosts[0]["weight"], 3.0);
    assert_eq!(hosts[0]["clusterName"], "None");
    assert_eq!(hosts[0]["metadata"], json!({"zone": "eu-2"}), "kept");
    assert_eq!(cluster.registry().service("ledger", false).len(), 1);

    // Another cluster named outright is another instance, which does not exist.
    let (status, body) = update(vec![
        ("serviceName", "ledger"),
        ("ip", "127.0.0.1"),
        ("port", "7100"),
        ("clusterName", "east"),
    ])
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("instance not exist"), "{body}");
    cluster.shutdown().await;
}
