//! The API gateway: a reverse proxy on the gateway port. Each request is matched to a route,
//! its path rewritten, and sent through the gateway's service client (discovery, balancer,
//! breaker `gateway->SERVICE`, timeout, retries). Method, query, headers and body go through;
//! hop-by-hop headers are dropped; `X-Forwarded-For` is added; bodies stream both ways.

pub mod routes;

use crate::client::{Call, ServiceClient};
use crate::telemetry::http::{RouteName, ServerSpans, trace_request};
use crate::telemetry::metrics::ServerMetrics;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use routes::RouteTable;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

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

pub fn router(gw: Arc<Gateway>, metrics: Arc<ServerMetrics>) -> Router {
    Router::new()
        .fallback(proxy)
        .with_state(gw)
        .layer(axum::middleware::from_fn_with_state(
            ServerSpans::new(metrics),
            trace_request,
        ))
}

/// The gateway's name as a caller (breakers `gateway->…`) and in traces.
pub const GATEWAY: &str = "gateway";

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, axum::Json(json!({"error": msg.into()}))).into_response()
}

async fn proxy(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    let table = gw.routes();
    let matched = match table.find(parts.method.as_str(), path) {
        Ok(m) => m,
        Err(Some(route)) => {
            return error(
                StatusCode::METHOD_NOT_ALLOWED,
                format!(
                    "{} {path}: route {} allows {}",
                    parts.method,
                    route.pattern,
                    route.methods.join(", ")
                ),
            );
        }
        Err(None) => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no route for {} {path}", parts.method),
            );
        }
    };
    let path_and_query = match parts.uri.query() {
        Some(q) => format!("{}?{q}", matched.path),
        None => matched.path.clone(),
    };
    let mut headers = parts.headers;
    if let Some(peer) = peer {
        let xff = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(prev) => format!("{prev}, {}", peer.ip()),
            None => peer.ip().to_string(),
        };
        if let Ok(v) = HeaderValue::from_str(&xff) {
            headers.insert("x-forwarded-for", v);
        }
    }
    let call = Call {
        method: parts.method,
        path_and_query,
        headers,
        body: Body::new(body),
        params: matched.params,
        parent: None,
    };
    let mut resp = match gw.client.call(&matched.service, call).await {
        Ok(mut resp) => {
            crate::client::headers::strip_hop_by_hop(resp.headers_mut());
            resp.map(Body::new).into_response()
        }
        Err(e) => e.into_response(),
    };
    resp.extensions_mut().insert(RouteName(matched.route));
    resp
}
