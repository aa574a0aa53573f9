//! The traffic path over real sockets: the gateway forwards faithfully (rewrite, query,
//! headers, X-Forwarded-For, streamed bodies), answers 502/503/504 with JSON that says why,
//! a forced-open breaker never reaches the upstream, and a killed instance under load costs no
//! idempotent request (retries and outlier ejection absorb it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, Uri};
use common::{fresh, http};
use devcluster::breaker::Mode;
use devcluster::cluster::Cluster;
use devcluster::config::{Config, DEFAULTS_TOML};
use devcluster::control::Command;
use devcluster::registry::Health;
use devcluster::server::HttpServer;
use devcluster::services::faults::Fault;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const TEST_CONFIG: &str = r#"
[health]
interval_ms = 300
timeout_ms = 250
[timeouts]
call_ms = 500
[[routes]]
path = "/api/users/{id}"
service = "user-service"
rewrite = "/users/{id}"
[[routes]]
path = "/api/orders/{id}"
service = "order-service"
rewrite = "/orders/{id}"
[[routes]]
path = "/echo/{rest}"
service = "echo"
rewrite = "/e/{rest}"
[[routes]]
path = "/slow"
service = "echo"
rewrite = "/slow"
[[routes]]
path = "/ghost"
service = "ghost"
rewrite = "/"
[[routes]]
path = "/dead"
service = "dead"
rewrite = "/"
"#;

async fn start() -> Cluster {
    let cfg = Config::from_layers(&[("defaults", DEFAULTS_TOML), ("test", TEST_CONFIG)]).unwrap();
    common::start_with(cfg).await
}

/// An upstream that echoes what it received and counts requests.
async fn echo_server() -> (HttpServer, Arc<AtomicU64>) {
    let hits = Arc::new(AtomicU64::new(0));
    async fn echo(
        State(hits): State<Arc<AtomicU64>>,
        ConnectInfo(_peer): ConnectInfo<SocketAddr>,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> axum::Json<Value> {
        hits.fetch_add(1, Ordering::SeqCst);
        if uri.path() == "/slow" {
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        let h: serde_json::Map<String, Value> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or(""))))
            .collect();
        axum::Json(json!({
            "method": method.as_str(), "path": uri.path(), "query": uri.query(),
            "headers": h, "body_len": body.len(),
        }))
    }
    let router = Router::new().fallback(echo).with_state(hits.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    (HttpServer::start("echo", listener, router).unwrap(), hits)
}

