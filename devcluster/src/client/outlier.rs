//! The outlier layer: counts the attempt in flight on its instance while it runs, then reports
//! its latency (for P2C's EWMA) and whether it failed (for passive outlier ejection) to the
//! target's balancer. A failing instance is ejected here; the service's breaker never sees
//! single attempts.

use super::Stack;
use super::request::{CallError, Req, Resp, failed};
use super::then::{Finish, Then};
use crate::balance::members::Members;
use crate::balance::service::ServiceBalancer;
use crate::telemetry::path;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::time::Instant;
use tower::{Layer, Service};

#[derive(Debug, Clone, Default)]
pub struct OutlierLayer;

impl<S> Layer<S> for OutlierLayer {
    type Service = Outlier<S>;
    fn layer(&self, inner: S) -> Outlier<S> {
        Outlier { inner }
    }
}

#[derive(Debug, Clone)]
pub struct Outlier<S> {
    inner: S,
}

impl<S: Stack> Service<Req> for Outlier<S> {
    type Response = Resp;
    type Error = CallError;
    type Future = Then<S::Future, Report>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), CallError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let Some(picked) = req.picked.as_ref() else {
            return Then::Below(self.inner.call(req), None);
        };
        let (balancer, members, index) = (
            req.target().balancer.clone(),
            picked.members.clone(),
            picked.index,
        );
        let flight = InFlight::new(members, index);
        let started = path::now();
        let report = Report {
            balancer,
            flight,
            started,
            grpc: req.call.grpc,
        };
        Then::below(self.inner.call(req), report)
    }
}

/// The attempt's latency and outcome, for the balancer, once it has ended.
pub struct Report {
    balancer: Arc<ServiceBalancer>,
    flight: InFlight,
    started: Instant,
    grpc: bool,
}

impl Finish for Report {
    fn finish(self, result: &mut Result<Resp, CallError>) {
        let member = self.flight.end();
        let took = path::now().saturating_duration_since(self.started);
        self.balancer
            .report(&member.id, &member.load, took, failed(result, self.grpc));
    }
}

/// An attempt counted in flight on its instance until it ends or is dropped (cancelled).
struct InFlight {
    members: Arc<Members>,
    index: usize,
    done: bool,
}

impl InFlight {
    fn new(members: Arc<Members>, index: usize) -> InFlight {
        members[index].load.begin();
        InFlight {
            members,
            index,
            done: false,
        }
    }

    /// The attempt ended: no longer in flight.
    fn end(mut self) -> Member {
        self.done = true;
        let m = &self.members[self.index];
        m.load.end();
        Member {
            id: m.id.clone(),
            load: m.load.clone(),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.done {
            self.members[self.index].load.end();
        }
    }
}

/// What the report needs of the instance once the attempt is over.
struct Member {
    id: Arc<str>,
    load: Arc<crate::balance::load::InstanceLoad>,
}

#[cfg(test)]
mod tests {
    use super::super::testing::{by_instance, call_req_to, fixture};
    use super::*;
    use tower::ServiceExt;

    #[tokio::test(start_paused = true)]
    async fn consecutive_failures_eject_the_instance() {
        let f = fixture(&["a", "b"]);
        let (svc, _) = by_instance(&[("a", 502)]);
        let svc = OutlierLayer.layer(svc);
        for _ in 0..3 {
            svc.clone().oneshot(call_req_to(&f, "a")).await.unwrap();
        }
        let loads = f.target.balancer.snapshot(0).loads;
        let a = loads.iter().find(|l| l.id == "a").unwrap();
        assert!(a.ejected_for_ms.is_some(), "{a:?}");
        assert_eq!((a.requests, a.failures, a.in_flight), (3, 3, 0));
    }
}
