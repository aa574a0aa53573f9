//! Consul's JSON on the wire. Requests are read the way Consul's Go decoder reads them: keys
//! case-insensitive, snake_case aliases accepted (py-consul sends lowercase, Go and Spring send
//! PascalCase, python-consul sends `check` singular). Responses use Consul's exact casing.

use crate::duration::parse_go_duration;
use crate::registry::model::{CheckKind, CheckSpec, Health, InstanceView, Registration};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// Consul's default HTTP check timeout.
const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// A JSON object whose keys were folded: lowercased, underscores dropped.
struct Folded(Map<String, Value>);

fn fold_key(k: &str) -> String {
    k.chars()
        .filter(|c| *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

impl Folded {
    fn new(v: &Value, what: &str) -> Result<Folded, String> {
        match v {
            Value::Object(m) => Ok(Folded(
                m.iter().map(|(k, v)| (fold_key(k), v.clone())).collect(),
            )),
            other => Err(format!(
                "{what}: expected a JSON object, got {}",
                kind(other)
            )),
        }
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    fn string(&self, key: &str, field: &str) -> Result<String, String> {
        match self.get(key) {
            None => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(format!("{field}: expected a string, got {}", kind(other))),
        }
    }

    fn duration(&self, key: &str, field: &str) -> Result<Option<Duration>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => parse_go_duration(s)
                .map(Some)
                .map_err(|e| format!("{field}: {e}")),
            // Go's time.Duration in JSON may also be a number of nanoseconds.
            Some(Value::Number(n)) => n
                .as_u64()
                .map(|ns| Some(Duration::from_nanos(ns)))
                .ok_or_else(|| format!("{field}: expected a duration such as \"10s\", got {n}")),
            Some(other) => Err(format!(
                "{field}: expected a duration such as \"10s\", got {}",
                kind(other)
            )),
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads a `PUT /v1/agent/service/register` body. Errors are the message for a 400.
pub fn parse_registration(body: &[u8]) -> Result<Registration, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err("Request decode failed: empty body, expected a JSON service definition".into());
    }
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("Request decode failed: {e}"))?;
    let f = Folded::new(&v, "service definition")?;
    let name = f.string("name", "Name")?;
    if name.trim().is_empty() {
        return Err("Missing service name".into());
    }
    let port = match f.get("port") {
        None => 0,
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| format!("Port: expected an integer 0..65535, got {n}"))?,
        Some(other) => {
            return Err(format!(
                "Port: expected an integer 0..65535, got {}",
                kind(other)
            ));
        }
    };
    let tags = match f.get("tags") {
        None => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|t| match t {
                Value::String(s) => Ok(s.clone()),
                other => Err(format!("Tags: expected strings, got {}", kind(other))),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(format!(
                "Tags: expected an array of strings, got {}",
                kind(other)
            ));
        }
    };
    let meta = match f.get("meta") {
        None => BTreeMap::new(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                other => Err(format!("Meta.{k}: expected a string, got {}", kind(other))),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(format!(
                "Meta: expected an object of strings, got {}",
                kind(other)
            ));
        }
    };
    let (weight_passing, weight_warning) = match f.get("weights") {
        None => (1, 1),
        Some(w) => {
            let w = Folded::new(w, "Weights")?;
            let num = |key: &str, field: &str| -> Result<u32, String> {
                match w.get(key) {
                    None => Ok(1),
                    Some(Value::Number(n)) => n
                        .as_u64()
                        .and_then(|x| u32::try_from(x).ok())
                        .ok_or_else(|| {
                            format!("{field}: expected a non-negative integer, got {n}")
                        }),
                    Some(other) => Err(format!(
                        "{field}: expected a non-negative integer, got {}",
                        kind(other)
                    )),
                }
            };
            let passing = num("passing", "Weights.Passing")?;
            if passing == 0 {
                // As Consul: a zero weight would take the instance out of DNS answers unseen.
                return Err("Weights.Passing: must be greater than 0".into());
            }
            (passing, num("warning", "Weights.Warning")?)
        }
    };
    let mut check_values: Vec<(String, &Value)> = Vec::new();
    if let Some(c) = f.get("check") {
        check_values.push(("Check".into(), c));
    }
    match f.get("checks") {
        None => {}
        Some(Value::Array(a)) => {
            check_values.extend(
                a.iter()
                    .enumerate()
                    .map(|(i, c)| (format!("Checks[{i}]"), c)),
            );
        }
        Some(other) => {
            return Err(format!(
                "Checks: expected an array of checks, got {}",
                kind(other)
            ));
        }
    }
    let mut checks = Vec::new();
    for (field, c) in check_values {
        if let Some(spec) = parse_check(c, &field)? {
            checks.push(spec);
        }
    }
    let enable_tag_override = match f.get("enabletagoverride") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(format!(
                "EnableTagOverride: expected a boolean, got {}",
                kind(other)
            ));
        }
    };
    Ok(Registration {
        id: f.string("id", "ID")?,
        name,
        address: f.string("address", "Address")?,
        port,
        tags,
        meta,
        weight_passing,
        weight_warning,
        enable_tag_override,
        checks,
        via: "consul".into(),
    })
}

