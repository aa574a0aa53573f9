//! The API gateway: a reverse proxy on the gateway port. Each request is matched to a route,
//! its path rewritten, and sent through the gateway's service client (breaker
//! `gateway->SERVICE`, retries, balancer, timeout, pooled connection). Method, query, headers
//! and body go through; hop-by-hop headers are dropped; `X-Forwarded-For` is added; bodies
//! stream both ways; every answer carries `X-Trace-ID`.
//!
//! Its connections are served by [`crate::server::h1`], not hyper and an axum router: it has one
//! handler, and its request span, metrics and access line are written here in line with the
//! proxying.

pub mod routes;

use crate::client::http1::Forwarded;
use crate::client::pool::PooledBody;
use crate::client::{Call, CallError, ServiceClient};
use crate::server::Connections;
use crate::server::h1::{self, Inbound};
use crate::telemetry::clock;
use crate::telemetry::context::trace_hex;
use crate::telemetry::http::{Served, trace_header};
use crate::telemetry::metrics::ServerMetrics;
use crate::telemetry::names::Name;
use crate::telemetry::path::Scope;
use axum::body::Body;
use http::{HeaderValue, StatusCode};
use hyper::body::{Body as HttpBody, Bytes, Frame, SizeHint};
use routes::{Matched, RouteTable};
use serde_json::json;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use tokio::net::TcpStream;
use tokio::sync::watch;

pub struct Gateway {
    pub client: Arc<ServiceClient>,
    routes: RwLock<Arc<RouteTable>>,
}

impl Gateway {
    pub fn new(client: Arc<ServiceClient>, routes: RouteTable) -> Arc<Gateway> {
        Arc::new(Gateway {
            client,
            routes: RwLock::new(Arc::new(routes)),
        })
    }

    pub fn routes(&self) -> Arc<RouteTable> {
        self.routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_routes(&self, t: RouteTable) {
        *self.routes.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(t);
    }
}

/// The gateway's name as a caller (breakers `gateway->…`) and in traces.
pub const GATEWAY: &str = "gateway";

/// What the gateway answers with: the upstream's body as it streams in, or its own JSON.
pub enum GatewayBody {
    Upstream(PooledBody),
    Full(Option<Bytes>),
}

impl HttpBody for GatewayBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.get_mut() {
            GatewayBody::Upstream(b) => Pin::new(b).poll_frame(cx),
            GatewayBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            GatewayBody::Upstream(b) => b.is_end_stream(),
            GatewayBody::Full(b) => b.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            GatewayBody::Upstream(b) => b.size_hint(),
            GatewayBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
        }
    }
}

type Answer = http::Response<GatewayBody>;

