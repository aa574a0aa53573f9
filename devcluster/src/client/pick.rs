//! The balancer layer: chooses the instance of this attempt from the target's candidate set
//! (passing, not ejected, not tried by an earlier attempt) and records the pick. In a dry run
//! it asks what the pick would be and changes nothing.

use super::Stack;
use super::pool::PooledBody;
use super::request::{AnsweredBy, CallError, Req, Resp};
use super::then::{Finish, Then};
use crate::balance::service::PickFor;
use crate::registry::Registry;
use crate::telemetry::path::unix_ns;
use crate::telemetry::{SpanId, SpanRecord};
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

#[derive(Clone)]
pub struct PickLayer {
    registry: Registry,
}

impl PickLayer {
    pub fn new(registry: Registry) -> Self {
        PickLayer { registry }
    }
}

impl<S> Layer<S> for PickLayer {
    type Service = PickInstance<S>;
    fn layer(&self, inner: S) -> PickInstance<S> {
        PickInstance {
            inner,
            registry: self.registry.clone(),
        }
    }
}

#[derive(Clone)]
pub struct PickInstance<S> {
    inner: S,
    registry: Registry,
}

impl<S: Stack> Service<Req> for PickInstance<S> {
    type Response = Resp;
    type Error = CallError;
    type Future = Then<S::Future, NoteAnswerer>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), CallError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Req) -> Self::Future {
        let target = req.target().clone();
        let members = target.balancer.members(&self.registry);
        let at = PickFor {
            caller: target.caller_name,
            key: req.call.key.as_deref(),
            exclude: &req.tried,
            trace_id: Some(req.ctx.trace_id),
            attempt: req.attempt,
        };
        if req.is_dry() {
            let peeked = target.balancer.peek(&members, at);
            req.explain(|e| match peeked {
                Ok(p) => e.picked = Some(p),
                Err(n) => e.no_instance = Some(n),
            });
            return Then::answered(Ok(http::Response::new(PooledBody::empty())));
        }
        let picked = match target.balancer.pick(&members, at) {
            Ok(p) => p,
            Err(none) => {
                no_instance_span(&req, &none.to_string());
                return Then::answered(Err(none.into()));
            }
        };
        let id = picked.member().id.clone();
        req.picked = Some(picked);
        Then::below(self.inner.call(req), NoteAnswerer(id))
    }
}

/// The retry layer needs to know whom a 5xx came from, to go elsewhere.
pub struct NoteAnswerer(Arc<str>);

impl Finish for NoteAnswerer {
    fn finish(self, result: &mut Result<Resp, CallError>) {
        if let Ok(resp) = result
            && resp.status().is_server_error()
        {
            resp.extensions_mut().insert(AnsweredBy(self.0));
        }
    }
}

/// No instance to send to: a span that says so, under the call's span.
fn no_instance_span(req: &Req, why: &str) {
    let t = req.target();
    let Some(telemetry) = crate::telemetry::current() else {
        return;
    };
    telemetry.spans.push(SpanRecord {
        trace_id: req.ctx.trace_id,
        span_id: SpanId::random(),
        parent_id: Some(req.ctx.span_id),
        service: t.caller.to_string(),
        instance: req.call.caller_instance.to_string(),
        name: why.to_string(),
        start_unix_ns: unix_ns(),
        duration_ns: 0,
        error: true,
        attributes: vec![("attempt".into(), req.attempt.to_string())],
        events: vec![],
    });
}

#[cfg(test)]
mod tests {
    use super::super::testing::{answer, call_req, fixture};
    use super::*;
    use crate::breaker::Mode;
    use std::sync::Arc;
    use tower::ServiceExt;

    #[tokio::test]
    async fn each_call_is_a_recorded_pick_and_a_dry_run_records_none() {
        let f = fixture(&["a", "b"]);
        let svc = PickLayer::new(f.registry.clone()).layer(answer(200, Arc::default()));
        for _ in 0..4 {
            svc.clone().oneshot(call_req(&f)).await.unwrap();
        }
        let snap = f.target.balancer.snapshot(10);
        assert_eq!((snap.counts["a"], snap.counts["b"]), (2, 2));
        let (dry, shared) = f.dry_req();
        svc.oneshot(dry).await.unwrap();
        let e = shared.dry.as_ref().unwrap().lock().unwrap();
        assert_eq!(
            e.picked.as_ref().unwrap().member().id.as_ref(),
            "a",
            "the next turn"
        );
        assert_eq!(f.target.balancer.snapshot(10).recent.len(), 4);
    }

    /// The breaker is asked before the pick: a refused call leaves the pick counts as they were.
    #[tokio::test]
    async fn a_call_the_breaker_refuses_is_not_a_pick() {
        let f = fixture(&["a", "b"]);
        let stack = super::super::guard::GuardLayer
            .layer(PickLayer::new(f.registry.clone()).layer(answer(200, Arc::default())));
        stack.clone().oneshot(call_req(&f)).await.unwrap();
        f.target.breaker.set_mode(Mode::ForcedOpen);
        for _ in 0..5 {
            assert!(stack.clone().oneshot(call_req(&f)).await.is_err());
        }
        let snap = f.target.balancer.snapshot(10);
        assert_eq!(snap.counts.values().sum::<u64>(), 1);
        assert_eq!(snap.recent.len(), 1);
    }
}
