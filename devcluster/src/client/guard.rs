//! The breaker layer: the `CALLER->TARGET` breaker guards the target **service**. It is asked
//! before anything else (a refused call reaches no balancer and no instance, and is not counted
//! as a pick) and it records the outcome of the whole call, after retries on other instances:
//! a failing instance is the business of outlier ejection, not of the service's breaker.

use super::Stack;
use super::request::{CallError, Req, Resp, failed};
use super::then::{Finish, Then};
use crate::breaker::Outcome;
use crate::breaker::OwnedPermit;
use crate::telemetry::names::Name;
use crate::telemetry::path::{self, unix_ns};
use crate::telemetry::{SpanId, SpanRecord};
use std::task::{Context, Poll};
use tokio::time::Instant;
use tower::{Layer, Service};

#[derive(Debug, Clone, Default)]
pub struct GuardLayer;

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;
    fn layer(&self, inner: S) -> Guard<S> {
        Guard { inner }
    }
}

#[derive(Debug, Clone)]
pub struct Guard<S> {
    inner: S,
}

impl<S: Stack> Service<Req> for Guard<S> {
    type Response = Resp;
    type Error = CallError;
    type Future = Then<S::Future, Record>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), CallError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let call = req.call.clone();
        let breaker = &call.target.breaker;
        if req.is_dry() {
            let (state, mode) = breaker.state();
            let verdict = breaker.would_admit();
            req.explain(|e| {
                e.breaker = Some(breaker.name().to_string());
                e.breaker_state = Some(state);
                e.breaker_mode = Some(mode);
                e.refused = verdict.err();
            });
            // Go on anyway: the inspector shows where the call would go once admitted.
            return Then::Below(self.inner.call(req), None);
        }
        let permit = match breaker.try_acquire_owned() {
            Ok(p) => p,
            Err(r) => {
                refusal_span(&req, &r.to_string());
                return Then::answered(Err(r.into()));
            }
        };
        let started = path::now();
        let grpc = call.grpc;
        Then::below(
            self.inner.call(req),
            Record {
                permit,
                started,
                grpc,
            },
        )
    }
}

/// The call's outcome, for the breaker, once the layers below have answered.
pub struct Record {
    permit: OwnedPermit,
    started: Instant,
    grpc: bool,
}

impl Finish for Record {
    fn finish(self, result: &mut Result<Resp, CallError>) {
        self.permit.record(Outcome {
            failure: failed(result, self.grpc),
            duration: path::now().saturating_duration_since(self.started),
        });
    }
}

/// A refused call is a span of its own that says so, under the call's span.
fn refusal_span(req: &Req, why: &str) {
    let t = req.target();
    let Some(telemetry) = crate::telemetry::current() else {
        return;
    };
    telemetry.spans.push(SpanRecord {
        trace_id: req.ctx.trace_id,
        span_id: SpanId::random(),
        parent_id: Some(req.ctx.span_id),
        service: t.caller.to_string(),
        instance: name(req.call.caller_instance),
        name: why.to_string(),
        start_unix_ns: unix_ns(),
        duration_ns: 0,
        error: true,
        attributes: vec![("breaker".into(), t.breaker.name().to_string())],
        events: vec![],
    });
}

fn name(n: Name) -> String {
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::super::testing::{answer, call_req, fixture};
    use super::*;
    use crate::breaker::{Mode, State};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn a_refused_call_never_reaches_the_layers_below() {
        let f = fixture(&["a"]);
        f.target.breaker.set_mode(Mode::ForcedOpen);
        let reached = Arc::new(AtomicU32::new(0));
        let svc = GuardLayer.layer(answer(200, reached.clone()));
        let err = tower::ServiceExt::oneshot(svc, call_req(&f))
            .await
            .err()
            .unwrap();
        assert!(matches!(err, CallError::Rejected(_)), "{err}");
        assert_eq!(reached.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn the_outcome_of_the_whole_call_is_counted_once() {
        let f = fixture(&["a"]);
        let svc = GuardLayer.layer(answer(503, Arc::default()));
        for _ in 0..3 {
            let resp = tower::ServiceExt::oneshot(svc.clone(), call_req(&f))
                .await
                .unwrap();
            assert_eq!(resp.status(), 503);
        }
        let s = f.target.breaker.snapshot();
        assert_eq!((s.total_calls, s.failures_in_window), (3, 3));
        assert_eq!(
            s.state,
            State::Closed,
            "3 calls are under minimum_calls (10)"
        );
    }
}
