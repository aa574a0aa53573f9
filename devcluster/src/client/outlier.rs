//! The outlier layer: counts the attempt in flight on its instance while it runs, then reports
//! its latency (for P2C's EWMA) and whether it failed (for passive outlier ejection) to the
//! target's balancer. A failing instance is ejected here; the service's breaker never sees
//! single attempts.

use super::request::{CallError, Req, Resp, failed};
use super::{BoxFuture, Stack};
use std::task::{Context, Poll};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};

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
    type Future = BoxFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), CallError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> BoxFuture {
        let inner = self.inner.clone();
        Box::pin(async move {
            let Some(picked) = req.picked.clone() else {
                return inner.oneshot(req).await;
            };
            let balancer = req.target().balancer.clone();
            let member = picked.member();
            let in_flight = member.load.start();
            let started = Instant::now();
            let result = inner.oneshot(req).await;
            drop(in_flight);
            balancer.report(&member.id, &member.load, started.elapsed(), failed(&result));
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{by_instance, call_req_to, fixture};
    use super::*;

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
