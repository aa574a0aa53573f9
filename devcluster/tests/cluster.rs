//! The whole cluster over real sockets: sample services registered with HTTP checks, `kill`
//! noticed by health checks, `restart` bringing the instance back, CRUD with JSON errors,
//! order-service finding users through discovery, and a busy port named in the error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use devcluster::cluster::{Cluster, ClusterOptions};
use devcluster::config::{Config, DEFAULTS_TOML};
use devcluster::control::{AdminClient, Command};
use devcluster::handle::ProcessState;
use devcluster::registry::Health;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const INTERVAL: Duration = Duration::from_millis(300);

async fn start() -> Cluster {
    let cfg = Config::from_layers(&[
        ("defaults", DEFAULTS_TOML),
        ("test", "[health]\ninterval_ms = 300\ntimeout_ms = 250\n"),
    ])
    .unwrap();
    let cluster = Cluster::start(ClusterOptions::new(cfg).auto_ports(true))
        .await
        .unwrap();
    let reg = cluster.registry().clone();
    wait_until(Duration::from_secs(10), || {
        reg.instances().len() == 8 && reg.instances().iter().all(|i| i.health == Health::Passing)
    })
    .await
    .expect("all eight sample endpoints (five HTTP, three gRPC) pass their first health check");
    cluster
}

async fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if f() {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

async fn passing_ids(registry_url: &str, service: &str) -> Vec<String> {
    let v: Value = http()
        .get(format!(
            "{registry_url}/v1/health/service/{service}?passing"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| e["Service"]["ID"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_instance_turns_critical_leaves_passing_and_comes_back_on_restart() {
    let cluster = start().await;
    let reg = cluster.registry().clone();
    let handle = cluster.handle();
    let url = cluster.registry_url();
    assert_eq!(
        passing_ids(&url, "user-service").await,
        ["user-service-1", "user-service-2", "user-service-3"]
    );

    handle.kill("user-service-2").await.unwrap();
    let snap = handle.snapshot();
    let killed = snap
        .instances
        .iter()
        .find(|i| i.view.id == "user-service-2")
        .unwrap();
    assert_eq!(killed.process, ProcessState::Killed);
    // The registration stays: a crash does not deregister.
    assert!(reg.instance("user-service-2").is_some());

    // Two intervals, plus scheduling slack for a loaded 2-core machine.
    let limit = 2 * INTERVAL + Duration::from_millis(700);
    let took = wait_until(limit, || {
        reg.instance("user-service-2")
            .is_some_and(|i| i.health == Health::Critical)
    })
    .await;
    assert!(
        took.is_some(),
        "the HTTP check did not notice the kill within {limit:?}"
    );
    assert_eq!(
        passing_ids(&url, "user-service").await,
        ["user-service-1", "user-service-3"]
    );
    let check = reg.instance("user-service-2").unwrap().checks[0]
        .output
        .clone();
    assert!(
        check.contains("/health"),
        "the check output says what failed: {check}"
    );

    // order-service keeps working: it only calls passing instances.
    let order_port = reg.instance("order-service-1").unwrap().port;
    for _ in 0..6 {
        let r = http()
            .get(format!("http://127.0.0.1:{order_port}/orders/2"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }

    handle.restart("user-service-2").await.unwrap();
    wait_until(limit, || {
        reg.instance("user-service-2")
            .is_some_and(|i| i.health == Health::Passing)
    })
    .await
    .expect("restarted instance passes again");
    assert_eq!(passing_ids(&url, "user-service").await.len(), 3);
    assert_eq!(
        handle
            .snapshot()
            .instances
            .iter()
            .find(|i| i.view.id == "user-service-2")
            .unwrap()
            .process,
        ProcessState::Running
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_service_crud_validates_and_answers_json_errors() {
    let cluster = start().await;
    let inst = cluster.registry().discover("user-service").remove(0);
    let base = inst.base_url();
    let c = http();

    let r = c.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"status": "healthy", "service": "user-service"})
    );

    let r = c.get(format!("{base}/users/1")).send().await.unwrap();
    assert_eq!(r.headers()["x-served-by"], inst.id.as_str());
    assert_eq!(r.json::<Value>().await.unwrap()["name"], "Ada Lovelace");

    let r = c
        .post(format!("{base}/users"))
        .json(&json!({"name": "Ken Thompson", "email": "ken@example.com", "age": 83}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: Value = r.json().await.unwrap();
    let id = created["id"].as_u64().unwrap();

    // The store is shared: another instance sees the new user.
    let other = cluster.registry().discover("user-service").remove(1);
    let r = c
        .get(format!("{}/users/{id}", other.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["email"], "ken@example.com");

    let bad: [(&str, &str, &str, &str); 6] = [
        ("POST", "/users", "{\"name\": ", "invalid JSON"),
        (
            "POST",
            "/users",
            r#"{"name":"x","email":"not-an-email"}"#,
            "email",
        ),
        ("POST", "/users", r#"{"name":"","email":"a@b.io"}"#, "name"),
        (
            "POST",
            "/users",
            r#"{"name":"x","email":"a@b.io","admin":true}"#,
            "admin",
        ),
        (
            "PUT",
            "/users/1",
            r#"{"name":"x","email":"a@b.io","age":900}"#,
            "age",
        ),
        ("GET", "/users/abc", "", "positive integer"),
    ];
    for (method, path, body, want) in bad {
        let r = c
            .request(method.parse().unwrap(), format!("{base}{path}"))
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::BAD_REQUEST,
            "{method} {path} {body}"
        );
        let v: Value = r.json().await.unwrap();
        assert!(
            v["error"].as_str().unwrap().contains(want),
            "{v} should mention {want}"
        );
    }

    let r = c.get(format!("{base}/users/999")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "user 999 not found"
    );

    let r = c
        .put(format!("{base}/users/{id}"))
        .json(&json!({"name": "Ken", "email": "ken@bell-labs.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["name"], "Ken");
    let r = c.delete(format!("{base}/users/{id}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = c.get(format!("{base}/users/{id}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_embed_their_user_found_through_discovery() {
    let cluster = start().await;
    let base = cluster
        .registry()
        .discover("order-service")
        .remove(0)
        .base_url();
    let c = http();
    let v: Value = c
        .get(format!("{base}/orders/2"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["item"], "monitor");
    assert_eq!(v["user"]["name"], "Alan Turing");

    let r = c
        .post(format!("{base}/orders"))
        .json(&json!({"user_id": 3, "item": "book", "quantity": 2, "amount_cents": 1999}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        r.json::<Value>().await.unwrap()["user"]["name"],
        "Grace Hopper"
    );

    let r = c
        .post(format!("{base}/orders"))
        .json(&json!({"user_id": 404, "item": "book", "quantity": 1, "amount_cents": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // With every user-service instance down, order-service says so instead of hanging.
    let handle = cluster.handle();
    for id in ["user-service-1", "user-service-2", "user-service-3"] {
        handle.kill(id).await.unwrap();
    }
    let reg = cluster.registry().clone();
    wait_until(Duration::from_secs(5), || {
        reg.discover("user-service").is_empty()
    })
    .await
    .expect("all user-service instances critical");
    let r = c.get(format!("{base}/orders/2")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"].as_str().unwrap().contains("user-service"), "{v}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_lists_kills_and_explains_unknown_ids() {
    let cluster = start().await;
    let admin = AdminClient::new(cluster.admin_url());
    let list = admin.instances().await.unwrap();
    assert_eq!(
        list.len(),
        8,
        "five HTTP instances and three gRPC endpoints"
    );
    let json = serde_json::to_value(&list[0]).unwrap();
    for field in ["id", "service", "address", "port", "health", "weight"] {
        assert!(
            json.get(field).is_some(),
            "instance JSON has `{field}`: {json}"
        );
    }
    admin
        .send(&Command::Kill {
            id: "order-service-2".into(),
            for_s: None,
        })
        .await
        .unwrap();
    let list = admin.instances().await.unwrap();
    assert_eq!(
        list.iter()
            .find(|i| i.view.id == "order-service-2")
            .unwrap()
            .process,
        ProcessState::Killed
    );
    let err = admin
        .send(&Command::Kill {
            id: "nope-1".into(),
            for_s: None,
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("404") && err.contains("nope-1"), "{err}");

    // Externally registered instances are listed but cannot be killed by lgo-dash.
    http()
        .put(format!(
            "{}/v1/agent/service/register",
            cluster.registry_url()
        ))
        .body(r#"{"Name":"ext","ID":"ext-1","Port":1}"#)
        .send()
        .await
        .unwrap();
    let err = admin
        .send(&Command::Kill {
            id: "ext-1".into(),
            for_s: None,
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("registered from outside"), "{err}");
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_busy_port_is_named_with_the_way_out() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let cfg = Config::from_layers(&[
        ("defaults", DEFAULTS_TOML),
        ("test", &format!("[ports]\nregistry = {port}\n")),
    ])
    .unwrap();
    let err = match Cluster::start(ClusterOptions::new(cfg)).await {
        Ok(_) => panic!("started on a busy port"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains(&format!("port {port} (registry)")), "{err}");
    assert!(err.contains("--ports auto"), "{err}");
}

/// A quiet cluster publishes its instances once: while nothing about them changes, every
/// snapshot shares the same slice (a thousand idle instances are not copied twice a second);
/// a TTL check's new output, which Consul's index does not count, still reaches the snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_instances_slice_is_shared_and_an_output_change_still_shows() {
    let cfg = Config::from_layers(&[("defaults", DEFAULTS_TOML)]).unwrap();
    let cluster = Cluster::start(ClusterOptions::new(cfg).auto_ports(true).traffic(false))
        .await
        .unwrap();
    let handle = cluster.handle();
    let reg = cluster.registry_url();
    let body = json!({"ID": "ext-1", "Name": "ext", "Address": "127.0.0.1", "Port": 9,
        "Check": {"TTL": "30s"}});
    let put = |url: String| http().put(url);
    put(format!("{reg}/v1/agent/service/register"))
        .json(&body)
        .send()
        .await
        .unwrap();
    put(format!(
        "{reg}/v1/agent/check/pass/service:ext-1?note=first"
    ))
    .send()
    .await
    .unwrap();
    let output = |h: &devcluster::ClusterHandle| {
        h.snapshot()
            .instances
            .iter()
            .find(|i| i.view.id == "ext-1")
            .and_then(|i| i.view.checks.first().map(|c| c.output.clone()))
    };
    wait_until(Duration::from_secs(10), || {
        let s = handle.snapshot();
        output(&handle).as_deref() == Some("first")
            && s.instances.iter().all(|i| i.view.health == Health::Passing)
    })
    .await
    .expect("the instances pass and the note shows");
    let before = handle.snapshot();
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let after = handle.snapshot();
    assert!(
        std::sync::Arc::ptr_eq(&before.instances, &after.instances),
        "nothing changed, yet the instances were built again (v{} → v{}): {:#?}",
        before.version,
        after.version,
        after
            .instances
            .iter()
            .zip(before.instances.iter())
            .filter(|(a, b)| a != b)
            .collect::<Vec<_>>()
    );
    let index = cluster.registry().index();
    put(format!(
        "{reg}/v1/agent/check/pass/service:ext-1?note=second"
    ))
    .send()
    .await
    .unwrap();
    wait_until(Duration::from_secs(5), || {
        output(&handle).as_deref() == Some("second")
    })
    .await
    .expect("the new output shows");
    assert_eq!(
        cluster.registry().index(),
        index,
        "Consul's index counts no output change"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_every_background_task_on_its_signal_and_closes_every_port() {
    let cfg = Config::from_layers(&[("defaults", DEFAULTS_TOML)]).unwrap();
    // Traffic on, a timed restart pending, a receiver listening: all must stop by themselves.
    let cluster = Cluster::start(ClusterOptions::new(cfg).auto_ports(true))
        .await
        .unwrap();
    cluster
        .handle()
        .send(Command::Kill {
            id: "user-service-3".into(),
            for_s: Some(600),
        })
        .await
        .unwrap();
    let ports: Vec<(String, u16)> = cluster
        .endpoints()
        .iter()
        .map(|e| {
            let port = e.url.rsplit(':').next().unwrap().parse().unwrap();
            (e.name.clone(), port)
        })
        .collect();
    assert!(ports.iter().any(|(n, _)| n == "otlp-grpc"), "{ports:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let report = cluster.shutdown().await;
    assert!(
        report.aborted.is_empty(),
        "every task stops on the signal, none is aborted: {:?}",
        report.aborted
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no task waited out its patience ({:?})",
        started.elapsed()
    );
    for (name, port) in ports {
        assert!(
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err(),
            "{name} (port {port}) is closed after the stop"
        );
    }
}

/// The route inspector says what a real request would get: an open breaker answers before
/// any instance is looked for, also when every instance is down too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_route_inspector_answers_as_a_real_request_would() {
    use devcluster::breaker::Mode;
    let cluster = start().await;
    let admin = AdminClient::new(cluster.admin_url());
    let e = admin.explain("GET", "/api/users/3").await.unwrap();
    assert_eq!(e.service.as_deref(), Some("user-service"));
    assert!(e.chosen.is_some(), "{e:?}");
    for id in ["user-service-1", "user-service-2", "user-service-3"] {
        admin
            .send(&Command::Kill {
                id: id.into(),
                for_s: None,
            })
            .await
            .unwrap();
    }
    let reg = cluster.registry().clone();
    wait_until(Duration::from_secs(10), || {
        reg.discover("user-service").is_empty()
    })
    .await
    .expect("every user-service instance out of rotation");
    let e = admin.explain("GET", "/api/users/3").await.unwrap();
    assert!(e.outcome.contains("no passing instance"), "{}", e.outcome);
    admin
        .send(&Command::BreakerMode {
            name: "gateway->user-service".into(),
            mode: Mode::ForcedOpen,
        })
        .await
        .unwrap();
    let e = admin.explain("GET", "/api/users/3").await.unwrap();
    let real = reqwest::Client::new()
        .get(format!("{}/api/users/3", cluster.gateway_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(real.status(), StatusCode::SERVICE_UNAVAILABLE);
    let said = real.text().await.unwrap();
    assert!(said.contains("breaker"), "{said}");
    assert!(
        e.outcome.contains("breaker gateway->user-service"),
        "the inspector says what the request got ({said}): {}",
        e.outcome
    );
    cluster.shutdown().await;
}

/// A `--for` too long for the clock is refused with its bound (it panicked the admin handler,
/// which ctl then reported as a cluster that does not answer), and nothing is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_or_fault_for_longer_than_a_week_is_refused() {
    let cluster = start().await;
    let admin = AdminClient::new(cluster.admin_url());
    let err = admin
        .send(&Command::Kill {
            id: "user-service-3".into(),
            for_s: Some(u64::MAX),
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("a week"), "{err}");
    let list = admin.instances().await.unwrap();
    let i = list.iter().find(|i| i.view.id == "user-service-3").unwrap();
    assert_eq!(
        i.process,
        ProcessState::Running,
        "refused before anything was done"
    );
    cluster.shutdown().await;
}
