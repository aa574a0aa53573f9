//! HTTP and gRPC health checks: one task per check, polling the instance like a Consul agent
//! does.

use super::model::{CheckKind, CheckSpec, Health};
use super::store::{Inner, record_check};
use std::sync::Weak;
use std::time::Duration;

/// How much of an HTTP check's answer its output keeps (Consul's default).
const OUTPUT_MAX: usize = 4096;

/// Runs `spec` (an HTTP check) until the instance is deregistered or the registry dropped.
/// The first probe runs at once so a fresh instance turns passing without waiting an interval.
pub(crate) async fn run_http_check(inner: Weak<Inner>, instance_id: String, spec: CheckSpec) {
    let CheckKind::Http {
        url,
        method,
        interval,
        timeout,
        headers,
        body,
    } = spec.kind.clone()
    else {
        return;
    };
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(client) = inner.upgrade().map(|i| i.http.clone()) else {
            return;
        };
        let (status, output) = probe(&client, &method, &url, timeout, &headers, &body).await;
        let Some(inner) = inner.upgrade() else { return };
        if !record_check(&inner, &instance_id, &spec.id, status, output) {
            return;
        }
    }
}

async fn probe(
    client: &reqwest::Client,
    method: &reqwest::Method,
    url: &str,
    timeout: Duration,
    headers: &[(String, String)],
    body: &str,
) -> (Health, String) {
    let mut req = client.request(method.clone(), url).timeout(timeout);
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    if !body.is_empty() {
        req = req.body(body.to_string());
    }
    match req.send().await {
        Ok(mut resp) => {
            let code = resp.status();
            let health = if code.is_success() {
                Health::Passing
            } else if code.as_u16() == 429 {
                Health::Warning
            } else {
                Health::Critical
            };
            // As a Consul agent reports it: the status, then what the service answered (its
            // first 4 KiB, Consul's default output size).
            let mut answer = Vec::new();
            while answer.len() < OUTPUT_MAX
                && let Ok(Some(chunk)) = resp.chunk().await
            {
                answer.extend_from_slice(&chunk);
            }
            answer.truncate(OUTPUT_MAX);
            let answer = String::from_utf8_lossy(&answer);
            (
                health,
                format!("HTTP {method} {url}: {code} Output: {answer}"),
            )
        }
        Err(e) if e.is_timeout() => (
            Health::Critical,
            format!("HTTP {method} {url}: timed out after {timeout:?}"),
        ),
        Err(e) if e.is_connect() => (
            Health::Critical,
            format!("HTTP {method} {url}: connect: {}", root_cause(&e)),
        ),
        Err(e) => (
            Health::Critical,
            format!("HTTP {method} {url}: {}", root_cause(&e)),
        ),
    }
}

/// Runs `spec` (a TCP check) like [`run_http_check`]: a connection opened within the timeout
/// is passing (and closed at once), as a Consul agent's TCP check.
pub(crate) async fn run_tcp_check(inner: Weak<Inner>, instance_id: String, spec: CheckSpec) {
    let CheckKind::Tcp {
        addr,
        interval,
        timeout,
    } = spec.kind.clone()
    else {
        return;
    };
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (status, output) =
            match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addr)).await {
                Ok(Ok(_)) => (Health::Passing, format!("TCP connect {addr}: Success")),
                Ok(Err(e)) => (Health::Critical, format!("dial tcp {addr}: {e}")),
                Err(_) => (
                    Health::Critical,
                    format!("dial tcp {addr}: i/o timeout after {timeout:?}"),
                ),
            };
        let Some(inner) = inner.upgrade() else { return };
        if !record_check(&inner, &instance_id, &spec.id, status, output) {
            return;
        }
    }
}

/// Runs `spec` (a gRPC check) like [`run_http_check`]. One lazily connected channel per check:
/// it reconnects by itself after the instance comes back, and a healthy instance costs one
/// HTTP/2 stream per interval, not a connection.
pub(crate) async fn run_grpc_check(inner: Weak<Inner>, instance_id: String, spec: CheckSpec) {
    let CheckKind::Grpc {
        addr,
        service,
        interval,
        timeout,
    } = spec.kind.clone()
    else {
        return;
    };
    let target = CheckKind::grpc_target(&addr, &service);
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map(|e| e.connect_timeout(timeout).timeout(timeout).connect_lazy());
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (status, output) = match &channel {
            Ok(ch) => grpc_probe(ch.clone(), &service, &target, timeout).await,
            Err(e) => (
                Health::Critical,
                format!("gRPC check {target}: invalid address: {e}"),
            ),
        };
        let Some(inner) = inner.upgrade() else { return };
        if !record_check(&inner, &instance_id, &spec.id, status, output) {
            return;
        }
    }
}

async fn grpc_probe(
    channel: tonic::transport::Channel,
    service: &str,
    target: &str,
    timeout: Duration,
) -> (Health, String) {
    use tonic_health::pb::health_check_response::ServingStatus;
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
    let request = tonic_health::pb::HealthCheckRequest {
        service: service.to_string(),
    };
    // The channel's timeout covers the call; this one also covers a connect that hangs.
    match tokio::time::timeout(timeout, client.check(request)).await {
        Ok(Ok(resp)) => match resp.into_inner().status() {
            ServingStatus::Serving => (Health::Passing, format!("gRPC check {target}: success")),
            other => (
                Health::Critical,
                format!("gRPC check {target}: status {}", other.as_str_name()),
            ),
        },
        Ok(Err(status)) => (
            Health::Critical,
            format!(
                "gRPC check {target}: {:?}: {}",
                status.code(),
                root_cause(&status)
            ),
        ),
        Err(_) => (
            Health::Critical,
            format!("gRPC check {target}: timed out after {timeout:?}"),
        ),
    }
}

/// The innermost error: "Connection refused (os error 111)" rather than reqwest's wrapping.
fn root_cause(e: &dyn std::error::Error) -> String {
    let mut last = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        last = inner.to_string();
        src = inner.source();
    }
    last
}
