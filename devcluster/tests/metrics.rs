//! `/metrics` over real sockets: each instance's own and the admin port's parse with a strict
//! OpenMetrics parser (`openmetrics-parser`, which passes the OpenMetrics test suite), and their
//! counts match the requests sent; probes are not counted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{http, start};
use devcluster::control::Command;
use devcluster::services::faults::Fault;
use openmetrics_parser::{MetricsExposition, OpenMetricsType, OpenMetricsValue};
use std::time::{Duration, Instant};

type Exposition = MetricsExposition<OpenMetricsType, OpenMetricsValue>;

async fn scrape(url: &str) -> Exposition {
    let resp = http().get(url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    let text = resp.text().await.unwrap();
    openmetrics_parser::openmetrics::parse_openmetrics(&text)
        .unwrap_or_else(|e| panic!("invalid exposition ({e}):\n{text}"))
}

/// The sum over a family's samples whose labels include all of `labels` (a histogram counts
/// its observations).
fn sum(e: &Exposition, family: &str, labels: &[(&str, &str)]) -> f64 {
    let Some(f) = e.families.get(family) else {
        return 0.0;
    };
    f.iter_samples()
        .filter(|s| {
            let set = s.get_labelset().unwrap();
            labels
                .iter()
                .all(|(k, v)| set.get_label_value(k) == Some(*v))
        })
        .map(|s| match &s.value {
            OpenMetricsValue::Counter(c) => c.value.as_f64(),
            OpenMetricsValue::Gauge(g) | OpenMetricsValue::Unknown(g) => g.as_f64(),
            OpenMetricsValue::Histogram(h) => h.count.unwrap_or(0) as f64,
            other => panic!("unexpected {other:?}"),
        })
        .sum()
}

#[tokio::test]
async fn an_instances_metrics_count_its_requests_by_route_and_status() {
    let cluster = start().await;
    let inst = cluster.registry().instance("user-service-1").unwrap();
    let base = inst.base_url();
    for _ in 0..7 {
        assert_eq!(
            http()
                .get(format!("{base}/users/1"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    for _ in 0..2 {
        assert_eq!(
            http()
                .get(format!("{base}/users/999"))
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
    }
    cluster
        .handle()
        .send(Command::Fault {
            id: "user-service-1".into(),
            fault: Fault {
                error_rate: 1.0,
                ..Default::default()
            },
            for_s: None,
        })
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(
            http()
                .get(format!("{base}/users/1"))
                .send()
                .await
                .unwrap()
                .status(),
            500
        );
    }
    let m = scrape(&format!("{base}/metrics")).await;
    let req = "http_server_requests";
    let route = ("route", "/users/{id}");
    assert_eq!(
        sum(&m, req, &[route, ("method", "GET"), ("status", "200")]),
        7.0
    );
    assert_eq!(sum(&m, req, &[route, ("status", "404")]), 2.0);
    assert_eq!(sum(&m, req, &[route, ("status", "500")]), 3.0);
    assert_eq!(sum(&m, "http_server_errors", &[route]), 3.0);
    assert_eq!(
        sum(&m, "http_server_request_duration_seconds", &[route]),
        12.0
    );
    assert_eq!(sum(&m, "http_server_in_flight", &[]), 0.0);
    assert_eq!(
        sum(&m, req, &[("route", "/health")]),
        0.0,
        "health probes are not counted"
    );
    assert!(sum(&m, req, &[]) == 12.0, "nothing else was counted either");
    // Another instance counted nothing of this.
    let other = cluster.registry().instance("user-service-2").unwrap();
    let m2 = scrape(&format!("{}/metrics", other.base_url())).await;
    assert_eq!(sum(&m2, req, &[route]), 0.0);
    cluster.shutdown().await;
}

#[tokio::test]
async fn the_admin_metrics_count_the_gateway_and_the_client_side() {
    let cluster = start().await;
    for _ in 0..5 {
        let r = http()
            .get(format!("{}/api/users/2", cluster.gateway_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = http()
        .get(format!("{}/nowhere/at/all", cluster.gateway_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let m = scrape(&format!("{}/metrics", cluster.admin_url())).await;
    let gw = |route, status| {
        sum(
            &m,
            "http_server_requests",
            &[("route", route), ("status", status)],
        )
    };
    assert_eq!(gw("/api/users/{id}", "200"), 5.0);
    assert_eq!(gw("unmatched", "404"), 1.0, "junk paths share one label");
    // The cluster's own tasks (servers, sampler, publisher, health checks) are alive.
    let tasks = sum(&m, "process_tokio_tasks", &[]);
    assert!(tasks >= 1.0, "process_tokio_tasks {tasks}");
    let calls = sum(
        &m,
        "http_client_requests",
        &[
            ("caller", "gateway"),
            ("target", "user-service"),
            ("outcome", "ok"),
        ],
    );
    assert_eq!(calls, 5.0);
    assert_eq!(
        sum(
            &m,
            "http_client_request_duration_seconds",
            &[("caller", "gateway")]
        ),
        5.0
    );
    // The dashboard's view of the same requests.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let snap = cluster.handle().snapshot();
        let total = snap
            .metrics
            .services
            .get("gateway")
            .map_or(0, |s| s.total_requests);
        if total == 6 {
            assert_eq!(snap.metrics.services["user-service"].total_requests, 5);
            let route = |service: &str, route: &str| {
                snap.metrics
                    .routes
                    .iter()
                    .find(|r| r.service == service && r.route == route)
                    .map(|r| (r.series.total_requests, r.series.total_errors))
            };
            assert_eq!(route("gateway", "/api/users/{id}"), Some((5, 0)));
            assert_eq!(route("gateway", "unmatched"), Some((1, 0)));
            assert_eq!(route("user-service", "/users/{id}"), Some((5, 0)));
            let calls: Vec<_> = snap
                .metrics
                .calls
                .iter()
                .map(|c| {
                    (
                        c.caller.as_str(),
                        c.target.as_str(),
                        c.series.total_requests,
                    )
                })
                .collect();
            assert_eq!(calls, [("gateway", "user-service", 5)], "the client side");
            break;
        }
        assert!(Instant::now() < deadline, "snapshot gateway total {total}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.shutdown().await;
}
