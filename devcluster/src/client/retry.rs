//! The retry layer: an idempotent request that failed (no answer, or a 5xx) is sent again, to
//! an instance not tried yet, up to `attempts` tries — within a retry budget, so a failing
//! service sees at most `budget_percent` more load plus a small floor, never a storm.
//!
//! A request that never reached an instance (no connection to it: refused, or closed before
//! the request was written) is sent elsewhere whatever its method and without drawing on the
//! budget: it added no load anywhere. When an instance dies under traffic, its callers' next
//! requests all fail that way until health checks and ejection catch up — at thousands of
//! requests a second that would drain any budget in milliseconds.

use super::budget::RetryBudget;
use super::request::{AnsweredBy, CallError, Req, Resp, retryable};
use super::{BoxFuture, Knobs, Stack};
use http::Method;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use tower::{Layer, Service};

pub fn idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS | Method::TRACE
    )
}

#[derive(Clone)]
pub struct RetryLayer {
    knobs: Arc<Knobs>,
    budget: Arc<RetryBudget>,
}

impl RetryLayer {
    pub fn new(knobs: Arc<Knobs>, budget: Arc<RetryBudget>) -> Self {
        RetryLayer { knobs, budget }
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;
    fn layer(&self, inner: S) -> Retry<S> {
        Retry {
            inner,
            knobs: self.knobs.clone(),
            budget: self.budget.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Retry<S> {
    inner: S,
    knobs: Arc<Knobs>,
    budget: Arc<RetryBudget>,
}

impl<S: Stack> Service<Req> for Retry<S> {
    type Response = Resp;
    type Error = CallError;
    type Future = BoxFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), CallError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> BoxFuture {
        if req.is_dry() {
            return Box::pin(self.inner.call(req));
        }
        let attempts = self.knobs.attempts.load(Ordering::Relaxed).max(1);
        let (idempotent, grpc) = (req.call.idempotent, req.call.grpc);
        self.budget.deposit();
        // What a second attempt would send, kept aside before the first goes.
        let next = if attempts > 1 { req.try_clone() } else { None };
        req.call.attempts.store(1, Ordering::Relaxed);
        let first = self.inner.call(req);
        let Some(next) = next else {
            return Box::pin(first);
        };
        let (inner, budget) = (self.inner.clone(), self.budget.clone());
        Box::pin(async move {
            let result = first.await;
            if done(&result, idempotent, grpc, &budget) {
                return result;
            }
            // Boxed apart: the retries' state (two requests, two answers) would otherwise make
            // every call's future twice as large, and large allocations take a slower path.
            Box::pin(retries(
                result,
                next,
                inner,
                budget,
                attempts,
                (idempotent, grpc),
            ))
            .await
        })
    }
}

/// Whether `result` is the call's answer: a success, no instance at all (another try would find
/// none either), or a failure that may not or cannot go again. A retry that may go is drawn
/// from the budget here.
fn done(
    result: &Result<Resp, CallError>,
    idempotent: bool,
    grpc: bool,
    budget: &RetryBudget,
) -> bool {
    let never_sent = matches!(result, Err(CallError::Connect { .. }));
    !retryable(result, grpc)
        || matches!(result, Err(CallError::NoInstance(_)))
        || !(never_sent || idempotent)
        || !(never_sent || budget.withdraw())
}

/// The attempts after a first one that failed with `result`, until one succeeds, the budget or
/// the attempts run out.
async fn retries<S: Stack>(
    mut result: Result<Resp, CallError>,
    mut next: Req,
    mut inner: S,
    budget: Arc<RetryBudget>,
    attempts: u32,
    (idempotent, grpc): (bool, bool),
) -> Result<Resp, CallError> {
    loop {
        let tried = match &result {
            Ok(resp) => resp.extensions().get::<AnsweredBy>().map(|a| a.0.clone()),
            Err(e) => e.instance().map(Arc::from),
        };
        next.tried.extend(tried);
        next.attempt += 1;
        next.call.attempts.store(next.attempt, Ordering::Relaxed);
        let after = (next.attempt < attempts)
            .then(|| next.try_clone())
            .flatten();
        let again = inner.call(next).await;
        // Every instance gone meanwhile: what the last try got says more than that.
        if matches!(again, Err(CallError::NoInstance(_))) {
            return result;
        }
        result = again;
        match after {
            Some(a) if !done(&result, idempotent, grpc, &budget) => next = a,
            _ => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{call_req, fixture, picks_and_answers, post_req};
    use super::*;
    use tower::ServiceExt;

    fn layer(attempts: u32, budget: RetryBudget) -> RetryLayer {
        let knobs = Knobs::default();
        knobs.attempts.store(attempts, Ordering::Relaxed);
        RetryLayer::new(Arc::new(knobs), Arc::new(budget))
    }

    #[tokio::test]
    async fn a_failed_get_goes_to_an_instance_not_tried_yet() {
        let f = fixture(&["a", "b", "c"]);
        // a and c fail, b answers: round robin goes a, then c (of b and c), then b.
        let (svc, seen) = picks_and_answers(&f, &[("a", 503), ("b", 200), ("c", 502)]);
        let resp = layer(3, RetryBudget::new(100, 10))
            .layer(svc)
            .oneshot(call_req(&f))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(seen.lock().unwrap().len(), 3, "{seen:?}");
        let tried: std::collections::BTreeSet<String> = seen
            .lock()
            .unwrap()
            .iter()
            .map(|(id, _)| id.clone())
            .collect();
        assert_eq!(tried.len(), 3, "never the same instance twice: {seen:?}");
    }

    #[tokio::test]
    async fn a_post_is_sent_once_and_an_empty_budget_stops_retries() {
        let f = fixture(&["a", "b"]);
        let (svc, seen) = picks_and_answers(&f, &[("a", 503), ("b", 503)]);
        let post = post_req(&f);
        let resp = layer(3, RetryBudget::new(100, 10))
            .layer(svc.clone())
            .oneshot(post)
            .await
            .unwrap();
        assert_eq!(
            (resp.status().as_u16(), seen.lock().unwrap().len()),
            (503, 1)
        );

        seen.lock().unwrap().clear();
        let resp = layer(3, RetryBudget::new(0, 0))
            .layer(svc)
            .oneshot(call_req(&f))
            .await
            .unwrap();
        assert_eq!(
            (resp.status().as_u16(), seen.lock().unwrap().len()),
            (503, 1)
        );
    }

    /// A dead instance refuses connections: whatever the method, the request goes elsewhere,
    /// and an empty budget does not stop it (it added no load anywhere).
    #[tokio::test]
    async fn a_request_that_never_reached_an_instance_goes_elsewhere_for_free() {
        let f = fixture(&["a", "b"]);
        let (svc, seen) = picks_and_answers(&f, &[("a", 0), ("b", 201)]);
        let post = post_req(&f);
        let resp = layer(3, RetryBudget::new(0, 0))
            .layer(svc)
            .oneshot(post)
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let tried: Vec<String> = seen
            .lock()
            .unwrap()
            .iter()
            .map(|(i, _)| i.clone())
            .collect();
        assert_eq!(tried, ["a", "b"]);
    }
}