async fn register(cluster: &Cluster, name: &str, id: &str, port: u16, status: &str) {
    let body = json!({"Name": name, "ID": id, "Address": "127.0.0.1", "Port": port,
        "Check": {"TTL": "1h", "Status": status}});
    let r = http()
        .put(format!(
            "{}/v1/agent/service/register",
            cluster.registry_url()
        ))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_forwards_rewritten_paths_query_headers_and_bodies() {
    let cluster = start().await;
    let (echo, _) = echo_server().await;
    register(&cluster, "echo", "echo-1", echo.addr().port(), "passing").await;
    let gw = cluster.gateway_url();

    let v: Value = http()
        .get(format!("{gw}/echo/abc?x=1&y=two"))
        .header("connection", "x-secret")
        .header("x-secret", "must not pass")
        .header("x-custom", "kept")
        .header("x-forwarded-for", "10.0.0.1")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["path"], "/e/abc");
    assert_eq!(v["query"], "x=1&y=two");
    assert_eq!(v["headers"]["x-custom"], "kept");
    assert!(
        v["headers"].get("x-secret").is_none(),
        "headers named by Connection are hop-by-hop: {v}"
    );
    assert_eq!(v["headers"]["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
    let tp = v["headers"]["traceparent"].as_str().unwrap();
    assert!(
        tp.starts_with("00-") && tp.len() == 55,
        "a trace context is started: {tp}"
    );

    let big = vec![b'z'; 300_000];
    let v: Value = http()
        .post(format!("{gw}/echo/upload"))
        .body(big)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (v["method"].as_str(), v["body_len"].as_u64()),
        (Some("POST"), Some(300_000))
    );

    // Through to the sample services, path parameters included.
    let r = http()
        .get(format!("{gw}/api/orders/3"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["user"]["name"], "Grace Hopper");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_answered_with_the_right_status_and_a_reason() {
    let cluster = start().await;
    let (echo, hits) = echo_server().await;
    register(&cluster, "echo", "echo-1", echo.addr().port(), "passing").await;
    register(&cluster, "ghost", "ghost-1", 1, "critical").await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = closed.local_addr().unwrap().port();
    drop(closed);
    register(&cluster, "dead", "dead-1", dead_port, "passing").await;
    let gw = cluster.gateway_url();
    let get = |path: &str| {
        let url = format!("{gw}{path}");
        async move {
            let r = http().get(url).send().await.unwrap();
            let status = r.status();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };

    let (s, v) = get("/ghost").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("no passing instance of ghost"),
        "{v}"
    );
    let (s, v) = get("/dead").await;
    assert_eq!(s, StatusCode::BAD_GATEWAY);
    assert!(v["error"].as_str().unwrap().contains("dead-1"), "{v}");
    let (s, v) = get("/slow").await;
    assert_eq!(s, StatusCode::GATEWAY_TIMEOUT);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("did not answer within"),
        "{v}"
    );
    let (s, v) = get("/nowhere").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(v["error"].as_str().is_some());

    // A forced-open breaker answers at once and never touches the upstream.
    let handle = cluster.handle();
    handle
        .send(Command::BreakerMode {
            name: "gateway->echo".into(),
            mode: Mode::ForcedOpen,
        })
        .await
        .unwrap();
    let before = hits.load(Ordering::SeqCst);
    for _ in 0..20 {
        let (s, v) = get("/echo/x").await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(v["breaker"], "gateway->echo");
        assert_eq!(v["mode"], "forced_open");
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        before,
        "the upstream's counter did not move"
    );
    let snap = fresh(&cluster.handle()).await;
    let b = snap
        .breakers
        .iter()
        .find(|b| b.name == "gateway->echo")
        .unwrap();
    assert!(b.rejected >= 20);
    cluster.shutdown().await;
}

/// Waits until `done` reaches `n`.
async fn answered(done: &std::sync::atomic::AtomicUsize, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while done.load(Ordering::SeqCst) < n {
        assert!(
            std::time::Instant::now() < deadline,
            "only {done:?} of {n} answered"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Sends `n` GETs through the gateway, `conc` at a time; returns the failures.
async fn hammer(gw: String, n: usize, conc: usize) -> Vec<String> {
    hammer_counted(gw, n, conc, Arc::default()).await
}

/// The same, counting answered requests in `done` as they come (so a test can act while the
/// load is running, not after a guessed pause).
async fn hammer_counted(
    gw: String,
    n: usize,
    conc: usize,
    done: Arc<std::sync::atomic::AtomicUsize>,
) -> Vec<String> {
    let client = http();
    let sem = Arc::new(tokio::sync::Semaphore::new(conc));
    let mut tasks = Vec::new();
    for i in 0..n {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let (client, url) = (client.clone(), format!("{gw}/api/users/{}", i % 5 + 1));
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let r = client.get(&url).send().await;
            done.fetch_add(1, Ordering::SeqCst);
            drop(permit);
            match r {
                Ok(r) if r.status() == StatusCode::OK => None,
                Ok(r) => Some(format!("{url}: {}", r.status())),
                Err(e) => Some(format!("{url}: {e}")),
            }
        }));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut failures = Vec::new();
    for t in tasks {
        if let Some(f) = t.await.unwrap() {
            failures.push(f);
        }
    }
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_one_of_three_under_traffic_fails_no_idempotent_request() {
    let cluster = start().await;
    let handle = cluster.handle();
    handle.send(Command::Traffic { rps: 50 }).await.unwrap();
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let load = tokio::spawn(hammer_counted(cluster.gateway_url(), 400, 8, done.clone()));
    answered(&done, 100).await;
    handle.kill("user-service-2").await.unwrap();
    let at_kill = done.load(Ordering::SeqCst);
    let failures = load.await.unwrap();
    assert!(
        at_kill < 350,
        "the kill landed while requests were flowing ({at_kill} of 400 answered)"
    );
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );

    let snap = fresh(&handle).await;
    let t = &snap.traffic;
    assert!(t.sent > 50, "the generator ran: {t:?}");
    assert_eq!(t.failed_idempotent, 0, "{t:?}");
    let killed = snap
        .instances
        .iter()
        .find(|i| i.view.id == "user-service-2")
        .unwrap();
    assert_eq!(killed.view.health, Health::Critical);
    let load = killed.load.as_ref().unwrap();
    assert!(
        load.failures >= 3,
        "the balancer saw its failures: {load:?}"
    );
    assert!(load.ejected_for_ms.is_some(), "and ejected it: {load:?}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2c_avoids_a_slow_instance_and_strategy_switches_drop_nothing() {
    let cluster = start().await;
    let handle = cluster.handle();
    handle
        .send(Command::Strategy {
            service: "user-service".into(),
            strategy: "p2c".parse().unwrap(),
        })
        .await
        .unwrap();
    handle
        .send(Command::Fault {
            id: "user-service-1".into(),
            fault: Fault {
                latency_ms: 200,
                ..Fault::default()
            },
            for_s: None,
        })
        .await
        .unwrap();
    let failures = hammer(cluster.gateway_url(), 300, 8).await;
    assert!(failures.is_empty(), "{failures:?}");
    let snap = fresh(&handle).await;
    let b = snap
        .balancers
        .iter()
        .find(|b| b.target == "user-service")
        .unwrap();
    let total: u64 = b.counts.values().sum();
    let slow = b.counts.get("user-service-1").copied().unwrap_or(0);
    assert!(total >= 300);
    assert!(
        (slow as f64) < 0.05 * total as f64,
        "slow instance got {slow} of {total}: {:?}",
        b.counts
    );

    // Every strategy in turn while requests flow: none fails.
    let gw = cluster.gateway_url();
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let load = tokio::spawn(hammer_counted(gw, 300, 8, done.clone()));
    for s in [
        "round_robin",
        "random",
        "weighted",
        "least_request",
        "consistent_hash",
        "p2c",
    ] {
        handle
            .send(Command::Strategy {
                service: "user-service".into(),
                strategy: s.parse().unwrap(),
            })
            .await
            .unwrap();
        // Requests answered under each strategy before the next switch.
        let now = done.load(Ordering::SeqCst);
        answered(&done, now + 20).await;
    }
    assert!(
        done.load(Ordering::SeqCst) < 300,
        "the last switch landed while requests were flowing"
    );
    let failures = load.await.unwrap();
    assert!(failures.is_empty(), "{failures:?}");
    cluster.shutdown().await;
}

/// The caller's trace flags reach the instance as they were sent: a trace the caller chose not
/// to sample (`-00`) stays unsampled for a downstream SDK that follows its parent; one that
/// came with none starts sampled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_passes_the_callers_trace_flags_on() {
    let cluster = start().await;
    let (echo, _) = echo_server().await;
    register(&cluster, "echo", "echo-1", echo.addr().port(), "passing").await;
    let gw = cluster.gateway_url();
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    for (sent, flags) in [
        (Some(format!("00-{trace}-00f067aa0ba902b7-00")), "00"),
        (Some(format!("00-{trace}-00f067aa0ba902b7-01")), "01"),
        (None, "01"),
    ] {
        let mut req = http().get(format!("{gw}/echo/flags"));
        if let Some(tp) = &sent {
            req = req.header("traceparent", tp);
        }
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        let tp = v["headers"]["traceparent"].as_str().unwrap();
        assert!(tp.ends_with(&format!("-{flags}")), "{sent:?} → {tp}");
        if sent.is_some() {
            assert!(tp.starts_with(&format!("00-{trace}-")), "{tp}");
        }
    }
    cluster.shutdown().await;
}

/// An instance that answers every request on a kept-alive connection with the same raw
/// response, hop-by-hop headers and its own X-Trace-ID included (as no axum server would).
async fn raw_instance(answer: &'static str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while let Ok(n @ 1..) = s.read(&mut chunk).await {
                    buf.extend_from_slice(&chunk[..n]);
                    // Requests without bodies: each ends with its blank line.
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        if s.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    port
}

/// The gateway passes the instance's answer headers on as they came, less the hop-by-hop ones
/// (those its Connection header names too), with its own framing and one X-Trace-ID, its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_passes_answer_headers_on_without_the_hop_by_hop_ones() {
    let cluster = start().await;
    let port = raw_instance(
        "HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nX-Custom: kept, as sent\r\n\
         Connection: X-Hop\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\n\
         X-Trace-ID: 0123456789abcdef0123456789abcdef\r\nContent-Length: 2\r\n\r\nok",
    )
    .await;
    register(&cluster, "echo", "raw-1", port, "passing").await;
    let gw = cluster.gateway_url();
    for _ in 0..3 {
        let r = http().get(format!("{gw}/echo/x")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let h = r.headers();
        assert_eq!(h["content-type"], "text/plain");
        assert_eq!(h["x-custom"], "kept, as sent");
        assert_eq!(h["content-length"], "2");
        assert!(h.get("x-hop").is_none(), "named by Connection: {h:?}");
        assert!(h.get("keep-alive").is_none(), "{h:?}");
        assert_eq!(h.get_all("date").iter().count(), 1, "{h:?}");
        let traces: Vec<_> = h.get_all("x-trace-id").iter().collect();
        assert_eq!(traces.len(), 1, "{h:?}");
        assert_ne!(traces[0], "0123456789abcdef0123456789abcdef");
        assert_eq!(r.text().await.unwrap(), "ok");
    }
    // A HEAD answer keeps the length the full answer has.
    let r = http().head(format!("{gw}/echo/x")).send().await.unwrap();
    assert_eq!(r.headers()["content-length"], "2");
    cluster.shutdown().await;
}
