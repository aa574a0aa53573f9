//! Two faults at once, as a user tried it: user-service-2 killed and restarted over and over
//! while user-service-3 fails 30 % of its calls, under steady concurrent traffic through the
//! gateway. Each fault alone is an instance's problem; together they must still not fail one
//! idempotent request, and the service's breaker must stay closed while an instance is healthy —
//! then open and fail fast once every instance fails. (`devcluster/benches/compound-faults.sh`
//! runs the same for a minute under wrk.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{admin_metrics, fresh, http, start};
use devcluster::breaker::State;
use devcluster::control::Command;
use devcluster::services::faults::Fault;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// How long the faults run in CI (the script runs a minute).
const FAULT_SECS: u64 = 12;

fn fault(error_rate: f64) -> Command {
    Command::Fault {
        id: String::new(),
        fault: Fault {
            error_rate,
            ..Fault::default()
        },
        for_s: None,
    }
}

fn on(id: &str, mut c: Command) -> Command {
    if let Command::Fault { id: i, .. } = &mut c {
        *i = id.to_string();
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_faults_at_once_fail_no_request_and_every_instance_failing_opens_the_breaker() {
    let cluster = start().await;
    let handle = cluster.handle();
    let gw = cluster.gateway_url();
    handle.send(on("user-service-3", fault(0.3))).await.unwrap();

    // Load: 8 loops of GETs, each counting what it got.
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let last_failure = Arc::new(std::sync::Mutex::new(String::new()));
    let mut loops = Vec::new();
    for n in 0..8u64 {
        let (stop, sent, failed, last, gw) = (
            stop.clone(),
            sent.clone(),
            failed.clone(),
            last_failure.clone(),
            gw.clone(),
        );
        loops.push(tokio::spawn(async move {
            let client = http();
            let mut i = n;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let url = format!("{gw}/api/users/{}", i % 5 + 1);
                sent.fetch_add(1, Ordering::Relaxed);
                match client.get(&url).send().await {
                    Ok(r) if r.status().is_success() => {}
                    Ok(r) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        *last.lock().unwrap() = format!("{url}: {}", r.status());
                    }
                    Err(e) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        *last.lock().unwrap() = format!("{url}: {e}");
                    }
                }
            }
        }));
    }
    // The other fault: user-service-2 down half of every second.
    let end = tokio::time::Instant::now() + Duration::from_secs(FAULT_SECS);
    while tokio::time::Instant::now() < end {
        handle.kill("user-service-2").await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        handle.restart("user-service-2").await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for l in loops {
        l.await.unwrap();
    }
    let (sent, failed) = (sent.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(sent > 1000, "the load ran: {sent} requests");
    assert_eq!(
        failed,
        0,
        "{failed} of {sent} failed, the last: {}",
        last_failure.lock().unwrap()
    );
    let breaker = |snap: &devcluster::handle::ClusterSnapshot| {
        snap.breakers
            .iter()
            .find(|b| b.name == "gateway->user-service")
            .cloned()
            .unwrap()
    };
    let b = breaker(&*fresh(&handle).await);
    assert!(
        b.transitions.is_empty() && b.state == State::Closed,
        "the breaker stayed closed while instances were healthy: {b:?}"
    );
    // The instances did see the faults (the retries hid them from the caller).
    let metrics = admin_metrics(&cluster).await;
    assert!(
        metrics.contains("instance=\"user-service-3\",outcome=\"5xx\""),
        "user-service-3 answered 500s"
    );
    assert!(
        metrics.contains("instance=\"user-service-2\",outcome=\"connect_error\""),
        "user-service-2 refused connections"
    );

    // Now every instance fails: the breaker opens and the gateway fails fast.
    handle.restart("user-service-2").await.ok();
    for id in ["user-service-1", "user-service-2", "user-service-3"] {
        handle.send(on(id, fault(1.0))).await.unwrap();
    }
    // The 10 s window still holds the successes of the last seconds: it opens once the
    // failures are half of it, within about half the window.
    let client = http();
    let started = tokio::time::Instant::now();
    let mut calls = 0;
    let opened = loop {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the breaker did not open in 15 s ({calls} failing calls)"
        );
        calls += 1;
        let r = client
            .get(format!("{gw}/api/users/{}", calls % 5 + 1))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_server_error(), "{}", r.status());
        let body: serde_json::Value = r.json().await.unwrap_or_default();
        if body["breaker"] == "gateway->user-service" {
            break started.elapsed();
        }
    };
    assert!(
        opened >= Duration::from_secs(2),
        "{opened:?}: not on the first failures"
    );
    let b = breaker(&*fresh(&handle).await);
    assert_eq!(b.state, State::Open, "{b:?}");
    assert!(
        b.transitions.last().unwrap().reason.contains("≥ 50% over"),
        "{:?}",
        b.transitions
    );
    cluster.shutdown().await;
}
