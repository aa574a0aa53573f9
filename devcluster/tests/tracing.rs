//! Distributed tracing over real sockets: one request through the gateway to an order
//! (gateway → order-service → user-service) is one trace whose spans nest across the three
//! services with the chosen instances recorded — whether the caller sent `traceparent`, only
//! the framework's `X-Trace-ID`, or nothing (a later `traceparent` version is read by its
//! first four fields); a breaker's refusal is a span that says so.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{admin_metrics, fault_user_service, http, start};
use devcluster::breaker::Mode;
use devcluster::cluster::Cluster;
use devcluster::control::Command;
use devcluster::telemetry::{SpanId, SpanRecord, TraceFilter, TraceId};
use std::time::{Duration, Instant};

/// The trace's spans once `want` of them have closed (the last ones close just after the
/// response is written).
async fn spans(cluster: &Cluster, id: TraceId, want: usize) -> Vec<SpanRecord> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let spans = cluster.handle().trace(id).await.unwrap();
        if spans.len() >= want || Instant::now() > deadline {
            return spans;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn one<'a>(spans: &'a [SpanRecord], what: &str, f: impl Fn(&SpanRecord) -> bool) -> &'a SpanRecord {
    let found: Vec<&SpanRecord> = spans.iter().filter(|s| f(s)).collect();
    assert_eq!(found.len(), 1, "expected one {what} span in {spans:#?}");
    found[0]
}

/// Checks the seven spans of `GET /api/orders/1` nest gateway → order-service → user-service;
/// returns the gateway's server span.
fn assert_order_trace(spans: &[SpanRecord], served_by: &str) -> SpanRecord {
    assert_eq!(spans.len(), 7, "{spans:#?}");
    let gw = one(spans, "gateway server", |s| {
        s.service == "gateway" && s.name == "GET /api/orders/{id}"
    });
    let call = one(spans, "gateway call", |s| s.name == "call order-service");
    assert_eq!(
        (call.service.as_str(), call.parent_id),
        ("gateway", Some(gw.span_id))
    );
    let attempt = one(spans, "gateway attempt", |s| {
        s.name == "GET order-service" && s.parent_id == Some(call.span_id)
    });
    assert_eq!(attempt.attribute("peer.instance"), Some(served_by));
    assert_eq!(attempt.attribute("breaker"), Some("gateway->order-service"));
    assert_eq!(attempt.attribute("http.status_code"), Some("200"));

    let order = one(spans, "order-service server", |s| {
        s.service == "order-service" && s.name == "GET /orders/{id}"
    });
    assert_eq!(
        order.parent_id,
        Some(attempt.span_id),
        "the callee's parent is the caller's attempt"
    );
    assert_eq!(order.instance, served_by);
    let ucall = one(spans, "order call", |s| s.name == "call user-service");
    assert_eq!(
        (ucall.service.as_str(), ucall.parent_id),
        ("order-service", Some(order.span_id))
    );
    let uattempt = one(spans, "order attempt", |s| {
        s.parent_id == Some(ucall.span_id)
    });
    let chosen = uattempt.attribute("peer.instance").unwrap();
    assert!(chosen.starts_with("user-service-"), "{chosen}");
    let user = one(spans, "user-service server", |s| {
        s.service == "user-service"
    });
    assert_eq!(user.parent_id, Some(uattempt.span_id));
    assert_eq!(
        (user.name.as_str(), user.instance.as_str()),
        ("GET /users/{id}", chosen)
    );
    // Children start no earlier and end no later than their parents.
    for s in spans {
        if let Some(p) = spans.iter().find(|p| Some(p.span_id) == s.parent_id) {
            assert!(
                s.start_unix_ns >= p.start_unix_ns
                    && s.end_unix_ns() <= p.end_unix_ns() + 1_000_000,
                "{} inside {}",
                s.name,
                p.name
            );
        }
    }
    assert!(spans.iter().all(|s| !s.error));
    gw.clone()
}

