//! The HTTP routes. Reads answer with Consul's field names and headers; writes answer 200 with an
//! empty body as Consul does; bad input is a 400 with a JSON `{"error": ...}` body.

use super::blocking::{Blocking, flag};
use super::filter::Expr;
use super::wire::{
    DATACENTER, NODE, NODE_ID, agent_service_json, catalog_service_json, check_json, node_json,
    parse_check_registration, parse_registration, service_entry_json,
};
use crate::config::kv::KvStore;
use crate::registry::{Health, InstanceView, Registry, RegistryError};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, RawQuery, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
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
        .route("/v1/agent/check/register", put(check_register))
        .route(
            "/v1/agent/check/deregister/{*check_id}",
            put(check_deregister),
        )
        .route("/v1/agent/check/{action}/{*check_id}", put(check_update))
        .route("/v1/agent/services", get(agent_services))
        .route("/v1/agent/service/{id}", get(agent_service))
        .route("/v1/agent/checks", get(agent_checks))
        .route("/v1/agent/self", get(agent_self))
        .route("/v1/agent/members", get(agent_members))
        .route("/v1/agent/health/service/id/{id}", get(agent_health_by_id))
        .route(
            "/v1/agent/health/service/name/{name}",
            get(agent_health_by_name),
        )
        .route("/v1/catalog/services", get(catalog_services))
        .route("/v1/catalog/service/{name}", get(catalog_service))
        .route(
            "/v1/catalog/datacenters",
            get(|| async { axum::Json([DATACENTER]) }),
        )
        .route("/v1/catalog/nodes", get(catalog_nodes))
        .route("/v1/catalog/node/{node}", get(catalog_node))
        .route("/v1/health/service/{name}", get(health_service))
        .route("/v1/health/checks/{service}", get(health_checks))
        .route("/v1/health/state/{state}", get(health_state))
        .route("/v1/health/node/{node}", get(health_node))
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
        .layer(axum::middleware::from_fn(one_datacenter))
        .layer(axum::middleware::map_response(
            crate::server::refusals::json_refusals,
        ))
}

/// The embedded registry is Consul community edition with one datacenter: `?ns=` and
/// `?partition=` are refused as Consul CE refuses them, and another `?dc=` has no path (served
/// locally, a write meant for elsewhere would land here).
async fn one_datacenter(req: Request, next: Next) -> Response {
    let pairs = pairs(req.uri().query());
    for (k, v) in &pairs {
        match k.as_str() {
            "ns" if !v.is_empty() => {
                return error(
                    StatusCode::BAD_REQUEST,
                    r#"Invalid query parameter: "ns" - Namespaces are a Consul Enterprise feature"#,
                );
            }
            "partition" if !v.is_empty() => {
                return error(
                    StatusCode::BAD_REQUEST,
                    r#"Invalid query parameter: "partition" - Partitions are a Consul Enterprise feature"#,
                );
            }
            "dc" if !v.is_empty() && !v.eq_ignore_ascii_case(DATACENTER) => {
                return error(StatusCode::INTERNAL_SERVER_ERROR, "No path to datacenter");
            }
            _ => {}
        }
    }
    next.run(req).await
}

fn pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
        .unwrap_or_default()
}

/// What the catalog and health reads take: blocking, `?filter=`, `?tag=` (each one required,
/// compared without case as Consul does), `?node-meta=key:value`, `?passing`.
struct ReadQuery {
    blocking: Blocking,
    filter: Option<Expr>,
    tags: Vec<String>,
    node_meta: Vec<(String, String)>,
    passing: bool,
}

impl ReadQuery {
    fn parse(raw: Option<&str>) -> Result<ReadQuery, String> {
        let pairs = pairs(raw);
        let last: HashMap<String, String> = pairs.iter().cloned().collect();
        let blocking = Blocking::from_query(&last)?;
        let passing = flag(&last, "passing")?;
        let filter = match last.get("filter").map(String::as_str) {
            None | Some("") => None,
            Some(f) => Some(
                Expr::parse(f)
                    .map_err(|e| format!("Failed to create boolean expression evaluator: {e}"))?,
            ),
        };
        fn all<'a>(
            pairs: &'a [(String, String)],
            name: &'a str,
        ) -> impl Iterator<Item = &'a String> {
            pairs.iter().filter(move |(k, _)| k == name).map(|(_, v)| v)
        }
        let node_meta = all(&pairs, "node-meta")
            .map(|kv| {
                kv.split_once(':')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .ok_or_else(|| format!("node-meta: expected key:value, got {kv:?}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(ReadQuery {
            blocking,
            filter,
            tags: all(&pairs, "tag").cloned().collect(),
            node_meta,
            passing,
        })
    }

    /// The instance carries every `?tag=` asked for, and the node every `?node-meta=` (the
    /// embedded registry's one node has none).
    fn keeps(&self, i: &InstanceView) -> bool {
        self.node_meta.is_empty()
            && self
                .tags
                .iter()
                .all(|t| i.tags.iter().any(|have| have.eq_ignore_ascii_case(t)))
    }

    /// Whether one element of the answer matches `?filter=` (any, without one); a selector
    /// the answer lacks is an error, for a 400.
    fn matches(&self, v: &Value) -> Result<bool, String> {
        self.filter.as_ref().map_or(Ok(true), |f| f.eval(v))
    }
}