/// A `PUT /v1/agent/check/register` body: a check and the instance (`ServiceID`) it belongs to.
pub fn parse_check_registration(body: &[u8]) -> Result<(String, CheckSpec), String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("Request decode failed: {e}"))?;
    let f = Folded::new(&v, "check definition")?;
    let name = f.string("name", "Name")?;
    if name.trim().is_empty() {
        return Err("Missing check name".into());
    }
    let service_id = f.string("serviceid", "ServiceID")?;
    if service_id.is_empty() {
        return Err(
            "ServiceID: the embedded registry keeps checks on instances; node-level checks are not supported"
                .into(),
        );
    }
    let mut spec = parse_check(&v, "check definition")?
        .ok_or("a check needs HTTP, TCP or GRPC (with Interval) or TTL")?;
    // Here the check's own ID is `ID` (in a service definition it is `CheckID`).
    let id = f.string("id", "ID")?;
    if !id.is_empty() {
        spec.id = id;
    }
    if spec.id.is_empty() {
        spec.id = name.clone();
    }
    Ok((service_id, spec))
}

/// One CheckType. An object with neither HTTP nor TTL (nor anything we could run) is refused:
/// silently ignoring it would leave an instance "passing" that the user meant to be checked.
fn parse_check(v: &Value, field: &str) -> Result<Option<CheckSpec>, String> {
    let f = Folded::new(v, field)?;
    if f.0.values().all(Value::is_null) {
        return Ok(None); // Go clients send an all-null Check when none is set.
    }
    let http = f.string("http", &format!("{field}.HTTP"))?;
    let ttl = f.duration("ttl", &format!("{field}.TTL"))?;
    let interval = f.duration("interval", &format!("{field}.Interval"))?;
    let timeout = f.duration("timeout", &format!("{field}.Timeout"))?;
    let grpc = f.string("grpc", &format!("{field}.GRPC"))?;
    let tcp = f.string("tcp", &format!("{field}.TCP"))?;
    let every = |what: &str| -> Result<Duration, String> {
        let interval = interval
            .ok_or_else(|| format!("{field}: {what} check needs an Interval such as \"10s\""))?;
        if interval.is_zero() {
            return Err(format!("{field}.Interval: must be greater than zero"));
        }
        Ok(interval)
    };
    let kind = match (http.is_empty(), grpc.is_empty(), ttl) {
        (false, _, _) => {
            let interval = every("an HTTP")?;
            let headers = match f.get("header") {
                None => Vec::new(),
                Some(Value::Object(m)) => m
                    .iter()
                    .flat_map(|(k, v)| match v {
                        Value::Array(vals) => vals
                            .iter()
                            .filter_map(|x| x.as_str().map(|s| (k.clone(), s.to_string())))
                            .collect::<Vec<_>>(),
                        Value::String(s) => vec![(k.clone(), s.clone())],
                        _ => Vec::new(),
                    })
                    .collect(),
                Some(other) => {
                    return Err(format!(
                        "{field}.Header: expected an object, got {}",
                        kind(other)
                    ));
                }
            };
            let method = f.string("method", &format!("{field}.Method"))?;
            CheckKind::Http {
                body: f.string("body", &format!("{field}.Body"))?,
                url: http,
                method: if method.is_empty() {
                    "GET".into()
                } else {
                    method.to_ascii_uppercase()
                },
                interval,
                timeout: timeout.unwrap_or(DEFAULT_HTTP_TIMEOUT),
                headers,
            }
        }
        (true, false, _) => {
            let interval = every("a gRPC")?;
            if matches!(f.get("grpcusetls"), Some(Value::Bool(true))) {
                return Err(format!(
                    "{field}.GRPCUseTLS: the embedded registry checks gRPC over plaintext only"
                ));
            }
            // "host:port/service": the service is everything after the first slash.
            let (addr, service) = grpc.split_once('/').unwrap_or((&grpc, ""));
            if addr
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok())
                .is_none()
            {
                return Err(format!(
                    "{field}.GRPC: expected host:port or host:port/service, got {grpc:?}"
                ));
            }
            CheckKind::Grpc {
                addr: addr.to_string(),
                service: service.to_string(),
                interval,
                timeout: timeout.unwrap_or(DEFAULT_HTTP_TIMEOUT),
            }
        }
        (true, true, None) if !tcp.is_empty() => {
            let interval = every("a TCP")?;
            if tcp
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok())
                .is_none()
            {
                return Err(format!("{field}.TCP: expected host:port, got {tcp:?}"));
            }
            CheckKind::Tcp {
                addr: tcp,
                interval,
                timeout: timeout.unwrap_or(DEFAULT_HTTP_TIMEOUT),
            }
        }
        (true, true, Some(ttl)) if !ttl.is_zero() => CheckKind::Ttl { ttl },
        (true, true, Some(_)) => return Err(format!("{field}.TTL: must be greater than zero")),
        (true, true, None) => {
            let other: Vec<&str> = ["args", "scriptargs", "dockercontainerid", "h2ping", "udp"]
                .into_iter()
                .filter(|k| f.get(k).is_some())
                .collect();
            return Err(if other.is_empty() {
                format!("{field}: a check needs HTTP, TCP or GRPC (with Interval) or TTL")
            } else {
                format!(
                    "{field}: only HTTP, TCP, gRPC and TTL checks are supported by the embedded registry (got {})",
                    other.join(", ").to_uppercase()
                )
            });
        }
    };
    let initial = match f.string("status", &format!("{field}.Status"))?.as_str() {
        "" => None,
        s => Some(Health::parse(s).ok_or_else(|| {
            format!("{field}.Status: expected passing, warning or critical, got \"{s}\"")
        })?),
    };
    Ok(Some(CheckSpec {
        id: f.string("checkid", &format!("{field}.CheckID"))?,
        name: f.string("name", &format!("{field}.Name"))?,
        kind,
        initial,
        notes: f.string("notes", &format!("{field}.Notes"))?,
        deregister_critical_after: f.duration(
            "deregistercriticalserviceafter",
            &format!("{field}.DeregisterCriticalServiceAfter"),
        )?,
    }))
}

