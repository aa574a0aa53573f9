//! Nacos naming: instances registered, listed, beaten and removed, on the one registry.
//!
//! An ephemeral instance (the default) has a TTL check renewed by its beats: no beat for
//! `preserved.heart.beat.timeout` (15 s) turns it critical (Nacos: unhealthy), and it is
//! removed once `preserved.ip.delete.timeout` (30 s) has passed, as Nacos does; both are read
//! from its metadata, as Nacos reads them. `enabled=false` is a check that stays critical, so
//! the instance leaves every balancer and Consul's `?passing`. A persistent instance
//! (`ephemeral=false`) has no beat: it is healthy as registered.

use super::{Answer, DEFAULT_GROUP, Failure, Nacos, PUBLIC, Params, now_ms};
use crate::registry::{CheckKind, CheckSpec, Health, InstanceView, Registration};
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// The registry meta keys that carry Nacos's own fields (not shown as metadata).
const META_NAMESPACE: &str = "nacos.namespace";
const META_GROUP: &str = "nacos.group";
const META_CLUSTER: &str = "nacos.cluster";
const META_EPHEMERAL: &str = "nacos.ephemeral";
const META_WEIGHT: &str = "nacos.weight";

const DEFAULT_CLUSTER: &str = "DEFAULT";
const BEAT_INTERVAL_MS: u64 = 5_000;
const BEAT_TIMEOUT_MS: u64 = 15_000;
const DELETE_TIMEOUT_MS: u64 = 30_000;

/// A service as Nacos names it.
#[derive(Debug, Clone)]
struct Service {
    namespace: String,
    group: String,
    name: String,
}

impl Service {
    /// From `serviceName` (plain, or `GROUP@@name`), `groupName` and `namespaceId`.
    fn of(p: &Params) -> Result<Service, Failure> {
        let full = p.require("serviceName")?;
        let (group, name) = match full.split_once("@@") {
            Some((g, n)) => (g, n),
            None => (p.get("groupName").unwrap_or(DEFAULT_GROUP), full),
        };
        let namespace = p.get("namespaceId").unwrap_or(PUBLIC);
        for (what, v) in [("namespace", namespace), ("group", group)] {
            super::valid_name(what, v)?;
        }
        if name.is_empty() {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                10000,
                "Param 'serviceName' is required.",
            ));
        }
        Ok(Service {
            namespace: namespace.into(),
            group: group.into(),
            name: name.into(),
        })
    }

    /// `GROUP@@name`, as Nacos answers a service's name.
    fn grouped(&self) -> String {
        format!("{}@@{}", self.group, self.name)
    }

    /// The registry's service: see the module's mapping.
    fn registry_name(&self) -> String {
        match (self.namespace.as_str(), self.group.as_str()) {
            (PUBLIC, DEFAULT_GROUP) => self.name.clone(),
            (PUBLIC, _) => self.grouped(),
            (ns, _) => format!("{ns}:{}", self.grouped()),
        }
    }

    /// The service names of this namespace and group among the registry's, as Nacos names
    /// them.
    fn listed(namespace: &str, group: &str, registry_name: &str) -> Option<String> {
        let rest = match namespace {
            PUBLIC => registry_name,
            ns => registry_name.strip_prefix(ns)?.strip_prefix(':')?,
        };
        match rest.split_once("@@") {
            Some((g, n)) if g == group => Some(n.to_string()),
            Some(_) => None,
            None if group == DEFAULT_GROUP && (namespace != PUBLIC || !rest.contains(':')) => {
                Some(rest.to_string())
            }
            None => None,
        }
    }
}

/// Nacos's instance id: `ip#port#cluster#GROUP@@service` (and the namespace, outside
/// `public`).
fn instance_id(s: &Service, ip: &str, port: u16, cluster: &str) -> String {
    let id = format!("{ip}#{port}#{cluster}#{}", s.grouped());
    if s.namespace == PUBLIC {
        id
    } else {
        format!("{}#{id}", s.namespace)
    }
}

fn beat_check(id: &str) -> String {
    format!("nacos:{id}")
}

fn enabled_check(id: &str) -> String {
    format!("nacos:{id}:enabled")
}