/// A read that answers a list: `?` read, the wait for `index_of` to pass `?index=`, the list
/// `items` makes, kept by `?filter=`, answered at that index.
async fn list_read(
    reg: &Registry,
    q: Option<&str>,
    index_of: impl Fn(&Registry) -> u64,
    items: impl FnOnce(&ReadQuery) -> Vec<Value>,
) -> Response {
    let r = match ReadQuery::parse(q) {
        Ok(r) => r,
        Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
    };
    let index = r.blocking.wait_for(reg, index_of).await;
    let mut kept = Vec::new();
    for v in items(&r) {
        match r.matches(&v) {
            Ok(true) => kept.push(v),
            Ok(false) => {}
            Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
        }
    }
    indexed(index, Value::Array(kept))
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
        RegistryError::Owned { .. } => StatusCode::CONFLICT,
    };
    error(status, e.to_string())
}

/// A read answer with the headers blocking clients need (`X-Consul-Index` on every read).
fn indexed(index: u64, body: Value) -> Response {
    let mut resp = axum::Json(body).into_response();
    let h = resp.headers_mut();
    h.insert("X-Consul-Index", HeaderValue::from(index.max(1)));
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

async fn register(State(reg): State<Registry>, Query(q): Params, body: Bytes) -> Response {
    let (r, replace) = match parse_registration(&body)
        .and_then(|r| Ok((r, flag(&q, "replace-existing-checks")?)))
    {
        Ok(x) => x,
        Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
    };
    match reg.register_as_consul(r, replace) {
        Ok(view) => {
            tracing::info!(instance = %view.id, service = %view.service, port = view.port, "registered via Consul API");
            empty_ok()
        }
        Err(e) => registry_error(e),
    }
}

async fn deregister(State(reg): State<Registry>, Path(id): Path<String>) -> Response {
    match reg.deregister_own(&id) {
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

async fn agent_services(State(reg): State<Registry>, RawQuery(q): RawQuery) -> Response {
    agent_map(&reg, q.as_deref(), |i| {
        vec![(i.id.clone(), agent_service_json(i))]
    })
}

async fn agent_checks(State(reg): State<Registry>, RawQuery(q): RawQuery) -> Response {
    agent_map(&reg, q.as_deref(), |i| {
        i.checks
            .iter()
            .map(|c| (c.id.clone(), check_json(i, c)))
            .collect()
    })
}

/// The agent's maps (`/v1/agent/services`, `/v1/agent/checks`), `?filter=` on each value.
fn agent_map(
    reg: &Registry,
    q: Option<&str>,
    of: impl Fn(&InstanceView) -> Vec<(String, Value)>,
) -> Response {
    let r = match ReadQuery::parse(q) {
        Ok(r) => r,
        Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
    };
    let mut m = Map::new();
    for (k, v) in reg.instances().iter().flat_map(of) {
        match r.matches(&v) {
            Ok(true) => {
                m.insert(k, v);
            }
            Ok(false) => {}
            Err(e) => return error(StatusCode::BAD_REQUEST, e),
        }
    }
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

async fn catalog_services(State(reg): State<Registry>, RawQuery(q): RawQuery) -> Response {
    let r = match ReadQuery::parse(q.as_deref()) {
        Ok(r) => r,
        Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
    };
    let index = r.blocking.wait_for(&reg, Registry::catalog_index).await;
    let m: Map<String, Value> = reg
        .services()
        .into_iter()
        .filter(|_| r.node_meta.is_empty())
        .map(|(k, v)| (k, json!(v)))
        .collect();
    indexed(index, Value::Object(m))
}

/// The instances of a service a catalog or health read returns, after `?passing`, `?tag=` and
/// `?node-meta=`, rendered by `render`, then `?filter=`; answered at the service's index.
async fn service_read(
    reg: &Registry,
    name: &str,
    q: Option<&str>,
    render: fn(&InstanceView) -> Value,
) -> Response {
    list_read(
        reg,
        q,
        |reg: &Registry| reg.service_index(name),
        |r| {
            reg.service(name, r.passing)
                .iter()
                .filter(|i| r.keeps(i))
                .map(render)
                .collect()
        },
    )
    .await
}

async fn catalog_service(
    State(reg): State<Registry>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    service_read(&reg, &name, q.as_deref(), catalog_service_json).await
}

async fn health_service(
    State(reg): State<Registry>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    service_read(&reg, &name, q.as_deref(), service_entry_json).await
}

/// Reads over every check (`/v1/health/checks|state|node`): blocking on the registry's index,
/// `?filter=` on each check.
async fn checks_read(
    reg: &Registry,
    q: Option<&str>,
    keep: impl Fn(&InstanceView, &crate::registry::CheckView) -> bool,
) -> Response {
    list_read(reg, q, Registry::index, |r| {
        reg.instances()
            .iter()
            .filter(|_| r.node_meta.is_empty())
            .flat_map(|i| {
                i.checks
                    .iter()
                    .filter(|c| keep(i, c))
                    .map(move |c| check_json(i, c))
                    .collect::<Vec<_>>()
            })
            .collect()
    })
    .await
}

async fn health_checks(
    State(reg): State<Registry>,
    Path(service): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    checks_read(&reg, q.as_deref(), |i, _| i.service == service).await
}

async fn health_state(
    State(reg): State<Registry>,
    Path(state): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let want = match state.as_str() {
        "any" => None,
        s => match Health::parse(s).filter(|_| s == s.to_ascii_lowercase()) {
            Some(h) => Some(h),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("Invalid check state {state:?}: use any, passing, warning or critical"),
                );
            }
        },
    };
    checks_read(&reg, q.as_deref(), |_, c| {
        want.is_none_or(|w| c.status == w)
    })
    .await
}

async fn health_node(
    State(reg): State<Registry>,
    Path(node): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    checks_read(&reg, q.as_deref(), |_, _| node == NODE).await
}

async fn catalog_nodes(State(reg): State<Registry>, RawQuery(q): RawQuery) -> Response {
    list_read(&reg, q.as_deref(), Registry::catalog_index, |r| {
        // The one node has no meta: asked for some, none is kept.
        if r.node_meta.is_empty() {
            vec![node_json()]
        } else {
            Vec::new()
        }
    })
    .await
}

async fn catalog_node(State(reg): State<Registry>, Path(node): Path<String>) -> Response {
    if node != NODE {
        // Consul answers an unknown node with null.
        return indexed(reg.catalog_index(), Value::Null);
    }
    let services: Map<String, Value> = reg
        .instances()
        .iter()
        .map(|i| (i.id.clone(), agent_service_json(i)))
        .collect();
    indexed(
        reg.catalog_index(),
        json!({"Node": node_json(), "Services": services}),
    )
}

async fn agent_service(State(reg): State<Registry>, Path(id): Path<String>) -> Response {
    match reg.instance(&id) {
        Some(i) => axum::Json(agent_service_json(&i)).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("unknown service ID: {id}")),
    }
}

async fn agent_members() -> Response {
    axum::Json(json!([{
        "Name": NODE, "Addr": "127.0.0.1", "Port": 8301,
        "Tags": {"dc": DATACENTER, "role": "consul", "build": "1.20.0-lgo-dash", "port": "8300"},
        "Status": 1, "ProtocolMin": 1, "ProtocolMax": 5, "ProtocolCur": 2,
        "DelegateMin": 2, "DelegateMax": 5, "DelegateCur": 4,
    }]))
    .into_response()
}

/// Consul's local health endpoints: the aggregated status, and the HTTP status that says it
/// (200 passing, 429 warning, 503 critical), so a load balancer can probe it.
fn health_status(h: Health) -> StatusCode {
    match h {
        Health::Passing => StatusCode::OK,
        Health::Warning => StatusCode::TOO_MANY_REQUESTS,
        Health::Critical => StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn agent_health_json(i: &InstanceView) -> Value {
    json!({
        "AggregatedStatus": i.health.as_str(),
        "Service": agent_service_json(i),
        "Checks": i.checks.iter().map(|c| check_json(i, c)).collect::<Vec<_>>(),
    })
}

async fn agent_health_by_id(State(reg): State<Registry>, Path(id): Path<String>) -> Response {
    match reg.instance(&id) {
        Some(i) => (health_status(i.health), axum::Json(agent_health_json(&i))).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("ServiceId {id} not found")),
    }
}

async fn agent_health_by_name(State(reg): State<Registry>, Path(name): Path<String>) -> Response {
    let list = reg.service(&name, false);
    let Some(worst) = list.iter().map(|i| i.health).max() else {
        return error(
            StatusCode::NOT_FOUND,
            format!("ServiceName {name} Not found"),
        );
    };
    let body: Vec<Value> = list.iter().map(agent_health_json).collect();
    (health_status(worst), axum::Json(body)).into_response()
}

/// `PUT /v1/agent/check/register`: a check added to a registered instance (`ServiceID`).
async fn check_register(State(reg): State<Registry>, body: Bytes) -> Response {
    let (service_id, spec) = match parse_check_registration(&body) {
        Ok(x) => x,
        Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
    };
    match reg.add_check(&service_id, spec) {
        Ok(()) => empty_ok(),
        Err(e) => registry_error(e),
    }
}

async fn check_deregister(State(reg): State<Registry>, Path(check_id): Path<String>) -> Response {
    match reg.remove_check(&check_id) {
        Ok(()) => empty_ok(),
        Err(e) => registry_error(e),
    }
}