pub(crate) const NODE: &str = "lgo-dash";
pub(crate) const NODE_ID: &str = "6c676f2d-6461-7368-0000-000000000001";
pub(crate) const DATACENTER: &str = "dc1";

fn weights(i: &InstanceView) -> Value {
    json!({"Passing": i.weight, "Warning": i.weight_warning})
}

pub(crate) fn node_json() -> Value {
    json!({
        "ID": NODE_ID, "Node": NODE, "Address": "127.0.0.1", "Datacenter": DATACENTER,
        "TaggedAddresses": {"lan": "127.0.0.1", "wan": "127.0.0.1"}, "Meta": {},
        "CreateIndex": 1, "ModifyIndex": 1
    })
}

/// `/v1/agent/services` value for one instance.
pub(crate) fn agent_service_json(i: &InstanceView) -> Value {
    json!({
        "ID": i.id, "Service": i.service, "Tags": i.tags, "Meta": i.meta, "Port": i.port,
        "Address": i.address, "Weights": weights(i),
        "EnableTagOverride": i.enable_tag_override, "Datacenter": DATACENTER,
    })
}

/// `/v1/catalog/service/:name` element.
pub(crate) fn catalog_service_json(i: &InstanceView) -> Value {
    json!({
        "ID": NODE_ID, "Node": NODE, "Address": "127.0.0.1", "Datacenter": DATACENTER,
        "TaggedAddresses": {"lan": "127.0.0.1", "wan": "127.0.0.1"}, "NodeMeta": {},
        "ServiceKind": "", "ServiceID": i.id, "ServiceName": i.service, "ServiceTags": i.tags,
        "ServiceAddress": i.address, "ServicePort": i.port, "ServiceMeta": i.meta,
        "ServiceWeights": weights(i), "ServiceEnableTagOverride": i.enable_tag_override,
        "CreateIndex": i.create_index, "ModifyIndex": i.modify_index,
    })
}

pub(crate) fn check_json(i: &InstanceView, c: &crate::registry::CheckView) -> Value {
    json!({
        "Node": NODE, "CheckID": c.id, "Name": c.name, "Status": c.status.as_str(),
        "Notes": c.notes, "Output": c.output, "ServiceID": i.id, "ServiceName": i.service,
        "ServiceTags": i.tags, "Type": c.kind, "Definition": definition_json(c),
        "CreateIndex": c.create_index, "ModifyIndex": c.modify_index,
    })
}