#[tokio::test]
async fn one_request_through_three_services_is_one_nested_trace() {
    let cluster = start().await;
    let trace = TraceId::random();
    let caller = SpanId::random();
    let resp = http()
        .get(format!("{}/api/orders/1", cluster.gateway_url()))
        .header("traceparent", format!("00-{trace}-{caller}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let served_by = resp.headers()["x-served-by"].to_str().unwrap().to_string();
    let spans = spans(&cluster, trace, 7).await;
    let gw = assert_order_trace(&spans, &served_by);
    assert_eq!(
        gw.parent_id,
        Some(caller),
        "the gateway continues the caller's span"
    );

    // The trace list finds it, rooted at the gateway, through all three services.
    let list = cluster
        .handle()
        .traces(&TraceFilter {
            service: Some("user-service".into()),
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .unwrap();
    let sum = list.iter().find(|t| t.trace_id == trace).expect("listed");
    assert_eq!(sum.span_count, 7);
    assert_eq!(sum.services, ["gateway", "order-service", "user-service"]);
    cluster.shutdown().await;
}

#[tokio::test]
async fn the_frameworks_x_trace_id_alone_is_enough() {
    let cluster = start().await;
    let resp = http()
        .get(format!("{}/api/orders/1", cluster.gateway_url()))
        .header("X-Trace-ID", "1234567890abcdef")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // The id comes back as the 16 digits the caller sent.
    assert_eq!(resp.headers()["x-trace-id"], "1234567890abcdef");
    let served_by = resp.headers()["x-served-by"].to_str().unwrap().to_string();
    let trace = TraceId::parse("00000000000000001234567890abcdef").unwrap();
    let spans = spans(&cluster, trace, 7).await;
    let gw = assert_order_trace(&spans, &served_by);
    assert_eq!(
        gw.parent_id, None,
        "no X-Span-ID: the gateway span is the root"
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn no_context_starts_a_trace_and_a_refusal_is_a_span_that_says_so() {
    let cluster = start().await;
    let handle = cluster.handle();
    handle
        .send(Command::BreakerMode {
            name: "gateway->user-service".into(),
            mode: Mode::ForcedOpen,
        })
        .await
        .unwrap();
    let resp = http()
        .get(format!("{}/api/users/1", cluster.gateway_url()))
        .header("traceparent", "00-not-a-valid-header-01")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let errors = handle
        .traces(&TraceFilter {
            operation: Some("rejected by breaker gateway->user-service, forced_open".into()),
            errors_only: true,
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .unwrap();
    let newest = errors.first().expect("the refusal is in the traces");
    let spans = spans(&cluster, newest.trace_id, 3).await;
    let refused = one(&spans, "refusal", |s| {
        s.name.starts_with("rejected by breaker")
    });
    assert!(refused.error);
    assert_eq!(refused.attribute("breaker"), Some("gateway->user-service"));
    let gw = one(&spans, "gateway server", |s| {
        s.service == "gateway" && s.name == "GET /api/users/{id}"
    });
    assert_eq!(
        gw.parent_id, None,
        "an invalid traceparent starts a new trace"
    );
    assert!(gw.error && gw.attribute("http.status_code") == Some("503"));
    assert!(
        !spans.iter().any(|s| s.service == "user-service"),
        "the upstream never saw it"
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn what_the_services_logged_for_a_request_is_found_by_its_trace() {
    use devcluster::telemetry::{Level, LogFilter};
    let cluster = start().await;
    let trace = TraceId::random();
    let resp = http()
        .get(format!("{}/api/users/999", cluster.gateway_url()))
        .header("traceparent", format!("00-{trace}-{}-01", SpanId::random()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let deadline = Instant::now() + Duration::from_secs(5);
    let logs = loop {
        let logs = cluster
            .handle()
            .logs(&LogFilter {
                trace: Some(trace),
                ..Default::default()
            })
            .await
            .unwrap();
        // The gateway's access line is the last one written.
        if logs
            .iter()
            .any(|l| l.service == "gateway" && l.message.ends_with("→ 404"))
            || Instant::now() > deadline
        {
            break logs;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let not_found = logs
        .iter()
        .find(|l| l.message == "user 999 not found")
        .unwrap_or_else(|| panic!("{logs:#?}"));
    assert_eq!(not_found.level, Level::Info);
    assert_eq!(not_found.service, "user-service");
    assert!(not_found.instance.starts_with("user-service-"));
    assert!(not_found.fields.contains(&("status".into(), "404".into())));
    // The access lines of both hops, each in its own service.
    assert!(
        logs.iter()
            .any(|l| l.service == "gateway" && l.message == "GET /api/users/{id} → 404"),
        "{logs:#?}"
    );
    assert!(
        logs.iter()
            .any(|l| l.service == "user-service" && l.message == "GET /users/{id} → 404"),
        "{logs:#?}"
    );
    // The log line is also an event of the span that logged it.
    let spans = spans(&cluster, trace, 4).await;
    let user = one(&spans, "user-service server", |s| {
        s.service == "user-service"
    });
    assert!(
        user.events
            .iter()
            .any(|e| e.message == "user 999 not found")
    );
    assert_eq!(not_found.span_id, Some(user.span_id));
    cluster.shutdown().await;
}

#[tokio::test]
async fn server_spans_carry_the_config_version_they_ran_under() {
    // The only test of this binary that changes config: the version is process-wide.
    let cluster = start().await;
    let changes = cluster
        .config()
        .set("retries.attempts", "4", "test")
        .unwrap();
    let version = changes[0].version;
    let trace = TraceId::random();
    let resp = http()
        .get(format!("{}/api/orders/1", cluster.gateway_url()))
        .header("traceparent", format!("00-{trace}-{}-01", SpanId::random()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let spans = spans(&cluster, trace, 7).await;
    let servers: Vec<&SpanRecord> = spans
        .iter()
        .filter(|s| s.attribute("http.route").is_some() || s.attribute("http.target").is_some())
        .collect();
    assert!(
        servers.len() >= 3,
        "gateway, order-service, user-service: {spans:?}"
    );
    for s in servers {
        assert_eq!(
            s.attribute("config.version"),
            Some(version.to_string().as_str()),
            "{} ran under v{version}",
            s.service
        );
    }
    // The dashboard's view: each server that answered ran under this version.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let running = cluster.handle().snapshot().config.running.clone();
        if running.get("gateway") == Some(&version) {
            let users: Vec<_> = running
                .keys()
                .filter(|k| k.starts_with("user-service"))
                .collect();
            assert!(!users.is_empty(), "{running:?}");
            break;
        }
        assert!(Instant::now() < deadline, "{running:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.shutdown().await;
}

/// The framework we follow answers with `X-Trace-ID`; so does every response of the gateway and
/// of the sample services — the trace the request ran under, the one stored.
#[tokio::test]
async fn every_response_carries_the_trace_id_it_ran_under() {
    let cluster = start().await;
    let client = http();
    let trace_of = |r: &reqwest::Response| {
        let h = r
            .headers()
            .get("x-trace-id")
            .expect("X-Trace-ID on the response");
        TraceId::parse(h.to_str().unwrap()).expect("a trace id")
    };
    // Through the gateway, with no context: a new trace, the one the spans are stored under.
    let resp = client
        .get(format!("{}/api/orders/2", cluster.gateway_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let trace = trace_of(&resp);
    let stored = spans(&cluster, trace, 7).await;
    assert_eq!(stored.len(), 7, "{stored:#?}");
    assert!(stored.iter().all(|s| s.trace_id == trace));
    // With the caller's traceparent: that trace, continued.
    let given = TraceId::random();
    let resp = client
        .get(format!("{}/api/users/1", cluster.gateway_url()))
        .header("traceparent", format!("00-{given}-{}-01", SpanId::random()))
        .send()
        .await
        .unwrap();
    assert_eq!(trace_of(&resp), given);
    // Answers the gateway makes itself (no route) and a sample service called directly.
    let resp = client
        .get(format!("{}/nowhere", cluster.gateway_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let lost = trace_of(&resp);
    assert!(
        spans(&cluster, lost, 1)
            .await
            .iter()
            .any(|s| s.service == "gateway")
    );
    let user = cluster
        .registry()
        .instances()
        .into_iter()
        .find(|i| i.service == "user-service")
        .unwrap();
    let resp = client
        .get(format!("http://{}:{}/users/2", user.address, user.port))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let direct = trace_of(&resp);
    let stored = spans(&cluster, direct, 1).await;
    assert_eq!(
        (stored[0].service.as_str(), stored[0].name.as_str()),
        ("user-service", "GET /users/{id}")
    );
    cluster.shutdown().await;
}

/// A `traceparent` of a later version than 00, with fields after the four it knows, is read
/// as W3C Trace Context says: its first four fields, so the trace continues.
#[tokio::test]
async fn a_later_traceparent_version_continues_the_trace() {
    let cluster = start().await;
    let given = TraceId::random();
    let caller = SpanId::random();
    let resp = http()
        .get(format!("{}/api/orders/1", cluster.gateway_url()))
        .header("traceparent", format!("01-{given}-{caller}-01-extra"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-trace-id"], given.to_string().as_str());
    let served_by = resp.headers()["x-served-by"].to_str().unwrap().to_string();
    let stored = spans(&cluster, given, 7).await;
    let gw = assert_order_trace(&stored, &served_by);
    assert_eq!(
        gw.parent_id,
        Some(caller),
        "the caller's span is the parent"
    );
    cluster.shutdown().await;
}

/// A client that gives up before the answer (its timeout, a closed tab) still leaves a trace:
/// the gateway's span and access line, with nginx's 499, and a count in its metrics.
#[tokio::test]
async fn a_request_the_client_gave_up_on_is_recorded_as_499() {
    use devcluster::services::faults::Fault;
    use devcluster::telemetry::LogFilter;
    let cluster = start().await;
    let handle = cluster.handle();
    let slow = Fault {
        latency_ms: 3_000,
        ..Fault::default()
    };
    fault_user_service(&handle, slow).await;
    let trace = TraceId::random();
    let gave_up = http()
        .get(format!("{}/api/users/1", cluster.gateway_url()))
        .header("traceparent", format!("00-{trace}-{}-01", SpanId::random()))
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(gave_up.is_err_and(|e| e.is_timeout()));
    let deadline = Instant::now() + Duration::from_secs(5);
    let gw = loop {
        let spans = cluster.handle().trace(trace).await.unwrap();
        if let Some(gw) = spans
            .iter()
            .find(|s| s.service == "gateway" && s.parent_id.is_some())
        {
            break gw.clone();
        }
        assert!(Instant::now() < deadline, "no gateway span in {spans:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(gw.name, "GET /api/users/{id}");
    assert_eq!(gw.attribute("http.status_code"), Some("499"));
    let ms = gw.duration_ns / 1_000_000;
    assert!(
        (250..3_000).contains(&ms),
        "lasted until the client left: {ms} ms"
    );
    let logs = handle
        .logs(&LogFilter {
            trace: Some(trace),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        logs.iter()
            .any(|l| l.service == "gateway" && l.message == "GET /api/users/{id} → 499"),
        "{logs:#?}"
    );
    let metrics = admin_metrics(&cluster).await;
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("route=\"/api/users/{id}\"") && l.contains("status=\"499\"")),
        "{metrics}"
    );
    cluster.shutdown().await;
}

/// What `cluster` recorded of `trace`: its spans and its log lines, once the gateway's access
/// line is in (the last one written) or after a while.
async fn recorded(
    cluster: &Cluster,
    trace: TraceId,
) -> (Vec<SpanRecord>, Vec<devcluster::telemetry::LogRecord>) {
    use devcluster::telemetry::LogFilter;
    let filter = LogFilter {
        trace: Some(trace),
        ..Default::default()
    };
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let logs = cluster.handle().logs(&filter).await.unwrap();
        if logs.iter().any(|l| l.service == "gateway") || Instant::now() > deadline {
            return (cluster.handle().trace(trace).await.unwrap(), logs);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clusters_in_one_process_each_see_only_their_own_traces_and_logs() {
    use devcluster::telemetry::LogFilter;
    let (a, b) = tokio::join!(start(), start());
    let (trace_a, trace_b) = (TraceId::random(), TraceId::random());
    for (cluster, trace) in [(&a, trace_a), (&b, trace_b)] {
        let resp = http()
            .get(format!("{}/api/users/999", cluster.gateway_url()))
            .header("traceparent", format!("00-{trace}-{}-01", SpanId::random()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404);
    }
    let (spans_a, logs_a) = recorded(&a, trace_a).await;
    let (spans_b, logs_b) = recorded(&b, trace_b).await;
    for (name, spans, logs) in [("A", &spans_a, &logs_a), ("B", &spans_b, &logs_b)] {
        assert!(
            spans.iter().any(|s| s.service == "user-service"),
            "cluster {name} has its request's spans: {spans:#?}"
        );
        // The handler's own `tracing` event, routed by the task it ran in.
        assert!(
            logs.iter().any(|l| l.message == "user 999 not found"),
            "cluster {name} has its handler's log line: {logs:#?}"
        );
    }
    let (foreign_a, foreign_logs_a) = recorded(&a, trace_b).await;
    let (foreign_b, foreign_logs_b) = recorded(&b, trace_a).await;
    assert!(
        foreign_a.is_empty() && foreign_logs_a.is_empty(),
        "cluster A sees nothing of B's request: {foreign_a:#?} {foreign_logs_a:#?}"
    );
    assert!(
        foreign_b.is_empty() && foreign_logs_b.is_empty(),
        "cluster B sees nothing of A's request: {foreign_b:#?} {foreign_logs_b:#?}"
    );

    // A command to B: its log line ("killed", a `tracing` event of the cluster's own code)
    // is B's alone.
    b.handle().kill("user-service-2").await.unwrap();
    let killed = LogFilter {
        q: Some("killed".into()),
        ..Default::default()
    };
    let deadline = Instant::now() + Duration::from_secs(3);
    while b.handle().logs(&killed).await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "B logged the kill");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        a.handle().logs(&killed).await.unwrap(),
        vec![],
        "A did not see B's kill"
    );
    tokio::join!(a.shutdown(), b.shutdown());
}