/// `ip`, `port` and `clusterName` of a request (a beat's may come in its `beat` JSON).
fn address(p: &Params, beat: Option<&Value>) -> Result<(String, u16, String), Failure> {
    let from_beat = |k: &str| beat.and_then(|b| b.get(k));
    let ip = match (p.get("ip"), from_beat("ip").and_then(Value::as_str)) {
        (Some(ip), _) | (None, Some(ip)) => ip.to_string(),
        (None, None) => p.require("ip")?.to_string(),
    };
    let port = match (p.get("port"), from_beat("port").and_then(Value::as_u64)) {
        (Some(_), _) => p.parse::<u16>("port", 0)?,
        (None, Some(port)) => u16::try_from(port)
            .map_err(|_| Failure::new(StatusCode::BAD_REQUEST, 20002, "Param 'port' is invalid"))?,
        (None, None) => p.require("port")?.parse().unwrap_or(0),
    };
    if port == 0 {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            20002,
            "Param 'port' is invalid: expected 1 to 65535",
        ));
    }
    let cluster = p
        .get("clusterName")
        .or_else(|| p.get("cluster"))
        .or_else(|| from_beat("cluster").and_then(Value::as_str))
        .unwrap_or(DEFAULT_CLUSTER)
        .to_string();
    super::valid_name("cluster", &cluster)?;
    Ok((ip, port, cluster))
}

/// A millisecond setting from the instance's metadata (`preserved.heart.beat.timeout`).
fn meta_ms(meta: &BTreeMap<String, String>, key: &str, default: u64) -> u64 {
    meta.get(key)
        .and_then(|v| v.trim().parse().ok())
        .filter(|ms| *ms > 0)
        .unwrap_or(default)
}

/// The registration a register (or update) request describes.
fn registration(p: &Params, beat: Option<&Value>) -> Result<Registration, Failure> {
    let s = Service::of(p)?;
    let (ip, port, cluster) = address(p, beat)?;
    let weight: f64 = match beat.and_then(|b| b.get("weight")).and_then(Value::as_f64) {
        Some(w) if p.get("weight").is_none() => w,
        _ => p.parse("weight", 1.0)?,
    };
    if !(0.0..=10_000.0).contains(&weight) {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            20002,
            format!("Param 'weight' is invalid: {weight} (expected 0 to 10000)"),
        ));
    }
    // `enable` is what the Python SDK sends.
    let enabled = match p.get("enabled") {
        Some(_) => p.flag("enabled", true)?,
        None => p.flag("enable", true)?,
    };
    let healthy = p.flag("healthy", true)?;
    let ephemeral = p.flag("ephemeral", true)?;
    let mut meta: BTreeMap<String, String> = BTreeMap::new();
    let metadata = match (p.get("metadata"), beat.and_then(|b| b.get("metadata"))) {
        (Some(text), _) => serde_json::from_str::<Value>(text).map_err(|e| {
            Failure::new(
                StatusCode::BAD_REQUEST,
                20002,
                format!("Param 'metadata' is not a JSON object: {e}"),
            )
        })?,
        (None, Some(m)) => m.clone(),
        (None, None) => json!({}),
    };
    match metadata {
        Value::Object(m) => {
            for (k, v) in m {
                let v = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                meta.insert(k, v);
            }
        }
        Value::Null => {}
        _ => {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                20002,
                "Param 'metadata' is not a JSON object",
            ));
        }
    }
    meta.insert(META_NAMESPACE.into(), s.namespace.clone());
    meta.insert(META_GROUP.into(), s.group.clone());
    meta.insert(META_CLUSTER.into(), cluster.clone());
    meta.insert(META_EPHEMERAL.into(), ephemeral.to_string());
    meta.insert(META_WEIGHT.into(), weight.to_string());
    // The balancers weigh in whole numbers: Nacos's 1.0 is 1, 0 takes no traffic.
    meta.insert("weight".into(), (weight.round() as u32).to_string());
    let id = instance_id(&s, &ip, port, &cluster);
    let mut checks = Vec::new();
    if ephemeral {
        let timeout = meta_ms(&meta, "preserved.heart.beat.timeout", BEAT_TIMEOUT_MS);
        let delete = meta_ms(&meta, "preserved.ip.delete.timeout", DELETE_TIMEOUT_MS);
        checks.push(CheckSpec {
            id: beat_check(&id),
            name: "Nacos client beat".into(),
            kind: CheckKind::Ttl {
                ttl: Duration::from_millis(timeout),
            },
            initial: Some(if healthy {
                Health::Passing
            } else {
                Health::Critical
            }),
            notes: "ephemeral Nacos instance: kept alive by its beats".into(),
            deregister_critical_after: Some(Duration::from_millis(delete.saturating_sub(timeout))),
        });
    } else if !healthy {
        checks.push(static_check(
            &beat_check(&id),
            "registered with healthy=false",
        ));
    }
    if !enabled {
        checks.push(static_check(
            &enabled_check(&id),
            "disabled through Nacos (enabled=false)",
        ));
    }
    Ok(Registration {
        id,
        name: s.registry_name(),
        address: ip,
        port,
        tags: vec!["nacos".into()],
        meta,
        weight_passing: weight.round() as u32,
        weight_warning: weight.round() as u32,
        enable_tag_override: false,
        checks,
        via: "nacos".into(),
    })
}