/// A check's `Definition` as Consul fills it: its kind's target, interval and timeout.
fn definition_json(c: &crate::registry::CheckView) -> Value {
    let mut d = Map::new();
    for (k, v) in &c.spec {
        d.insert(k.clone(), json!(v));
    }
    Value::Object(d)
}

/// `/v1/health/service/:name` element (a ServiceEntry).
pub fn service_entry_json(i: &InstanceView) -> Value {
    json!({
        "Node": node_json(),
        "Service": {
            "ID": i.id, "Service": i.service, "Tags": i.tags, "Address": i.address, "Meta": i.meta,
            "Port": i.port, "Weights": weights(i), "EnableTagOverride": i.enable_tag_override,
            "CreateIndex": i.create_index, "ModifyIndex": i.modify_index,
        },
        "Checks": i.checks.iter().map(|c| check_json(i, c)).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pascal_lower_and_snake_case_alike() {
        let go = br#"{"ID":"a1","Name":"api","Port":80,"Check":{"TTL":"10s","DeregisterCriticalServiceAfter":"1m"}}"#;
        let py = br#"{"id":"a1","name":"api","port":80,"checks":[{"ttl":"10s","DeregisterCriticalServiceAfter":"1m"}]}"#;
        let snake = br#"{"id":"a1","name":"api","port":80,"check":{"ttl":"10s","deregister_critical_service_after":"1m"}}"#;
        let a = parse_registration(go).expect("go");
        assert_eq!(a, parse_registration(py).expect("py"));
        assert_eq!(a, parse_registration(snake).expect("snake"));
        assert_eq!(
            a.checks[0].kind,
            CheckKind::Ttl {
                ttl: Duration::from_secs(10)
            }
        );
        assert_eq!(
            a.checks[0].deregister_critical_after,
            Some(Duration::from_secs(60))
        );
    }

    #[test]
    fn meta_keys_keep_their_case() {
        let r = parse_registration(br#"{"Name":"x","Meta":{"Version":"1","health_path":"/h"}}"#)
            .expect("ok");
        assert_eq!(r.meta.get("Version").map(String::as_str), Some("1"));
        assert_eq!(r.meta.get("health_path").map(String::as_str), Some("/h"));
    }

    #[test]
    fn explains_what_is_wrong() {
        let cases: [(&[u8], &str); 10] = [
            (b"{not json", "Request decode failed"),
            (b"", "empty body"),
            (b"[1,2]", "expected a JSON object"),
            (br#"{"Port":1}"#, "Missing service name"),
            (br#"{"Name":"x","Port":"80"}"#, "Port: expected an integer"),
            (br#"{"Name":"x","Port":70000}"#, "Port: expected an integer"),
            (
                br#"{"Name":"x","Check":{"HTTP":"http://h/","Interval":"soon"}}"#,
                "Check.Interval",
            ),
            (
                br#"{"Name":"x","Checks":[{"H2PING":"h:1","Interval":"1s"}]}"#,
                "only HTTP, TCP, gRPC and TTL",
            ),
            (
                br#"{"Name":"x","Check":{"GRPC":"h:1","Interval":"1s","GRPCUseTLS":true}}"#,
                "Check.GRPCUseTLS",
            ),
            (
                br#"{"Name":"x","Check":{"GRPC":"nowhere","Interval":"1s"}}"#,
                "Check.GRPC: expected host:port",
            ),
        ];
        for (body, want) in cases {
            let err = parse_registration(body).expect_err(want);
            assert!(err.contains(want), "{err:?} should mention {want:?}");
        }
    }

    #[test]
    fn grpc_checks_keep_their_service() {
        let r = parse_registration(
            br#"{"Name":"x","Check":{"GRPC":"127.0.0.1:50051/lgo.user.v1.UserService","Interval":"2s"}}"#,
        )
        .expect("ok");
        assert_eq!(
            r.checks[0].kind,
            CheckKind::Grpc {
                addr: "127.0.0.1:50051".into(),
                service: "lgo.user.v1.UserService".into(),
                interval: Duration::from_secs(2),
                timeout: DEFAULT_HTTP_TIMEOUT,
            }
        );
    }

    #[test]
    fn null_check_from_go_clients_is_no_check() {
        let r =
            parse_registration(br#"{"Name":"x","Check":{"HTTP":null,"TTL":null}}"#).expect("ok");
        assert!(r.checks.is_empty());
    }
}
