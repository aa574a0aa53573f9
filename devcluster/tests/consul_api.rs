//! The registry's Consul API over real loopback sockets, with the request shapes real clients
//! send (Go/Spring PascalCase, py-consul lowercase, python-consul `check`) and Consul's answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use devcluster::config::kv::KvStore;
use devcluster::registry::{Registry, consul};
use devcluster::server::HttpServer;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

struct Api {
    base: String,
    http: reqwest::Client,
    _server: HttpServer,
    _registry: Registry,
}

async fn start() -> Api {
    let registry = Registry::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = HttpServer::start(
        "registry",
        listener,
        consul::router(registry.clone(), KvStore::new()),
    )
    .unwrap();
    Api {
        base: server.url(),
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        _server: server,
        _registry: registry,
    }
}

impl Api {
    async fn put(&self, path: &str, body: impl Into<reqwest::Body>) -> (StatusCode, String) {
        let r = self
            .http
            .put(format!("{}{path}", self.base))
            .body(body)
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    }

    async fn get(&self, path: &str) -> (StatusCode, Option<u64>, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let index = r
            .headers()
            .get("X-Consul-Index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let text = r.text().await.unwrap();
        (
            status,
            index,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn delete(&self, path: &str) -> (StatusCode, String) {
        let r = self
            .http
            .delete(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    }

    /// A read started now in the background (a blocking query): how long it took, the index
    /// it answered and its body.
    fn get_in_background(&self, path: String) -> tokio::task::JoinHandle<(Duration, u64, Value)> {
        let (http, url) = (self.http.clone(), format!("{}{path}", self.base));
        tokio::spawn(async move {
            let started = Instant::now();
            let r = http.get(url).send().await.unwrap();
            let idx: u64 = r.headers()["X-Consul-Index"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            let body: Value = r.json().await.unwrap();
            (started.elapsed(), idx, body)
        })
    }

    async fn health_of(&self, service: &str, id: &str) -> Option<String> {
        let (_, _, v) = self.get(&format!("/v1/health/service/{service}")).await;
        v.as_array()?
            .iter()
            .find(|e| e["Service"]["ID"] == id)
            .map(|e| {
                e["Checks"][0]["Status"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
    }
}

/// Polls `f` until it holds or `limit` passes; returns whether it held.
async fn eventually<F, Fut>(limit: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn go_client_registration_reads_back_with_consul_field_names() {
    let api = start().await;
    let body = json!({
        "ID": "pay-1", "Name": "payments", "Address": "127.0.0.1", "Port": 7001,
        "Tags": ["primary", "v1"], "Meta": {"version": "2.1.0", "weight": "3"},
        "Check": {"TTL": "30s", "DeregisterCriticalServiceAfter": "90m"}
    });
    let (status, text) = api
        .put("/v1/agent/service/register", body.to_string())
        .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(text, "", "Consul answers writes with an empty body");

    let (_, _, agent) = api.get("/v1/agent/services").await;
    let s = &agent["pay-1"];
    assert_eq!(s["ID"], "pay-1");
    assert_eq!(s["Service"], "payments");
    assert_eq!(s["Port"], 7001);
    assert_eq!(s["Tags"], json!(["primary", "v1"]));
    assert_eq!(s["Meta"]["version"], "2.1.0");
    assert_eq!(s["Weights"]["Passing"], 3);

    let (status, index, catalog) = api.get("/v1/catalog/service/payments").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        index.is_some_and(|i| i >= 1),
        "X-Consul-Index on every read"
    );
    let c = &catalog[0];
    assert_eq!(c["ServiceID"], "pay-1");
    assert_eq!(c["ServiceName"], "payments");
    assert_eq!(c["ServicePort"], 7001);
    assert_eq!(c["ServiceAddress"], "127.0.0.1");
    assert_eq!(c["ServiceTags"], json!(["primary", "v1"]));
    assert_eq!(c["Node"], "lgo-dash");

    let (_, _, services) = api.get("/v1/catalog/services").await;
    assert_eq!(services["payments"], json!(["primary", "v1"]));

    // TTL checks start critical, as in Consul: not in ?passing until the service says so.
    let (_, _, health) = api.get("/v1/health/service/payments").await;
    let e = &health[0];
    assert_eq!(e["Node"]["Node"], "lgo-dash");
    assert_eq!(e["Service"]["ID"], "pay-1");
    assert_eq!(e["Service"]["Service"], "payments");
    assert_eq!(e["Checks"][0]["CheckID"], "service:pay-1");
    assert_eq!(e["Checks"][0]["Status"], "critical");
    assert_eq!(e["Checks"][0]["Type"], "ttl");
    let (_, _, passing) = api.get("/v1/health/service/payments?passing").await;
    assert_eq!(passing, json!([]));

    // Spring Cloud Consul's heartbeat.
    let (status, _) = api
        .put("/v1/agent/check/pass/service:pay-1?note=alive", "")
        .await;
    assert_eq!(status, StatusCode::OK);
    for flag in ["?passing", "?passing=1", "?passing=true", "?passing=t"] {
        let (_, _, passing) = api.get(&format!("/v1/health/service/payments{flag}")).await;
        assert_eq!(passing[0]["Service"]["ID"], "pay-1", "{flag}");
        assert_eq!(passing[0]["Checks"][0]["Output"], "alive");
    }
    let (status, _, _) = api.get("/v1/health/service/payments?passing=maybe").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // A warning is not passing.
    api.put("/v1/agent/check/warn/service:pay-1", "").await;
    let (_, _, passing) = api.get("/v1/health/service/payments?passing=1").await;
    assert_eq!(passing, json!([]));
    let (_, _, all) = api.get("/v1/health/service/payments?passing=false").await;
    assert_eq!(all[0]["Checks"][0]["Status"], "warning");

    // Unknown services are an empty list, not a 404.
    let (status, index, none) = api.get("/v1/health/service/nope").await;
    assert_eq!((status, none), (StatusCode::OK, json!([])));
    assert!(index.is_some());

    let (status, _) = api.put("/v1/agent/service/deregister/pay-1", "").await;
    assert_eq!(status, StatusCode::OK);
    let (_, _, services) = api.get("/v1/catalog/services").await;
    assert!(services.get("payments").is_none());
}

#[tokio::test]
async fn python_clients_lowercase_keys_and_check_lists_are_understood() {
    let api = start().await;
    // py-consul 1.8: lowercase keys, always a `checks` list.
    let py = json!({"name": "search", "id": "search-1", "address": "127.0.0.1", "port": 7100,
        "tags": ["py"], "checks": [{"ttl": "10s", "DeregisterCriticalServiceAfter": "1m"},
                                    {"ttl": "20s", "status": "passing"}]});
    let (status, text) = api.put("/v1/agent/service/register", py.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    // python-consul 1.1: lowercase `check` singular.
    let legacy = json!({"name": "search", "id": "search-2", "port": 7101, "check": {"ttl": "10s"}});
    let (status, text) = api
        .put("/v1/agent/service/register", legacy.to_string())
        .await;
    assert_eq!(status, StatusCode::OK, "{text}");

    let (_, _, health) = api.get("/v1/health/service/search").await;
    let ids: Vec<Vec<&str>> = health
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["Checks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["CheckID"].as_str().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(
        ids,
        vec![
            vec!["service:search-1:1", "service:search-1:2"],
            vec!["service:search-2"]
        ]
    );
    // No Address: the node's address, so clients can still reach it.
    assert_eq!(health[1]["Service"]["Address"], "127.0.0.1");
    // An initial Status is honoured per check.
    assert_eq!(health[0]["Checks"][1]["Status"], "passing");
}

#[tokio::test]
async fn ttl_check_expires_to_critical_and_recovers_on_pass() {
    let api = start().await;
    let body = json!({"Name": "worker", "ID": "worker-1", "Port": 1, "Check": {"CheckID": "hb", "TTL": "400ms"}});
    api.put("/v1/agent/service/register", body.to_string())
        .await;
    api.put("/v1/agent/check/pass/hb", "").await;
    assert_eq!(
        api.health_of("worker", "worker-1").await.as_deref(),
        Some("passing")
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            api.health_of("worker", "worker-1").await.as_deref() == Some("critical")
        })
        .await,
        "a TTL check without heartbeat must turn critical"
    );
    let (_, _, h) = api.get("/v1/health/service/worker").await;
    assert_eq!(h[0]["Checks"][0]["Output"], "TTL expired");
    // Check update with a JSON body (newer Go clients' UpdateTTL).
    let (status, _) = api
        .put(
            "/v1/agent/check/update/hb",
            r#"{"Status":"passing","Output":"back"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        api.health_of("worker", "worker-1").await.as_deref(),
        Some("passing")
    );
}

#[tokio::test]
async fn deregister_critical_service_after_removes_the_instance() {
    let api = start().await;
    let body = json!({"Name": "flaky", "ID": "flaky-1", "Port": 1,
        "Check": {"TTL": "200ms", "DeregisterCriticalServiceAfter": "300ms"}});
    api.put("/v1/agent/service/register", body.to_string())
        .await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            api.get("/v1/catalog/service/flaky").await.2 == json!([])
        })
        .await,
        "an instance critical for longer than DeregisterCriticalServiceAfter must be removed"
    );
}

#[tokio::test]
async fn blocking_query_returns_early_on_change_and_holds_otherwise() {
    let api = start().await;
    let (_, index, _) = api.get("/v1/catalog/services").await;
    let index = index.unwrap();

    // No change: held for `wait`, then answered with the same index.
    let started = Instant::now();
    let (_, same, _) = api
        .get(&format!("/v1/catalog/services?index={index}&wait=300ms"))
        .await;
    assert_eq!(same, Some(index));
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "the query must block until wait"
    );

    // A change wakes it long before its 30 s wait.
    let waiter = api.get_in_background(format!("/v1/health/service/late?index={index}&wait=30s"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The query reached the server and blocks there: a waiter that had already returned would
    // make what follows prove nothing.
    assert!(
        !waiter.is_finished(),
        "the blocking query returned before the change"
    );
    api.put(
        "/v1/agent/service/register",
        r#"{"Name":"late","ID":"late-1","Port":9}"#,
    )
    .await;
    let (elapsed, new_index, body) = waiter.await.unwrap();
    assert!(new_index > index);
    assert_eq!(body[0]["Service"]["ID"], "late-1");
    assert!(
        elapsed < Duration::from_secs(20),
        "returned after {elapsed:?}, not on the change"
    );
}

#[tokio::test]
async fn malformed_requests_get_400_with_a_reason_and_change_nothing() {
    let api = start().await;
    let cases = [
        ("{not json", "Request decode failed"),
        ("", "empty body"),
        (r#"{"Port": 80}"#, "Missing service name"),
        (r#"{"Name": "x", "Port": "eighty"}"#, "Port"),
        (r#"{"Name": "x", "Tags": "a,b"}"#, "Tags"),
        (
            r#"{"Name": "x", "Check": {"HTTP": "http://127.0.0.1:1/", "Interval": "often"}}"#,
            "Interval",
        ),
        (
            r#"{"Name": "x", "Check": {"HTTP": "http://127.0.0.1:1/"}}"#,
            "Interval",
        ),
        (
            r#"{"Name": "x", "Check": {"TCP": "127.0.0.1", "Interval": "1s"}}"#,
            "TCP",
        ),
        (
            r#"{"Name": "x", "Check": {"H2PING": "127.0.0.1:1", "Interval": "1s"}}"#,
            "H2PING",
        ),
    ];
    for (body, want) in cases {
        let r = api
            .http
            .put(format!("{}/v1/agent/service/register", api.base))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
        let v: Value = r.json().await.unwrap();
        let msg = v["error"].as_str().unwrap_or_default();
        assert!(msg.contains(want), "{body} → {msg:?} should mention {want}");
    }
    let (_, _, services) = api.get("/v1/catalog/services").await;
    assert_eq!(services, json!({}), "nothing was registered");

    let (status, text) = api.put("/v1/agent/service/deregister/ghost", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{text}");
    let (status, _) = api.put("/v1/agent/check/pass/ghost", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api.put("/v1/agent/check/update/ghost", "{oops").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = api.get("/v1/catalog/services?index=abc").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // pass on an HTTP check: Consul's 500 "does not have associated TTL" (Spring re-registers on it).
    let http = json!({"Name": "web", "ID": "web-1", "Port": 1,
        "Check": {"CheckID": "web-http", "HTTP": "http://127.0.0.1:1/health", "Interval": "10s"}});
    api.put("/v1/agent/service/register", http.to_string())
        .await;
    let (status, text) = api.put("/v1/agent/check/pass/web-http", "").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(text.contains("does not have associated TTL"), "{text}");
}

// The KV store (the config center's, on the registry port), as Consul's KV API.

#[tokio::test]
async fn kv_values_read_back_in_consul_shape_raw_and_by_percent_encoded_keys() {
    let api = start().await;
    assert_eq!(
        api.put("/v1/kv/lgo/traffic/rps", "40").await,
        (StatusCode::OK, "true".into())
    );
    let (status, index, v) = api.get("/v1/kv/lgo/traffic/rps").await;
    assert_eq!(status, StatusCode::OK);
    let e = &v[0];
    assert_eq!(e["Key"], "lgo/traffic/rps");
    assert_eq!(e["Value"], "NDA=", "standard base64 of the bytes");
    assert_eq!(
        (e["Flags"].as_u64(), e["LockIndex"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(
        index,
        e["ModifyIndex"].as_u64(),
        "a key's index is its ModifyIndex"
    );
    assert_eq!(e["CreateIndex"], e["ModifyIndex"]);

    let r = api
        .http
        .get(format!("{}/v1/kv/lgo/traffic/rps?raw", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/plain");
    assert_eq!(r.text().await.unwrap(), "40");

    // py-consul quotes the path: the key is the decoded one.
    api.put("/v1/kv/lgo/breaker/gateway-%3Euser-service/window", "10")
        .await;
    let (_, _, v) = api
        .get("/v1/kv/lgo/breaker/gateway->user-service/window")
        .await;
    assert_eq!(v[0]["Key"], "lgo/breaker/gateway->user-service/window");

    // An empty value is null, as Consul stores it.
    api.put("/v1/kv/empty", "").await;
    assert_eq!(api.get("/v1/kv/empty").await.2[0]["Value"], Value::Null);

    // Missing: 404 with an empty body, still indexed so a client can block on its creation.
    let (status, index, body) = api.get("/v1/kv/nothing/here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(index.is_some_and(|i| i >= 1), "X-Consul-Index on 404");
    assert_eq!(body, Value::String(String::new()));
}

#[tokio::test]
async fn kv_prefixes_keys_check_and_set_and_deletes() {
    let api = start().await;
    for (k, v) in [
        ("app/a", "1"),
        ("app/b/c", "2"),
        ("app/b/d", "3"),
        ("apple", "4"),
    ] {
        api.put(&format!("/v1/kv/{k}"), v).await;
    }
    let keys = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| e["Key"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, _, v) = api.get("/v1/kv/app?recurse").await;
    assert_eq!(
        keys(&v),
        ["app/a", "app/b/c", "app/b/d", "apple"],
        "string prefix"
    );
    let (_, _, v) = api.get("/v1/kv/app/?keys&separator=/").await;
    assert_eq!(v, json!(["app/a", "app/b/"]));
    assert_eq!(api.get("/v1/kv/zzz?recurse").await.0, StatusCode::NOT_FOUND);

    // cas=0 creates only; a stale index does not write.
    assert_eq!(api.put("/v1/kv/app/a?cas=0", "x").await.1, "false");
    let (_, index, _) = api.get("/v1/kv/app/a").await;
    assert_eq!(api.put("/v1/kv/app/a?cas=1", "x").await.1, "false");
    assert_eq!(
        api.put(&format!("/v1/kv/app/a?cas={}", index.unwrap()), "y")
            .await
            .1,
        "true"
    );
    assert_eq!(api.get("/v1/kv/app/a?raw").await.2, json!("y"));

    assert_eq!(api.delete("/v1/kv/app/b?recurse").await.1, "true");
    let (_, _, v) = api.get("/v1/kv/app?recurse").await;
    assert_eq!(keys(&v), ["app/a", "apple"]);
    assert_eq!(
        api.delete("/v1/kv/never-was").await.1,
        "true",
        "deleting a missing key is fine"
    );
}

#[tokio::test]
async fn kv_blocking_read_returns_on_a_change_to_its_key_not_to_others() {
    let api = start().await;
    api.put("/v1/kv/lgo/traffic/rps", "20").await;
    let (_, index, _) = api.get("/v1/kv/lgo/traffic/rps").await;
    let index = index.unwrap();

    // A write elsewhere does not answer it: held for its whole wait, same index.
    let started = Instant::now();
    let other = api.put("/v1/kv/lgo/other", "1");
    let path = format!("/v1/kv/lgo/traffic/rps?index={index}&wait=400ms");
    let held = api.get(&path);
    let (_, (_, same, _)) = tokio::join!(other, held);
    assert_eq!(same, Some(index));
    assert!(started.elapsed() >= Duration::from_millis(350));

    // A write to the key wakes it long before its 30 s wait, with the new value.
    let base = api.base.clone();
    let waiter = tokio::spawn(async move {
        let started = Instant::now();
        let r = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!(
                "{base}/v1/kv/lgo/traffic/rps?index={index}&wait=30s"
            ))
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        (started.elapsed(), v)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The query reached the server and blocks there: a waiter that had already returned would
    // make what follows prove nothing.
    assert!(
        !waiter.is_finished(),
        "the blocking query returned before the change"
    );
    api.put("/v1/kv/lgo/traffic/rps", "60").await;
    let (elapsed, v) = waiter.await.unwrap();
    assert_eq!(v[0]["Value"], "NjA=");
    assert!(v[0]["ModifyIndex"].as_u64().unwrap() > index);
    assert!(
        elapsed < Duration::from_secs(20),
        "returned after {elapsed:?}"
    );

    // A prefix watcher wakes on a delete under it.
    let (_, pindex, _) = api.get("/v1/kv/lgo/?recurse").await;
    let pindex = pindex.unwrap();
    let base = api.base.clone();
    let waiter = tokio::spawn(async move {
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!("{base}/v1/kv/lgo/?recurse&index={pindex}&wait=30s"))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The query reached the server and blocks there: a waiter that had already returned would
    // make what follows prove nothing.
    assert!(
        !waiter.is_finished(),
        "the blocking query returned before the change"
    );
    api.delete("/v1/kv/lgo/other").await;
    let v = tokio::time::timeout(Duration::from_secs(20), waiter)
        .await
        .expect("woken by the delete")
        .unwrap();
    assert_eq!(
        v.as_array().unwrap().len(),
        1,
        "only lgo/traffic/rps left: {v}"
    );
}

#[tokio::test]
async fn kv_bad_requests_are_refused_with_a_reason() {
    let api = start().await;
    let (status, body) = api.put("/v1/kv/a?flags=many", "x").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.contains("flags: expected a non-negative integer"),
        "{body}"
    );
    let (status, body) = api.put("/v1/kv/a?acquire=s1", "x").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("not supported"), "{body}");
    let (status, _) = api.put("/v1/kv/", "x").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = api.put("/v1/kv/big", vec![b'x'; 600 * 1024]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(body.contains("limit"), "{body}");
    let (status, _, v) = api.get("/v1/kv/a?index=soon").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(v["error"].as_str().unwrap().contains("index"), "{v}");
    assert_eq!(
        api.get("/v1/kv/a").await.0,
        StatusCode::NOT_FOUND,
        "nothing was written"
    );
}

/// A service registered with two TTL checks, both passed.
async fn two_passing_checks(api: &Api) {
    let (s, _) = api
        .put(
            "/v1/agent/service/register",
            r#"{"Name":"rc","ID":"rc-1","Port":7,"Checks":[{"CheckID":"c1","TTL":"60s"},{"CheckID":"c2","TTL":"60s"}]}"#,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    for c in ["c1", "c2"] {
        assert_eq!(
            api.put(&format!("/v1/agent/check/pass/{c}"), "").await.0,
            StatusCode::OK
        );
    }
}

async fn check_status(api: &Api, id: &str) -> Option<String> {
    let (_, _, checks) = api.get("/v1/agent/checks").await;
    checks[id]["Status"].as_str().map(str::to_string)
}

/// A client that re-registers on restart (Spring does) keeps its checks' status, as with a
/// Consul agent: the instance stays in `?passing`. Checks it no longer names stay unless it
/// asks `?replace-existing-checks`.
#[tokio::test]
async fn a_re_registration_keeps_the_status_of_its_checks() {
    let api = start().await;
    two_passing_checks(&api).await;
    let again = r#"{"Name":"rc","ID":"rc-1","Port":7,"Checks":[{"CheckID":"c1","TTL":"60s"}]}"#;
    api.put("/v1/agent/service/register", again).await;
    assert_eq!(check_status(&api, "c1").await.as_deref(), Some("passing"));
    assert_eq!(check_status(&api, "c2").await.as_deref(), Some("passing"));
    let (_, _, passing) = api.get("/v1/health/service/rc?passing").await;
    assert_eq!(passing.as_array().map(Vec::len), Some(1), "{passing}");

    api.put("/v1/agent/service/register?replace-existing-checks", again)
        .await;
    assert_eq!(check_status(&api, "c1").await.as_deref(), Some("passing"));
    assert_eq!(check_status(&api, "c2").await, None, "replaced");
}

#[tokio::test]
async fn enable_tag_override_is_kept_and_a_zero_weight_refused() {
    let api = start().await;
    for (id, body) in [
        ("e-1", r#"{"Name":"e","ID":"e-1","EnableTagOverride":true}"#),
        (
            "e-2",
            r#"{"name":"e","id":"e-2","enable_tag_override":true}"#,
        ),
    ] {
        assert_eq!(
            api.put("/v1/agent/service/register", body).await.0,
            StatusCode::OK
        );
        let (_, _, services) = api.get("/v1/agent/services").await;
        assert_eq!(services[id]["EnableTagOverride"], true, "{services}");
    }
    let (_, _, catalog) = api.get("/v1/catalog/service/e").await;
    assert_eq!(catalog[0]["ServiceEnableTagOverride"], true, "{catalog}");

    let (s, body) = api
        .put(
            "/v1/agent/service/register",
            r#"{"Name":"w","Weights":{"Passing":0,"Warning":1}}"#,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body.contains("Passing"), "{body}");
    assert!(api.get("/v1/agent/service/w").await.0 == StatusCode::NOT_FOUND);
}

async fn ids(api: &Api, path: &str) -> (StatusCode, Vec<String>) {
    let (s, _, v) = api.get(path).await;
    let ids = v
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    e["Service"]["ID"]
                        .as_str()
                        .or(e["ServiceID"].as_str())
                        .unwrap_or_default()
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default();
    (s, ids)
}

/// `?tag=` (each required, any case), `?node-meta=` and `?filter=` narrow a read as they do on
/// a Consul agent; a filter that cannot be read is a 400, never ignored.
#[tokio::test]
async fn tags_node_meta_and_filters_narrow_what_a_read_returns() {
    let api = start().await;
    for body in [
        r#"{"Name":"f","ID":"f-1","Port":9001,"Tags":["grpc","v1"],"Meta":{"zone":"a"}}"#,
        r#"{"Name":"f","ID":"f-2","Port":9002,"Tags":["http"],"Check":{"TTL":"60s"}}"#,
    ] {
        api.put("/v1/agent/service/register", body).await;
    }
    let cases: [(&str, &[&str]); 12] = [
        ("/v1/health/service/f", &["f-1", "f-2"]),
        ("/v1/health/service/f?tag=GRPC", &["f-1"]),
        ("/v1/catalog/service/f?tag=grpc&tag=V1", &["f-1"]),
        ("/v1/health/service/f?tag=grpc&tag=http", &[]),
        ("/v1/health/service/f?node-meta=rack:r1", &[]),
        (
            "/v1/health/service/f?filter=Service.Port%20%3D%3D%209002",
            &["f-2"],
        ),
        (
            "/v1/catalog/service/f?filter=ServicePort%20%3D%3D%209001",
            &["f-1"],
        ),
        (
            "/v1/health/service/f?filter=%22v1%22%20in%20Service.Tags",
            &["f-1"],
        ),
        (
            "/v1/health/service/f?filter=Checks.Status%20%3D%3D%20critical",
            &["f-2"],
        ),
        (
            "/v1/health/service/f?filter=Service.Meta.zone%20%3D%3D%20a%20or%20Service.Port%20%3D%3D%209002",
            &["f-1", "f-2"],
        ),
        (
            "/v1/health/service/f?filter=Service.Meta.zone%20is%20empty",
            &["f-2"],
        ),
        (
            "/v1/health/checks/f?filter=Status%20%3D%3D%20critical",
            &["f-2"],
        ),
    ];
    for (path, want) in cases {
        let (s, got) = ids(&api, path).await;
        assert_eq!(s, StatusCode::OK, "{path}");
        assert_eq!(got, want, "{path}");
    }
    let (_, _, agent) = api
        .get("/v1/agent/services?filter=Service%20%3D%3D%20f%20and%20Port%20%3D%3D%209001")
        .await;
    let keys: Vec<&String> = agent.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["f-1"], "{agent}");

    for bad in [
        "/v1/health/service/f?filter=Service.Port%20%3D%3D",
        "/v1/health/service/f?filter=Service.Nope%20%3D%3D%201",
        "/v1/agent/services?filter=(Port%20%3D%3D%201",
    ] {
        let (s, _, body) = api.get(bad).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body["error"].is_string(), "{bad}: {body}");
    }
}

/// Namespaces and partitions are Consul Enterprise: refused as Consul CE refuses them. Another
/// datacenter has no path: a write meant for it must not land here.
#[tokio::test]
async fn enterprise_parameters_and_other_datacenters_are_refused() {
    let api = start().await;
    let (s, _, body) = api.get("/v1/catalog/services?ns=team").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("Enterprise"),
        "{body}"
    );
    assert_eq!(
        api.get("/v1/health/service/x?partition=p").await.0,
        StatusCode::BAD_REQUEST
    );
    let (s, body) = api.put("/v1/kv/elsewhere?dc=dc2", "v").await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("No path to datacenter"), "{body}");
    assert_eq!(api.get("/v1/kv/elsewhere").await.0, StatusCode::NOT_FOUND);
    assert_eq!(api.put("/v1/kv/here?dc=dc1", "v").await.0, StatusCode::OK);
    assert_eq!(api.get("/v1/kv/here?dc=DC1").await.0, StatusCode::OK);
}

/// A blocking query on one service waits for a change to that service, not to any service
/// (a flapping neighbour does not wake every watcher).
#[tokio::test]
async fn a_blocking_query_on_one_service_waits_for_that_service() {
    let api = start().await;
    api.put(
        "/v1/agent/service/register",
        r#"{"Name":"mine","ID":"mine-1","Check":{"CheckID":"mine","TTL":"60s"}}"#,
    )
    .await;
    api.put(
        "/v1/agent/service/register",
        r#"{"Name":"other","ID":"other-1","Check":{"CheckID":"other","TTL":"60s"}}"#,
    )
    .await;
    let (_, index, _) = api.get("/v1/health/service/mine").await;
    let index = index.unwrap();
    let waiter = api.get_in_background(format!("/v1/health/service/mine?index={index}&wait=30s"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    for status in ["pass", "fail", "pass"] {
        api.put(&format!("/v1/agent/check/{status}/other"), "")
            .await;
    }
    api.put(
        "/v1/agent/service/register",
        r#"{"Name":"third","ID":"third-1"}"#,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "woken by changes to other services");
    api.put("/v1/agent/check/pass/mine", "").await;
    let (_, new_index, body) = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("woken by its own service")
        .unwrap();
    assert!(new_index > index);
    assert_eq!(body[0]["Checks"][0]["Status"], "passing", "{body}");
    // The catalog of names moved with the registration of `third`, not with check flips.
    let (_, catalog, _) = api.get("/v1/catalog/services").await;
    let (_, mine, _) = api.get("/v1/health/service/mine").await;
    assert!(mine > catalog, "{mine:?} {catalog:?}");
}

/// The reads and writes clients offer besides services: members, nodes, datacenters, checks
/// by service, state and node, one agent service, the local health endpoints (their HTTP
/// status says the health), and checks added to and removed from an instance.
#[tokio::test]
async fn the_other_endpoints_clients_call() {
    let api = start().await;
    api.put(
        "/v1/agent/service/register",
        r#"{"Name":"o","ID":"o-1","Port":5,"Check":{"CheckID":"o-ttl","TTL":"60s"}}"#,
    )
    .await;
    let (s, _, members) = api.get("/v1/agent/members").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(members[0]["Name"], "lgo-dash");
    assert_eq!(api.get("/v1/catalog/datacenters").await.2, json!(["dc1"]));
    let (_, index, nodes) = api.get("/v1/catalog/nodes").await;
    assert!(index.is_some());
    assert_eq!(nodes[0]["Node"], "lgo-dash");
    let (_, _, node) = api.get("/v1/catalog/node/lgo-dash").await;
    assert_eq!(node["Services"]["o-1"]["Port"], 5, "{node}");
    assert_eq!(api.get("/v1/catalog/node/elsewhere").await.2, Value::Null);
    let (_, _, checks) = api.get("/v1/health/checks/o").await;
    assert_eq!(checks[0]["CheckID"], "o-ttl");
    assert_eq!(checks[0]["Definition"]["TTL"], "1m0s", "{checks}");
    let (_, _, critical) = api.get("/v1/health/state/critical").await;
    assert_eq!(critical.as_array().unwrap().len(), 1, "{critical}");
    assert_eq!(
        api.get("/v1/health/state/bogus").await.0,
        StatusCode::BAD_REQUEST
    );
    let (_, _, on_node) = api.get("/v1/health/node/lgo-dash").await;
    assert_eq!(on_node.as_array().unwrap().len(), 1);
    let (_, _, one) = api.get("/v1/agent/service/o-1").await;
    assert_eq!(one["Service"], "o");
    assert_eq!(
        api.get("/v1/agent/service/nope").await.0,
        StatusCode::NOT_FOUND
    );

    let (s, _, h) = api.get("/v1/agent/health/service/id/o-1").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(h["AggregatedStatus"], "critical");
    api.put("/v1/agent/check/pass/o-ttl", "").await;
    let (s, _, h) = api.get("/v1/agent/health/service/name/o").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h[0]["AggregatedStatus"], "passing");
    assert_eq!(
        api.get("/v1/agent/health/service/name/nope").await.0,
        StatusCode::NOT_FOUND
    );

    // A check added to the instance counts in its health, and goes again.
    let (s, body) = api
        .put(
            "/v1/agent/check/register",
            r#"{"Name":"extra","ID":"o-extra","ServiceID":"o-1","TTL":"60s"}"#,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(
        check_status(&api, "o-ttl").await.as_deref(),
        Some("passing")
    );
    assert_eq!(
        check_status(&api, "o-extra").await.as_deref(),
        Some("critical")
    );
    assert_eq!(
        api.get("/v1/agent/health/service/id/o-1").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        api.put("/v1/agent/check/deregister/o-extra", "").await.0,
        StatusCode::OK
    );
    assert_eq!(check_status(&api, "o-extra").await, None);
    assert_eq!(
        api.get("/v1/agent/health/service/id/o-1").await.0,
        StatusCode::OK
    );
    let (s, body) = api
        .put(
            "/v1/agent/check/register",
            r#"{"Name":"node-level","TTL":"60s"}"#,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body.contains("ServiceID"), "{body}");
    assert_eq!(
        api.put("/v1/agent/check/deregister/nope", "").await.0,
        StatusCode::NOT_FOUND
    );
}

/// An HTTP check sends its Method, Header and Body, and reports what the service answered as
/// a Consul agent does (`HTTP POST url: 200 OK Output: …`).
#[tokio::test]
async fn an_http_check_sends_its_body_and_reports_the_answer() {
    use axum::routing::post;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let s2 = seen.clone();
    let app = axum::Router::new().route(
        "/ping",
        post(move |body: String| {
            let s2 = s2.clone();
            async move {
                *s2.lock().unwrap() = body;
                "pong"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let api = start().await;
    let body = json!({
        "Name": "b", "ID": "b-1",
        "Check": {"CheckID": "b-http", "HTTP": format!("http://{addr}/ping"), "Method": "POST",
                  "Body": "{\"ping\":1}", "Interval": "100ms"},
    });
    api.put("/v1/agent/service/register", body.to_string())
        .await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            check_status(&api, "b-http").await.as_deref() == Some("passing")
        })
        .await
    );
    assert_eq!(*seen.lock().unwrap(), "{\"ping\":1}");
    let (_, _, checks) = api.get("/v1/agent/checks").await;
    let output = checks["b-http"]["Output"].as_str().unwrap();
    assert_eq!(
        output,
        format!("HTTP POST http://{addr}/ping: 200 OK Output: pong")
    );
    assert_eq!(checks["b-http"]["Definition"]["Method"], "POST");
    assert_eq!(checks["b-http"]["Definition"]["Interval"], "100ms");
}

/// A TCP check is passing while something accepts on its address, critical once nothing does.
#[tokio::test]
async fn a_tcp_check_follows_its_listener() {
    let api = start().await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let body = json!({
        "Name": "t", "ID": "t-1",
        "Check": {"CheckID": "t-tcp", "TCP": addr.to_string(), "Interval": "100ms", "Timeout": "1s"},
    });
    let (s, text) = api
        .put("/v1/agent/service/register", body.to_string())
        .await;
    assert_eq!(s, StatusCode::OK, "{text}");
    assert!(
        eventually(Duration::from_secs(5), || async {
            check_status(&api, "t-tcp").await.as_deref() == Some("passing")
        })
        .await
    );
    let (_, _, checks) = api.get("/v1/agent/checks").await;
    assert_eq!(checks["t-tcp"]["Type"], "tcp");
    assert_eq!(checks["t-tcp"]["Definition"]["TCP"], addr.to_string());
    drop(listener);
    assert!(
        eventually(Duration::from_secs(5), || async {
            check_status(&api, "t-tcp").await.as_deref() == Some("critical")
        })
        .await,
        "critical once nothing listens"
    );
}
