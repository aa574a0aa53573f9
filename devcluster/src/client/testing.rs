//! Helpers for the layers' tests: a target with its balancer and breaker over a real registry,
//! requests, and mock services standing in for the layers below.

#![allow(clippy::unwrap_used)]

use super::Explain;
use super::pool::PooledBody;
use super::request::{CallError, CallShared, Req, ReqBody, Resp};
use super::target::Target;
use crate::balance::load::OutlierSettings;
use crate::balance::service::{Picked, ServiceBalancer};
use crate::balance::{Reason, Strategy};
use crate::breaker::{Breaker, BreakerSettings};
use crate::registry::{Registration, Registry};
use crate::telemetry::names::Name;
use crate::telemetry::{SpanContext, SpanId, TraceId};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

pub(crate) struct Fixture {
    pub registry: Registry,
    pub target: Arc<Target>,
}

/// Service `svc` with passing instances `ids`, called by the gateway.
pub(crate) fn fixture(ids: &[&str]) -> Fixture {
    let registry = Registry::new();
    for id in ids {
        registry
            .register(Registration {
                id: (*id).into(),
                name: "svc".into(),
                address: "127.0.0.1".into(),
                port: 1,
                weight_passing: 1,
                ..Default::default()
            })
            .unwrap();
    }
    let balancer = Arc::new(ServiceBalancer::new(
        "svc",
        Strategy::RoundRobin,
        OutlierSettings::default(),
        1,
    ));
    let breaker = Arc::new(Breaker::new("gateway->svc", BreakerSettings::default()));
    let target = Arc::new(Target::new(
        &Arc::from("gateway"),
        "svc",
        balancer,
        breaker,
        None,
        None,
    ));
    Fixture { registry, target }
}

fn req(f: &Fixture, dry: bool, method: http::Method) -> Req {
    Req {
        body: ReqBody::Empty,
        trace: None,
        call: Arc::new(CallShared {
            path: "/x".into(),
            headers: http::HeaderMap::new(),
            target: f.target.clone(),
            key: None,
            caller_instance: Name::EMPTY,
            attempts: AtomicU32::new(0),
            dry: dry.then(|| Box::new(Mutex::new(Explain::default()))),
            forward: false,
            forwarded_for: None,
            idempotent: super::retry::idempotent(&method),
            grpc: false,
            method,
        }),
        ctx: SpanContext {
            trace_id: TraceId::random(),
            span_id: SpanId::random(),
            flags: crate::telemetry::context::SAMPLED,
        },
        attempt: 1,
        tried: vec![],
        picked: None,
    }
}

/// A GET of `/x` at the top of the stack.
pub(crate) fn call_req(f: &Fixture) -> Req {
    req(f, false, http::Method::GET)
}

/// A POST of `/x` at the top of the stack.
pub(crate) fn post_req(f: &Fixture) -> Req {
    req(f, false, http::Method::POST)
}

impl Fixture {
    /// A dry-run request, and where its explanation lands.
    pub(crate) fn dry_req(&self) -> (Req, Arc<CallShared>) {
        let r = req(self, true, http::Method::GET);
        let shared = r.call.clone();
        (r, shared)
    }
}

/// A GET already sent to instance `id`, as below the pick layer.
pub(crate) fn call_req_to(f: &Fixture, id: &str) -> Req {
    let mut r = call_req(f);
    let members = f.target.balancer.members(&f.registry);
    let index = members.iter().position(|m| &*m.id == id).unwrap();
    r.picked = Some(Picked {
        members,
        index,
        strategy: Strategy::RoundRobin,
        reason: Reason::Only,
        eligible: 0,
        ejected: 0,
        seq: 0,
    });
    r
}

fn status(code: u16) -> Resp {
    let mut r = http::Response::new(PooledBody::empty());
    *r.status_mut() = http::StatusCode::from_u16(code).unwrap();
    r
}

/// Answers every request with `code`, counting them.
pub(crate) fn answer(code: u16, reached: Arc<AtomicU32>) -> impl super::Stack {
    tower::service_fn(move |_: Req| -> super::BoxFuture {
        reached.fetch_add(1, Ordering::Relaxed);
        Box::pin(async move { Ok::<Resp, CallError>(status(code)) })
    })
}

/// Each instance reached, with the trace context the request carried to it.
pub(crate) type Seen = Arc<Mutex<Vec<(String, Option<(SpanContext, SpanId)>)>>>;

/// Answers by the instance the request was sent to (`answers`, else 200; 0 for "no
/// connection"), noting each instance and the headers it got.
pub(crate) fn by_instance(answers: &[(&str, u16)]) -> (impl super::Stack, Seen) {
    let answers: Vec<(String, u16)> = answers.iter().map(|(i, s)| (i.to_string(), *s)).collect();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let svc = tower::service_fn(move |r: Req| -> super::BoxFuture {
        let id = r
            .picked
            .as_ref()
            .map(|p| p.member().id.to_string())
            .unwrap_or_default();
        let code = answers
            .iter()
            .find(|(i, _)| *i == id)
            .map_or(200, |(_, s)| *s);
        log.lock().unwrap().push((id.clone(), r.trace_context()));
        Box::pin(async move {
            if code == 0 {
                return Err(CallError::Connect {
                    instance: id,
                    message: "Connection refused (os error 111)".into(),
                });
            }
            Ok::<Resp, CallError>(status(code))
        })
    });
    (svc, seen)
}

/// The pick layer over [`by_instance`].
pub(crate) fn picks_and_answers(f: &Fixture, answers: &[(&str, u16)]) -> (impl super::Stack, Seen) {
    use tower::Layer;
    let (svc, seen) = by_instance(answers);
    (
        super::pick::PickLayer::new(f.registry.clone()).layer(svc),
        seen,
    )
}
