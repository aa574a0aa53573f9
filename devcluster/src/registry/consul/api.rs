//! The HTTP routes. Reads answer with Consul's field names and headers; writes answer 200 with an
//! empty body as Consul does; bad input is a 400 with a JSON `{"error": ...}` body.

use super::blocking::{Blocking, flag};
use super::wire::{
    DATACENTER, NODE, NODE_ID, agent_service_json, catalog_service_json, check_json,
    parse_registration, service_entry_json,
};
use crate::config::kv::KvStore;
use crate::registry::{Health, Registry, RegistryError};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

type Params = Query<HashMap<String, String>>;

/// The registry's Consul-compatible routes (mounted at the root of the registry port), the
/// config center's KV endpoints among them.
pub fn router(reg: Registry, kv: KvStore) -> Router {
    Router::new()
        .route("/v1/agent/service/register", put(register))
        .route("/v1/agent/service/deregister/{id}", put(deregister))
        .route("/v1/agent/check/{action}/{*check_id}", put(check_update))
        .route("/v1/agent/services", get(agent_services))
        .route("/v1/agent/checks", get(agent_checks))
        .route("/v1/agent/self", get(agent_self))
        .route("/v1/catalog/services", get(catalog_services))
        .route("/v1/catalog/service/{name}", get(catalog_service))
        .route("/v1/health/service/{name}", get(health_service))
        .route(
            "/v1/status/leader",
            get(|| async { axum::Json("127.0.0.1:8300") }),
        )
        .route(
            "/v1/status/peers",
            get(|| async { axum::Json(["127.0.0.1:8300"]) }),
        )
        .with_state(reg)
        .merge(super::kv::routes(kv))
        .fallback(not_found)
        .layer(axum::middleware::map_response(
            crate::server::refusals::json_refusals,
        ))
}

pub(crate) fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    crate::server::refusals::json_error(status, msg)
}

fn registry_error(e: RegistryError) -> Response {
    let status = match e {
        RegistryError::UnknownService(_) | RegistryError::UnknownCheck(_) => StatusCode::NOT_FOUND,
        // Consul answers 500 here, and Spring Cloud Consul re-registers on exactly that.
        RegistryError::NotTtl(_) => StatusCode::INTERNAL_SERVER_ERROR,
        RegistryError::Invalid(_) => StatusCode::BAD_REQUEST,
    };
    error(status, e.to_string())
}

/// A read answer with the headers blocking clients need (`X-Consul-Index` on every read).
fn indexed(reg: &Registry, body: Value) -> Response {
    let mut resp = axum::Json(body).into_response();
    let h = resp.headers_mut();
    h.insert("X-Consul-Index", HeaderValue::from(reg.index()));
    h.insert("X-Consul-KnownLeader", HeaderValue::from_static("true"));
    h.insert("X-Consul-LastContact", HeaderValue::from_static("0"));
    resp
}

fn empty_ok() -> Response {
    (StatusCode::OK, [(header::CONTENT_LENGTH, "0")]).into_response()
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no such endpoint in the lgo-dash registry",
    )
}

async fn register(State(reg): State<Registry>, body: Bytes) -> Response {
    let r = match parse_registration(&body) {
        Ok(r) => r,
        Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
    };
    match reg.register(r) {
        Ok(view) => {
            tracing::info!(instance = %view.id, service = %view.service, port = view.port, "registered via Consul API");
            empty_ok()
        }
        Err(e) => registry_error(e),
    }
}

async fn deregister(State(reg): State<Registry>, Path(id): Path<String>) -> Response {
    match reg.deregister(&id) {
        Ok(()) => empty_ok(),
        Err(e) => registry_error(e),
    }
}

async fn check_update(
    State(reg): State<Registry>,
    Path((action, check_id)): Path<(String, String)>,
    Query(q): Params,
    body: Bytes,
) -> Response {
    let note = q.get("note").cloned().unwrap_or_default();
    let (status, output) = match action.as_str() {
        "pass" => (Health::Passing, note),
        "warn" => (Health::Warning, note),
        "fail" => (Health::Critical, note),
        "update" => {
            let v: Value = match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!("Request decode failed: {e}"),
                    );
                }
            };
            let field = |name: &str| {
                v.as_object()
                    .and_then(|m| m.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
                    .and_then(|(_, v)| v.as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            let s = field("status");
            let Some(h) = Health::parse(&s) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("Status: expected passing, warning or critical, got \"{s}\""),
                );
            };
            (h, field("output"))
        }
        other => {
            return error(
                StatusCode::NOT_FOUND,
                format!("unknown check action \"{other}\" (use pass, warn, fail or update)"),
            );
        }
    };
    match reg.update_ttl(&check_id, status, &output) {
        Ok(()) => empty_ok(),
        Err(e) => registry_error(e),
    }
}

async fn agent_services(State(reg): State<Registry>) -> Response {
    let m: Map<String, Value> = reg
        .instances()
        .iter()
        .map(|i| (i.id.clone(), agent_service_json(i)))
        .collect();
    axum::Json(Value::Object(m)).into_response()
}

async fn agent_checks(State(reg): State<Registry>) -> Response {
    let m: Map<String, Value> = reg
        .instances()
        .iter()
        .flat_map(|i| {
            i.checks
                .iter()
                .map(move |c| (c.id.clone(), check_json(i, c)))
        })
        .collect();
    axum::Json(Value::Object(m)).into_response()
}

async fn agent_self() -> Response {
    axum::Json(json!({
        "Config": {"Datacenter": DATACENTER, "NodeName": NODE, "NodeID": NODE_ID, "Server": true,
                   "Version": "1.20.0-lgo-dash"},
        "Member": {"Name": NODE, "Addr": "127.0.0.1", "Port": 8301, "Status": 1},
        "Meta": {},
    }))
    .into_response()
}

async fn catalog_services(State(reg): State<Registry>, Query(q): Params) -> Response {
    let b = match Blocking::from_query(&q) {
        Ok(b) => b,
        Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
    };
    b.wait_for(&reg).await;
    let m: Map<String, Value> = reg
        .services()
        .into_iter()
        .map(|(k, v)| (k, json!(v)))
        .collect();
    indexed(&reg, Value::Object(m))
}

async fn catalog_service(
    State(reg): State<Registry>,
    Path(name): Path<String>,
    Query(q): Params,
) -> Response {
    let b = match Blocking::from_query(&q) {
        Ok(b) => b,
        Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
    };
    b.wait_for(&reg).await;
    let tag = q.get("tag");
    let list: Vec<Value> = reg
        .service(&name, false)
        .iter()
        .filter(|i| tag.is_none_or(|t| i.tags.contains(t)))
        .map(catalog_service_json)
        .collect();
    indexed(&reg, Value::Array(list))
}

async fn health_service(
    State(reg): State<Registry>,
    Path(name): Path<String>,
    Query(q): Params,
) -> Response {
    let (b, passing) = match Blocking::from_query(&q).and_then(|b| Ok((b, flag(&q, "passing")?))) {
        Ok(x) => x,
        Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
    };
    b.wait_for(&reg).await;
    let tag = q.get("tag");
    let list: Vec<Value> = reg
        .service(&name, passing)
        .iter()
        .filter(|i| tag.is_none_or(|t| i.tags.contains(t)))
        .map(service_entry_json)
        .collect();
    indexed(&reg, Value::Array(list))
}
