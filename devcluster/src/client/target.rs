//! What a client keeps per target service, looked up once: the balancer and breaker on its
//! path, and the names its spans and metrics use.

use crate::balance::service::ServiceBalancer;
use crate::breaker::Breaker;
use crate::telemetry::metrics::CallPath;
use crate::telemetry::names::Name;
use http::Method;
use std::sync::Arc;

pub struct Target {
    pub name: Arc<str>,
    pub service: Name,
    /// The calling service (the client's owner), for picks and spans.
    pub caller: Arc<str>,
    pub caller_name: Name,
    pub balancer: Arc<ServiceBalancer>,
    pub breaker: Arc<Breaker>,
    pub breaker_name: Name,
    /// "call user-service": the call span's operation.
    pub call_op: Name,
    /// "GET user-service" and so on: the attempt span's operation, per common method.
    ops: [(Method, Name); 6],
    /// The client-side metrics of caller → target.
    pub metrics: Option<Arc<CallPath>>,
    /// Where its balancing key comes from (`hash_key`), as the config said when this entry was
    /// made (a change of `hash_key` makes new entries).
    pub hash: Option<HashKey>,
}

/// Where a call's balancing key comes from.
#[derive(Debug, Clone)]
pub enum HashKey {
    Header(http::HeaderName),
    Path(String),
}

impl HashKey {
    /// `header:NAME` or `path:NAME`.
    pub fn parse(spec: &str) -> Option<HashKey> {
        if let Some(h) = spec.strip_prefix("header:") {
            return http::HeaderName::from_bytes(h.as_bytes())
                .ok()
                .map(HashKey::Header);
        }
        spec.strip_prefix("path:").map(|p| HashKey::Path(p.into()))
    }

    pub fn of(&self, headers: &http::HeaderMap, params: &[(Arc<str>, String)]) -> Option<String> {
        match self {
            HashKey::Header(h) => headers
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            HashKey::Path(p) => params
                .iter()
                .find(|(k, _)| **k == **p)
                .map(|(_, v)| v.clone()),
        }
    }
}

impl Target {
    pub fn new(
        caller: &Arc<str>,
        name: &str,
        balancer: Arc<ServiceBalancer>,
        breaker: Arc<Breaker>,
        metrics: Option<Arc<CallPath>>,
        hash: Option<HashKey>,
    ) -> Target {
        let op = |m: Method| {
            let n = Name::of(&format!("{m} {name}"));
            (m, n)
        };
        Target {
            name: Arc::from(name),
            service: Name::of(name),
            caller: caller.clone(),
            caller_name: Name::of(caller),
            breaker_name: Name::of(breaker.name()),
            balancer,
            breaker,
            call_op: Name::of(&format!("call {name}")),
            ops: [
                op(Method::GET),
                op(Method::POST),
                op(Method::PUT),
                op(Method::DELETE),
                op(Method::HEAD),
                op(crate::telemetry::names::grpc_method().clone()),
            ],
            metrics,
            hash,
        }
    }

    /// "GET user-service": an attempt's operation.
    pub fn op(&self, method: &Method) -> Name {
        self.ops
            .iter()
            .find(|(m, _)| m == method)
            .map_or_else(|| Name::of(&format!("{method} {}", self.name)), |(_, n)| *n)
    }
}
