//! The registry's Consul API over real loopback sockets, with the request shapes real clients
//! send (Go/Spring PascalCase, py-consul lowercase, python-consul `check`) and Consul's answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

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
    let server = HttpServer::start("registry", listener, consul::router(registry.clone())).unwrap();
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
    let base = api.base.clone();
    let waiter = tokio::spawn(async move {
        let started = Instant::now();
        let r = reqwest::Client::new()
            .get(format!(
                "{base}/v1/health/service/late?index={index}&wait=30s"
            ))
            .send()
            .await
            .unwrap();
        let idx: u64 = r.headers()["X-Consul-Index"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let body: Value = r.json().await.unwrap();
        (started.elapsed(), idx, body)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
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
            r#"{"Name": "x", "Check": {"TCP": "127.0.0.1:1", "Interval": "1s"}}"#,
            "TCP",
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