/// A check that stays critical until the instance is registered again.
fn static_check(id: &str, why: &str) -> CheckSpec {
    CheckSpec {
        id: id.into(),
        name: why.into(),
        kind: CheckKind::Shared {
            owner: "nacos".into(),
            kind: "nacos".into(),
            definition: why.into(),
        },
        initial: Some(Health::Critical),
        notes: why.into(),
        deregister_critical_after: None,
    }
}

fn register(n: &Nacos, p: &Params) -> Result<Answer, Failure> {
    let reg = registration(p, None)?;
    n.registry
        .register(reg)
        .map_err(|e| Failure::new(StatusCode::BAD_REQUEST, 20002, e.to_string()))?;
    Ok(Answer::Text("ok".into(), Vec::new()))
}

/// An update (`PUT`): as with Nacos, only an instance that is registered, which is registered
/// again with what the request says; what it does not say (weight, metadata, enabled,
/// ephemeral) stays as it was. An instance not registered is an error ("instance not exist"),
/// never a new one. Without `clusterName`, the instance at `ip:port` in the `DEFAULT` cluster
/// is meant, or in the cluster literally named `None`: what nacos-sdk-python registers when
/// given no cluster (it sends `clusterName=None` on add and nothing on modify).
fn update(n: &Nacos, p: &Params) -> Result<Answer, Failure> {
    let s = Service::of(p)?;
    let (ip, port, cluster) = address(p, None)?;
    let clusters = if p.get("clusterName").or_else(|| p.get("cluster")).is_some() {
        vec![cluster.as_str()]
    } else {
        vec![DEFAULT_CLUSTER, "None"]
    };
    let existing = clusters
        .iter()
        .find_map(|c| n.registry.instance(&instance_id(&s, &ip, port, c)))
        .or_else(|| {
            // One registered another way (Consul, the cluster's own), found by address.
            n.registry
                .service(&s.registry_name(), false)
                .into_iter()
                .find(|v| {
                    v.address == ip && v.port == port && clusters.contains(&cluster_of(v).as_str())
                })
        });
    let Some(v) = existing else {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            20004,
            format!(
                "instance not exist: {ip}:{port} in cluster {} of service {}: register it first (POST)",
                clusters.join(" or "),
                s.grouped()
            ),
        ));
    };
    if v.via != "nacos" {
        let why = if v.via.is_empty() {
            format!(
                "{} is one of lgo-dash's own instances: it cannot be changed through Nacos",
                v.id
            )
        } else {
            format!("{} was registered through {}: change it there", v.id, v.via)
        };
        return Err(Failure::new(StatusCode::BAD_REQUEST, 20002, why));
    }
    // The request, with what it leaves out taken from the instance as it is.
    let mut given = p.0.clone();
    let mut keep = |name: &str, value: String| {
        given
            .entry(name.to_string())
            .and_modify(|v| {
                if v.trim().is_empty() {
                    v.clone_from(&value);
                }
            })
            .or_insert(value);
    };
    keep("clusterName", cluster_of(&v));
    let h = host(&v, &s);
    keep("weight", h["weight"].to_string());
    keep("ephemeral", h["ephemeral"].to_string());
    keep("metadata", h["metadata"].to_string());
    if p.get("enabled").is_none() && p.get("enable").is_none() {
        keep("enabled", h["enabled"].to_string());
    }
    let reg = registration(&Params(given), None)?;
    n.registry
        .register(reg)
        .map_err(|e| Failure::new(StatusCode::BAD_REQUEST, 20002, e.to_string()))?;
    Ok(Answer::Text("ok".into(), Vec::new()))
}

/// The instance a request names (`ip`, `port`, `clusterName` in a service), if registered.
fn find(n: &Nacos, p: &Params) -> Result<(Service, InstanceView), Failure> {
    let s = Service::of(p)?;
    let (ip, port, cluster) = address(p, None)?;
    let id = instance_id(&s, &ip, port, &cluster);
    if let Some(v) = n.registry.instance(&id) {
        return Ok((s, v));
    }
    // An instance registered another way (Consul, the cluster's own): by address.
    n.registry
        .service(&s.registry_name(), false)
        .into_iter()
        .find(|v| v.address == ip && v.port == port && cluster_of(v) == cluster)
        .map(|v| (s.clone(), v))
        .ok_or_else(|| {
            Failure::not_found(format!(
                "no instance {ip}:{port} in cluster {cluster} of service {}",
                s.grouped()
            ))
        })
}