fn error(status: StatusCode, body: serde_json::Value) -> Answer {
    let mut r = http::Response::new(GatewayBody::Full(Some(Bytes::from(body.to_string()))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// The gateway's connections: each request proxied by [`Gateway::handle`].
pub struct GatewayConnections {
    gateway: Arc<Gateway>,
    metrics: Arc<ServerMetrics>,
    service: Name,
}

pub fn connections(gateway: Arc<Gateway>, metrics: Arc<ServerMetrics>) -> Arc<dyn Connections> {
    Arc::new(GatewayConnections {
        service: Name::of(GATEWAY),
        gateway,
        metrics,
    })
}

/// The client of a connection.
#[derive(Clone)]
struct Peer {
    /// Its address as added to `X-Forwarded-For`.
    xff: Option<HeaderValue>,
}

impl Connections for GatewayConnections {
    fn serve(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        stop: watch::Receiver<bool>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let handler = Requests {
            gateway: self.gateway.clone(),
            metrics: self.metrics.clone(),
            service: self.service,
            // The peer's X-Forwarded-For value, made once per connection.
            peer: Peer {
                xff: HeaderValue::from_str(&peer.ip().to_string()).ok(),
            },
        };
        // A request reads the time at a dozen places within microseconds: once per poll does.
        Box::pin(clock::clocked(h1::serve(stream, stop, handler)))
    }
}

/// One connection's requests, each proxied by [`Gateway::handle`].
struct Requests {
    gateway: Arc<Gateway>,
    metrics: Arc<ServerMetrics>,
    service: Name,
    peer: Peer,
}

impl h1::Handler for Requests {
    type Body = GatewayBody;

    fn forwarded(body: &mut GatewayBody) -> Option<Box<Forwarded>> {
        match body {
            GatewayBody::Upstream(b) => b.forwarded.take(),
            GatewayBody::Full(_) => None,
        }
    }

    fn call(
        &self,
        req: http::Request<Inbound>,
    ) -> impl Future<Output = http::Response<GatewayBody>> + Send + '_ {
        self.gateway
            .handle(&self.metrics, self.service, &self.peer, req)
    }
}

impl Gateway {
    /// One request: its span (continuing the caller's trace), the route, the call through the
    /// gateway's client, the metrics and access line, `X-Trace-ID` on the answer.
    ///
    /// The service call is awaited at one place, in this function: the call's state is most of
    /// a request's, and a future awaited in a nested function is copied into its caller's.
    async fn handle(
        &self,
        metrics: &ServerMetrics,
        service: Name,
        peer: &Peer,
        req: http::Request<Inbound>,
    ) -> Answer {
        let (parts, body) = req.into_parts();
        let routed = self.route(&parts);
        // Probes and scrapers are neither traced nor counted (no route serves them anyway).
        let probe = matches!(parts.uri.path(), "/health" | "/metrics");
        let mut served = match (&routed, probe) {
            (_, true) => None,
            (routed, false) => {
                let route = routed.as_ref().ok().map(|m| m.route.clone());
                let head = (&parts.method, &parts.uri, &parts.headers);
                Some(Served::begin(metrics, (service, service), head, route))
            }
        };
        let mut resp = match routed {
            Ok(m) => {
                let scope = served.as_ref().map(Served::scope);
                let (target, call) = prepare(parts, body, peer, m, scope);
                match self.client.call(&target, call).await {
                    // The header map is empty: the upstream's lines are in the body's
                    // `forwarded`, hop-by-hop ones left out.
                    Ok(resp) => resp.map(GatewayBody::Upstream),
                    Err(e) => answer_error(&e),
                }
            }
            Err((status, msg)) => error(status, json!({"error": msg})),
        };
        if let Some(served) = served.as_mut() {
            served.finish(resp.status().as_u16(), Vec::new());
            match resp.body_mut() {
                // With the upstream's lines, which have room for it: no header map to make.
                GatewayBody::Upstream(PooledBody {
                    forwarded: Some(f), ..
                }) => f.add(b"x-trace-id", &trace_hex(served.ctx.trace_id)),
                _ => trace_header(&mut resp, served.ctx.trace_id),
            }
        }
        resp
    }

    /// The route for a request, or why none serves it.
    fn route(&self, parts: &http::request::Parts) -> Result<Matched, (StatusCode, String)> {
        let path = parts.uri.path();
        match self.routes().find(parts.method.as_str(), path) {
            Ok(m) => Ok(m),
            Err(Some(route)) => {
                let msg = format!(
                    "{} {path}: route {} allows {}",
                    parts.method,
                    route.pattern,
                    route.methods.join(", ")
                );
                Err((StatusCode::METHOD_NOT_ALLOWED, msg))
            }
            Err(None) => {
                let msg = format!("no route for {} {path}", parts.method);
                Err((StatusCode::NOT_FOUND, msg))
            }
        }
    }
}

/// The call a routed request becomes, and the service it goes to: the path rewritten, the
/// client's address added to `X-Forwarded-For`.
fn prepare(
    parts: http::request::Parts,
    body: Inbound,
    peer: &Peer,
    matched: Matched,
    scope: Option<Scope>,
) -> (Arc<str>, Call) {
    let path_and_query = match parts.uri.query() {
        Some(q) => format!("{}?{q}", matched.path),
        None => matched.path,
    };
    let call = Call {
        method: parts.method,
        path_and_query,
        headers: parts.headers,
        // A request without a body (most GETs) costs no boxed stream.
        body: if body.is_end_stream() {
            Body::empty()
        } else {
            Body::new(body)
        },
        params: matched.params,
        parent: scope,
        // The answer's header lines go back to the client as the instance wrote them.
        forward: true,
        // Added to what X-Forwarded-For says as the request is written, not to the map.
        forwarded_for: peer.xff.clone(),
        grpc: false,
        idempotent: None,
    };
    (matched.service, call)
}

fn answer_error(e: &CallError) -> Answer {
    error(e.status(), e.body())
}
