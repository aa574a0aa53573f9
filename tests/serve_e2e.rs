//! The built binary end to end: `serve` prints its endpoints and `ready`, the user-service
//! answers through discovery, `ctl` lists and kills instances, SIGTERM exits 0; a busy port
//! and a bad config file are refused with messages that say what to do.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::process::Command;

#[path = "common/served.rs"]
mod served;

use served::{BIN, Served};

async fn serve(extra: &[&str]) -> Served {
    serve_env(extra, &[]).await
}

async fn serve_env(extra: &[&str], env: &[(&str, &str)]) -> Served {
    let mut args = vec!["serve", "--ports", "auto"];
    args.extend_from_slice(extra);
    let served = served::start(&args, env).await;
    for (name, url) in &served.endpoints {
        assert!(
            url.starts_with("http://127.0.0.1:"),
            "listens on loopback: {name} {url}"
        );
    }
    served
}

async fn ctl(admin: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .arg("ctl")
        .args(["--admin", admin])
        .args(args)
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

async fn passing_user_instances(registry: &str) -> Vec<Value> {
    let v: Value = http()
        .get(format!("{registry}/v1/health/service/user-service?passing"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v.as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_is_ready_answers_through_discovery_and_stops_on_sigterm() {
    let served = serve(&[]).await;
    let registry = served.url("registry");
    let admin = served.url("admin");

    // Discover a passing user-service instance the way any Consul client would, then call it.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut passing = passing_user_instances(&registry).await;
    while passing.len() < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        passing = passing_user_instances(&registry).await;
    }
    assert_eq!(passing.len(), 3, "three user-service instances pass");
    let svc = &passing[0]["Service"];
    let url = format!(
        "http://{}:{}/users/1",
        svc["Address"].as_str().unwrap(),
        svc["Port"]
    );
    let user: Value = http().get(url).send().await.unwrap().json().await.unwrap();
    assert_eq!(user["name"], "Ada Lovelace");

    // ctl: list, kill, see it turn critical, unknown ids are an error.
    let (ok, out, err) = ctl(&admin, &["instances", "--json"]).await;
    assert!(ok, "{err}");
    let list: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        list.as_array().unwrap().len(),
        8,
        "five HTTP instances, three gRPC endpoints"
    );
    let (ok, out, _) = ctl(&admin, &["instances"]).await;
    assert!(
        ok && out.starts_with("ID") && out.contains("user-service-3"),
        "{out}"
    );
    let (ok, _, err) = ctl(&admin, &["kill", "user-service-1"]).await;
    assert!(ok, "{err}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, out, _) = ctl(&admin, &["instances", "--json"]).await;
        let list: Value = serde_json::from_str(&out).unwrap();
        let one = list
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == "user-service-1")
            .cloned()
            .unwrap();
        if one["health"] == "critical" {
            assert_eq!(one["process"], "killed");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "killed instance never turned critical: {one}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (ok, _, err) = ctl(&admin, &["kill", "no-such-instance"]).await;
    assert!(!ok && err.contains("no-such-instance"), "{err}");

    // SIGTERM: deregister, drain, exit 0.
    let mut child = served.child;
    let pid = child.id().unwrap().to_string();
    let sent = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(sent.success());
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("serve exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    assert!(
        http().get(&registry).send().await.is_err(),
        "the registry port is closed"
    );
}

#[tokio::test]
async fn ctl_without_a_cluster_says_where_it_looked() {
    let (ok, _, err) = ctl("http://127.0.0.1:9", &["instances"]).await;
    assert!(!ok);
    assert!(
        err.contains("http://127.0.0.1:9") && err.contains("LGO_ADMIN"),
        "{err}"
    );
}

/// `ctl logs | head`: a reader that goes away ends ctl quietly (exit 0, no panic, no
/// backtrace), as a Unix tool does.
#[tokio::test]
async fn ctl_piped_into_a_reader_that_goes_away_ends_quietly() {
    let served = serve(&[]).await;
    let admin = served.url("admin");
    let mut child = std::process::Command::new(BIN)
        .args(["ctl", "--admin", &admin, "logs", "--level", "debug"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The reading end closed before ctl writes its first line.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.status.success(), "{:?}: {err}", out.status);
}

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("lgo-dash-test-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn a_busy_port_and_a_bad_config_are_refused_with_a_way_out() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let cfg = temp_file("busy.toml", &format!("[ports]\nregistry = {port}\n"));
    let out = Command::new(BIN)
        .args(["serve", "--config", cfg.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("port {port} (registry)")) && err.contains("--ports auto"),
        "{err}"
    );

    // `serve --ports auto --config FILE` refused: what it says on stderr.
    let refused = |file: String| async move {
        let out = Command::new(BIN)
            .args(["serve", "--ports", "auto", "--config", &file])
            .output()
            .await
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let cfg = temp_file("typo.toml", "[health]\nintervl_ms = 10\n");
    let err = refused(cfg.to_str().unwrap().to_string()).await;
    assert!(
        err.contains("typo.toml") && err.contains("intervl_ms"),
        "{err}"
    );

    // A config file that is not there: named, with the reason said once.
    let err = refused("/nonexistent/lgo.toml".to_string()).await;
    assert!(err.contains("/nonexistent/lgo.toml"), "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");

    // A bad keymap file: refused with its line and why, before the terminal is taken over.
    let keymap = temp_file("keys.toml", "[services]\nkill = \"x\"\nrestart = \"x\"\n");
    let out = Command::new(BIN)
        .args(["--no-traffic", "--keymap", keymap.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("keys.toml, line 2") && err.contains("x is bound to both kill and restart"),
        "{err}"
    );
}

#[tokio::test]
async fn ctl_traces_and_trace_show_a_request_through_the_gateway() {
    // LGO_LOG=warn (set by `serve`) silences logs, not traces.
    let served = serve(&["--no-traffic"]).await;
    let admin = served.url("admin");
    let gateway = served.url("gateway");
    // Until the instances pass the gateway may answer 503; each try is a trace of its own.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut n = 0;
    let trace = loop {
        n += 1;
        let trace = format!("4bf92f3577b34da6a3ce929d0e0e{n:04x}");
        let resp = http()
            .get(format!("{gateway}/api/users/2"))
            .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
            .send()
            .await
            .unwrap();
        if resp.status() == 200 {
            break trace;
        }
        assert!(Instant::now() < deadline, "the gateway never answered 200");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let trace = trace.as_str();
    let deadline = Instant::now() + Duration::from_secs(10);
    let listed = loop {
        let (ok, out, err) = ctl(&admin, &["traces", "--service", "user-service", "--json"]).await;
        assert!(ok, "{err}");
        let list: Value = serde_json::from_str(&out).unwrap();
        if let Some(t) = list
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["trace_id"] == trace && t["span_count"] == 4)
        {
            break t.clone();
        }
        assert!(
            Instant::now() < deadline,
            "trace {trace} never listed: {out}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(listed["root"], "GET /api/users/{id}");
    assert_eq!(listed["services"], json!(["gateway", "user-service"]));

    let (ok, out, err) = ctl(&admin, &["trace", trace]).await;
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("SPAN"), "{out}");
    assert!(lines[1].starts_with("▾ GET /api/users/{id}"), "{out}");
    assert!(lines[2].starts_with("  ▾ call user-service"), "{out}");
    assert!(lines[3].starts_with("    ▾ GET user-service"), "{out}");
    assert!(lines[4].starts_with("        GET /users/{id}"), "{out}");

    // The same request is counted on both sides of the hop.
    let (ok, out, err) = ctl(&admin, &["metrics", "--json"]).await;
    assert!(ok, "{err}");
    let m: Value = serde_json::from_str(&out).unwrap();
    assert!(
        m["services"]["gateway"]["total_requests"].as_u64().unwrap() >= 1,
        "{out}"
    );
    assert!(
        m["services"]["user-service"]["total_requests"]
            .as_u64()
            .unwrap()
            >= 1,
        "{out}"
    );
    let (ok, out, _) = ctl(&admin, &["metrics"]).await;
    assert!(
        ok && out.contains("REQ/S") && out.contains("user-service-1"),
        "{out}"
    );

    // What was logged for it: the access lines of both hops, with the trace id.
    let (ok, out, err) = ctl(&admin, &["logs", "--level", "debug", "--trace", trace]).await;
    assert!(ok, "{err}");
    assert!(
        out.contains("GET /api/users/{id} → 200") && out.contains("GET /users/{id} → 200"),
        "{out}"
    );
    assert!(
        out.lines().all(|l| l.ends_with(&format!("trace={trace}"))),
        "{out}"
    );
    let (ok, _, err) = ctl(&admin, &["logs", "--level", "loud"]).await;
    assert!(
        !ok && err.contains("expected trace, debug, info, warn, error or fatal"),
        "{err}"
    );

    // Exported to an OTLP/JSON file that `--open` (and any OTLP tool) reads back.
    let file = std::env::temp_dir().join(format!("lgo-dash-export-{}.json", std::process::id()));
    let file_arg = file.to_str().unwrap();
    let (ok, _, err) = ctl(
        &admin,
        &[
            "traces",
            "export",
            "--format",
            "otlp-json",
            "--out",
            file_arg,
        ],
    )
    .await;
    assert!(ok && err.contains("lgo-dash --open"), "{err}");
    let text = std::fs::read_to_string(&file).unwrap();
    let _ = std::fs::remove_file(&file);
    let store = devcluster::telemetry::export::read_otlp_json(&text).unwrap();
    let back = store.trace(devcluster::telemetry::TraceId::parse(trace).unwrap());
    assert_eq!(back.len(), 4, "{text}");
    assert!(
        back.iter()
            .any(|s| s.service == "user-service" && s.name == "GET /users/{id}")
    );

    let (ok, _, err) = ctl(&admin, &["trace", "not-a-trace"]).await;
    assert!(
        !ok && err.contains("expected 32 (or 16) hex digits"),
        "{err}"
    );
    let (ok, _, err) = ctl(&admin, &["trace", "00000000000000000000000000000001"]).await;
    assert!(!ok && err.contains("no trace"), "{err}");
}

#[tokio::test]
async fn ctl_config_reads_sets_refuses_and_undoes_on_a_served_cluster() {
    let served = serve(&["--no-traffic", "--env", "staging"]).await;
    let admin = served.url("admin");
    let (ok, out, _) = ctl(&admin, &["config", "get", "traffic.rps"]).await;
    assert!(ok);
    assert_eq!(
        out.trim(),
        "traffic.rps = 50    (assets/config/staging.toml)"
    );

    let (ok, _, err) = ctl(&admin, &["config", "set", "traffic.rps", "lots"]).await;
    assert!(!ok, "a refused edit exits non-zero");
    assert_eq!(
        err.trim(),
        "lgo-dash: refused: traffic.rps = \"lots\": expected a whole number from 0 to 4294967295",
        "the key, the value as read and what would do"
    );

    let (ok, out, _) = ctl(&admin, &["config", "set", "retries.attempts", "5"]).await;
    assert!(ok);
    assert!(out.contains("ctl  retries.attempts: 2 → 5"), "{out}");
    let (_, out, _) = ctl(&admin, &["config", "list"]).await;
    let row = out
        .lines()
        .find(|l| l.starts_with("retries.attempts"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(row.contains('5') && row.trim_end().ends_with("kv"), "{row}");

    let (ok, out, _) = ctl(&admin, &["config", "undo"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("undo  retries.attempts: 5 → 2"), "{out}");
    let (_, out, _) = ctl(&admin, &["config", "history", "--json"]).await;
    let h: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(h.len(), 2);
}

#[tokio::test]
async fn bind_beyond_loopback_needs_a_token_and_ctl_sends_it() {
    // Refused without a token, saying which variable to set.
    let out = Command::new(BIN)
        .args(["serve", "--ports", "auto", "--bind", "0.0.0.0"])
        .env_remove("LGO_ADMIN_TOKEN")
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("LGO_ADMIN_TOKEN") && err.contains("--bind 0.0.0.0"),
        "{err}"
    );

    // With one, the admin API wants it: ctl without it is refused, with it answers.
    let served = serve_env(&["--no-traffic"], &[("LGO_ADMIN_TOKEN", "t0ken-e2e")]).await;
    let admin = served.url("admin");
    let run = |token: Option<&'static str>| {
        let admin = admin.clone();
        async move {
            let mut cmd = Command::new(BIN);
            cmd.args(["ctl", "--admin", &admin, "instances"]);
            match token {
                Some(t) => cmd.env("LGO_ADMIN_TOKEN", t),
                None => cmd.env_remove("LGO_ADMIN_TOKEN"),
            };
            let out = cmd.output().await.unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };
    let (ok, _, err) = run(None).await;
    assert!(!ok && err.contains("LGO_ADMIN_TOKEN"), "{err}");
    let (ok, _, err) = run(Some("wrong")).await;
    assert!(!ok, "{err}");
    let (ok, out, err) = run(Some("t0ken-e2e")).await;
    assert!(ok && out.contains("user-service-1"), "{out}{err}");
    drop(served);
}