fn deregister(n: &Nacos, p: &Params) -> Result<Answer, Failure> {
    let (_, v) = match find(n, p) {
        Ok(found) => found,
        // Nacos answers ok for an instance already gone.
        Err(f) if f.status == StatusCode::NOT_FOUND => {
            return Ok(Answer::Text("ok".into(), Vec::new()));
        }
        Err(f) => return Err(f),
    };
    if v.via.is_empty() {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            20002,
            format!(
                "{} is one of lgo-dash's own instances: kill it with `lgo-dash ctl kill {}`",
                v.id, v.id
            ),
        ));
    }
    let _ = n.registry.deregister(&v.id);
    Ok(Answer::Text("ok".into(), Vec::new()))
}

fn cluster_of(v: &InstanceView) -> String {
    v.meta
        .get(META_CLUSTER)
        .cloned()
        .unwrap_or_else(|| DEFAULT_CLUSTER.into())
}

/// What Nacos reports of an instance, from the registry's view of it (whichever API
/// registered it).
fn host(v: &InstanceView, s: &Service) -> Value {
    let disabled = v.checks.iter().any(|c| c.id == enabled_check(&v.id));
    let healthy = v
        .checks
        .iter()
        .filter(|c| c.id != enabled_check(&v.id))
        .all(|c| c.status == Health::Passing);
    let weight = v
        .meta
        .get(META_WEIGHT)
        .and_then(|w| w.parse::<f64>().ok())
        .unwrap_or(f64::from(v.weight));
    let metadata: serde_json::Map<String, Value> = v
        .meta
        .iter()
        // Nacos's own fields, and the whole-number weight kept for the balancers.
        .filter(|(k, _)| !(k.starts_with("nacos.") || (v.via == "nacos" && *k == "weight")))
        .map(|(k, val)| (k.clone(), Value::String(val.clone())))
        .collect();
    json!({
        "instanceId": v.id,
        "ip": v.address,
        "port": v.port,
        "weight": weight,
        "healthy": healthy,
        "enabled": !disabled,
        "ephemeral": v.meta.get(META_EPHEMERAL).is_none_or(|e| e != "false"),
        "clusterName": cluster_of(v),
        "serviceName": s.grouped(),
        "metadata": metadata,
        "instanceHeartBeatInterval": meta_ms(&v.meta, "preserved.heart.beat.interval", BEAT_INTERVAL_MS),
        "instanceHeartBeatTimeOut": meta_ms(&v.meta, "preserved.heart.beat.timeout", BEAT_TIMEOUT_MS),
        "ipDeleteTimeout": meta_ms(&v.meta, "preserved.ip.delete.timeout", DELETE_TIMEOUT_MS),
        "instanceIdGenerator": "simple",
    })
}

