//! The attempt's telemetry: a span per attempt under the call's span (the instance chosen and
//! why, the breaker, the status), the trace context the instance continues (W3C `traceparent`
//! and the framework's `X-Trace-ID`/`X-Span-ID`/`X-Parent-ID`), the client-side metrics of
//! caller → target, and a warning in the log when the attempt got no answer.

use super::Stack;
use super::request::CallShared;
use super::request::{CallError, Req, Resp};
use super::then::{Finish, Then};
use crate::balance::Reason;
use crate::balance::Strategy;
use crate::telemetry::names::Name;
use crate::telemetry::path::{self, AttemptSpan, PathSpan, Timing, unix_ns};
use crate::telemetry::{Level, LogRecord, SpanContext, SpanId};
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

#[derive(Debug, Clone, Default)]
pub struct AttemptLayer;

impl<S> Layer<S> for AttemptLayer {
    type Service = Attempt<S>;
    fn layer(&self, inner: S) -> Attempt<S> {
        Attempt { inner }
    }
}

#[derive(Debug, Clone)]
pub struct Attempt<S> {
    inner: S,
}

impl<S: Stack> Service<Req> for Attempt<S> {
    type Response = Resp;
    type Error = CallError;
    type Future = Then<S::Future, Record>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), CallError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Req) -> Self::Future {
        let parent = req.ctx;
        let ctx = SpanContext {
            trace_id: parent.trace_id,
            span_id: SpanId::random(),
            flags: parent.flags,
        };
        req.ctx = ctx;
        req.trace = Some((ctx.span_id, parent.span_id));
        let call = req.call.clone();
        let attempt = req.attempt;
        let op = call.target.op(req.method());
        let chosen = req.picked.as_ref().map(|p| {
            let m = p.member();
            // A TwoChoices reason names the other candidate: keep its name, not its place.
            let reason = match p.reason {
                Reason::TwoChoices {
                    chosen_cost,
                    other,
                    other_cost,
                } => Reason::TwoChoices {
                    chosen_cost,
                    other: p.members.get(other as usize).map_or(0, |o| o.name.raw()),
                    other_cost,
                },
                r => r,
            };
            (m.name, p.strategy, reason)
        });
        let record = Record {
            ctx,
            parent: parent.span_id,
            call,
            attempt,
            op,
            chosen,
            start: path::stamp(),
        };
        Then::below(self.inner.call(req), record)
    }
}

/// The attempt's span, metrics and (when it got no answer) warning, once it has ended.
pub struct Record {
    ctx: SpanContext,
    parent: SpanId,
    call: Arc<CallShared>,
    attempt: u32,
    op: Name,
    chosen: Option<(Name, Strategy, Reason)>,
    start: path::Stamp,
}

impl Finish for Record {
    fn finish(self, result: &mut Result<Resp, CallError>) {
        let Record {
            ctx,
            parent,
            call,
            attempt,
            op,
            chosen,
            start,
        } = self;
        let result = &*result;
        let took = path::stamp().at.saturating_duration_since(start.at);
        let t = &call.target;
        let Some((peer, strategy, reason)) = chosen else {
            return;
        };
        let (status, outcome) = match &result {
            Ok(r) => match super::request::status_of(r, call.grpc) {
                s if s >= 500 => (s, "5xx"),
                s => (s, "ok"),
            },
            Err(CallError::Timeout { .. }) => (0, "timeout"),
            Err(CallError::Connect { .. }) => (0, "connect_error"),
            Err(_) => (0, "upstream_error"),
        };
        if let Some(m) = &t.metrics {
            m.record(peer.as_str(), outcome, took);
        }
        let failure = result.as_ref().err().map(|e| e.to_string());
        if let (Some(why), Some(telemetry)) = (&failure, crate::telemetry::current()) {
            telemetry.logs.push(LogRecord {
                seq: 0,
                at_unix_ns: unix_ns(),
                level: Level::Warn,
                service: t.caller.to_string(),
                instance: call.caller_instance.to_string(),
                target: "devcluster::client".into(),
                message: why.clone(),
                fields: vec![],
                trace_id: Some(ctx.trace_id),
                span_id: Some(ctx.span_id),
            });
        }
        path::record(PathSpan::Attempt(AttemptSpan {
            timing: Timing::new(
                ctx,
                Some(parent),
                start.unix_ns,
                took.as_nanos() as u64,
                outcome != "ok",
            ),
            service: t.caller_name,
            instance: call.caller_instance,
            op,
            attempt: attempt.min(255) as u8,
            peer,
            strategy,
            reason,
            breaker: t.breaker_name,
            breaker_state: t.breaker.gate_state(),
            status,
            failure: failure.map(Box::new),
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{by_instance, call_req_to, fixture};
    use super::*;
    use tower::ServiceExt;

    #[tokio::test]
    async fn the_instance_sees_the_attempt_as_its_parent_and_the_attempt_is_a_span() {
        let f = fixture(&["a"]);
        let (svc, seen) = by_instance(&[("a", 200)]);
        let req = call_req_to(&f, "a");
        let call_span = req.ctx;
        let telemetry = crate::telemetry::Telemetry::new();
        telemetry
            .scope(AttemptLayer.layer(svc).oneshot(req))
            .await
            .unwrap();
        let (ctx, parent) = seen.lock().unwrap()[0].1.expect("a trace context to send");
        assert_eq!(ctx.trace_id, call_span.trace_id);
        assert_eq!(
            parent, call_span.span_id,
            "the call's span is the attempt's parent"
        );
        let spans = telemetry.spans.trace(call_span.trace_id);
        let attempt = spans
            .iter()
            .find(|s| s.parent_id == Some(call_span.span_id))
            .expect("the attempt's span");
        assert_eq!(attempt.attribute("peer.instance"), Some("a"));
        assert_eq!(attempt.attribute("http.status_code"), Some("200"));
        assert_eq!(attempt.attribute("breaker"), Some("gateway->svc"));
        assert_eq!(
            attempt.span_id, ctx.span_id,
            "the instance continues the attempt's span"
        );
    }
}