fn list(n: &Nacos, p: &Params) -> Result<Answer, Failure> {
    let s = Service::of(p)?;
    let healthy_only = p.flag("healthyOnly", false)?;
    let clusters: Vec<&str> = p
        .get("clusters")
        .map(|c| {
            c.split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let hosts: Vec<Value> = n
        .registry
        .service(&s.registry_name(), false)
        .iter()
        .filter(|v| clusters.is_empty() || clusters.contains(&cluster_of(v).as_str()))
        .map(|v| host(v, &s))
        .filter(|h| !healthy_only || (h["healthy"] == true && h["enabled"] == true))
        .collect();
    Ok(Answer::Json(json!({
        "name": s.grouped(),
        "groupName": s.group,
        "clusters": clusters.join(","),
        "cacheMillis": 10_000,
        "hosts": hosts,
        "lastRefTime": now_ms(),
        "checksum": "",
        "allIPs": false,
        "reachProtectionThreshold": false,
        "valid": true,
    })))
}

fn instance(n: &Nacos, p: &Params) -> Result<Answer, Failure> {
    let (s, v) = find(n, p)?;
    let h = host(&v, &s);
    Ok(Answer::Json(json!({
        "service": s.grouped(),
        "ip": h["ip"],
        "port": h["port"],
        "clusterName": h["clusterName"],
        "weight": h["weight"],
        "healthy": h["healthy"],
        "enabled": h["enabled"],
        "ephemeral": h["ephemeral"],
        "instanceId": h["instanceId"],
        "metadata": h["metadata"],
    })))
}

/// A beat: the instance's TTL check is renewed. An instance unknown here (expired, or this
/// registry restarted) is registered again from the beat's own description, as Nacos does.
fn beat(n: &Nacos, p: &Params) -> Result<Value, Failure> {
    let beat: Option<Value> = match p.get("beat") {
        Some(text) => Some(serde_json::from_str(text).map_err(|e| {
            Failure::new(
                StatusCode::BAD_REQUEST,
                20002,
                format!("Param 'beat' is not JSON: {e}"),
            )
        })?),
        None => None,
    };
    let s = Service::of(p)?;
    let (ip, port, cluster) = address(p, beat.as_ref())?;
    let id = instance_id(&s, &ip, port, &cluster);
    let interval = |v: &BTreeMap<String, String>| {
        meta_ms(v, "preserved.heart.beat.interval", BEAT_INTERVAL_MS)
    };
    match n.registry.instance(&id) {
        Some(v) => {
            if v.checks
                .iter()
                .any(|c| c.id == beat_check(&id) && c.kind == "ttl")
            {
                let _ = n
                    .registry
                    .update_ttl(&beat_check(&id), Health::Passing, "beat");
            }
            Ok(
                json!({"clientBeatInterval": interval(&v.meta), "code": 10200, "lightBeatEnabled": true}),
            )
        }
        None => match &beat {
            Some(b) => {
                let reg = registration(p, Some(b))?;
                let every = interval(&reg.meta);
                n.registry
                    .register(reg)
                    .map_err(|e| Failure::new(StatusCode::BAD_REQUEST, 20002, e.to_string()))?;
                Ok(json!({"clientBeatInterval": every, "code": 10200, "lightBeatEnabled": true}))
            }
            // Nacos's "register again": the client sends its full beat next.
            None => Ok(
                json!({"clientBeatInterval": BEAT_INTERVAL_MS, "code": 20404, "lightBeatEnabled": false}),
            ),
        },
    }
}

fn services(n: &Nacos, p: &Params) -> Result<Answer, Failure> {
    let namespace = p.get("namespaceId").unwrap_or(PUBLIC);
    let group = p.get("groupName").unwrap_or(DEFAULT_GROUP);
    let page: usize = p.parse("pageNo", 1)?;
    let size: usize = p.parse("pageSize", 20)?;
    let names: Vec<String> = n
        .registry
        .services()
        .keys()
        .filter_map(|name| Service::listed(namespace, group, name))
        .collect();
    let doms: Vec<&String> = names
        .iter()
        .skip(page.saturating_sub(1) * size)
        .take(size)
        .collect();
    Ok(Answer::Json(json!({"count": names.len(), "doms": doms})))
}

handlers! {
    v1_register, v2_register => register;
    v1_update, v2_update => update;
    v1_deregister, v2_deregister => deregister;
    v1_instance, v2_instance => instance;
    v1_list, v2_list => list;
}

pub(super) async fn v1_beat(State(n): State<Nacos>, query: RawQuery, body: Bytes) -> Response {
    super::v1(beat(&n, &Params::of(&query, &body)).map(Answer::Json))
}

/// `GET /nacos/v1/ns/operator/metrics`: the Java client's health probe (`serverHealthy`).
pub(super) async fn v1_metrics(State(n): State<Nacos>) -> Response {
    super::v1(Ok(Answer::Json(json!({
        "status": "UP",
        "serviceCount": n.registry.services().len(),
        "instanceCount": n.registry.instances().len(),
    }))))
}

pub(super) async fn v1_services(State(n): State<Nacos>, query: RawQuery, body: Bytes) -> Response {
    super::v1(services(&n, &Params::of(&query, &body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_map_onto_registry_names_and_back() {
        let s = |ns: &str, g: &str, n: &str| Service {
            namespace: ns.into(),
            group: g.into(),
            name: n.into(),
        };
        assert_eq!(s(PUBLIC, DEFAULT_GROUP, "pay").registry_name(), "pay");
        assert_eq!(s(PUBLIC, "G", "pay").registry_name(), "G@@pay");
        assert_eq!(s("dev", "G", "pay").registry_name(), "dev:G@@pay");
        for (ns, g, n) in [
            (PUBLIC, DEFAULT_GROUP, "pay"),
            (PUBLIC, "G", "pay"),
            ("dev", "G", "pay"),
        ] {
            let name = s(ns, g, n).registry_name();
            assert_eq!(Service::listed(ns, g, &name).as_deref(), Some(n), "{name}");
        }
        assert_eq!(Service::listed(PUBLIC, DEFAULT_GROUP, "G@@pay"), None);
        assert_eq!(Service::listed(PUBLIC, DEFAULT_GROUP, "dev:G@@pay"), None);
        assert_eq!(Service::listed("dev", "G", "G@@pay"), None);
    }
}
