//! The per-attempt timeout: an attempt that gets no answer within `timeouts.call_ms` ends with
//! a timeout error naming the instance. It sits below the pick, so the outlier report and the
//! attempt's span above it see a timeout as that instance's outcome.

use super::request::{CallError, Req, Resp};
use super::{Knobs, Stack};
use crate::telemetry::path;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

#[derive(Clone)]
pub struct TimeoutLayer {
    knobs: Arc<Knobs>,
    timers: Arc<Timers>,
}

impl TimeoutLayer {
    pub fn new(knobs: Arc<Knobs>) -> Self {
        TimeoutLayer {
            knobs,
            timers: Arc::default(),
        }
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;
    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout {
            inner,
            knobs: self.knobs.clone(),
            timers: self.timers.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Timeout<S> {
    inner: S,
    knobs: Arc<Knobs>,
    timers: Arc<Timers>,
}

/// Timers kept for reuse. Setting a registered timer to a later deadline is an atomic store
/// (the timer wheel moves it when the old deadline comes); a new timer per attempt would be
/// put into the wheel and taken out again under its lock, the largest cost of this layer.
#[derive(Default)]
pub struct Timers(Mutex<Vec<Pin<Box<Sleep>>>>);

/// Timers kept at most (as many as attempts in flight at once, usually).
const KEPT_TIMERS: usize = 1024;

impl Timers {
    fn take(&self, deadline: Instant) -> Pin<Box<Sleep>> {
        let kept = self.0.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match kept {
            Some(mut t) => {
                t.as_mut().reset(deadline);
                t
            }
            None => Box::pin(tokio::time::sleep_until(deadline)),
        }
    }

    fn give_back(&self, t: Pin<Box<Sleep>>) {
        let mut kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() < KEPT_TIMERS {
            kept.push(t);
        }
    }
}

impl<S: Stack> Service<Req> for Timeout<S> {
    type Response = Resp;
    type Error = CallError;
    type Future = Deadline<S::Future>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), CallError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let after = self.knobs.timeout();
        let instance = req.picked.as_ref().map(|p| p.member().id.clone());
        Deadline {
            timer: Some(self.timers.take(path::now() + after)),
            inner: self.inner.call(req),
            timers: self.timers.clone(),
            instance,
            after,
        }
    }
}

/// An attempt with a deadline: its answer, or a timeout naming the instance.
pub struct Deadline<F> {
    inner: F,
    timer: Option<Pin<Box<Sleep>>>,
    timers: Arc<Timers>,
    instance: Option<Arc<str>>,
    after: Duration,
}

impl<F> Future for Deadline<F>
where
    F: Future<Output = Result<Resp, CallError>> + Unpin,
{
    type Output = Result<Resp, CallError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Poll::Ready(r) = Pin::new(&mut this.inner).poll(cx) {
            return Poll::Ready(r);
        }
        match this.timer.as_mut().map(|t| t.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Err(CallError::Timeout {
                instance: this.instance.as_deref().unwrap_or("?").to_string(),
                after: this.after,
            })),
            _ => Poll::Pending,
        }
    }
}

impl<F> Drop for Deadline<F> {
    fn drop(&mut self) {
        if let Some(t) = self.timer.take() {
            self.timers.give_back(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{call_req_to, fixture};
    use super::*;
    use std::sync::atomic::Ordering;
    use std::time::Duration;
    use tower::ServiceExt;

    #[tokio::test(start_paused = true)]
    async fn a_silent_instance_is_a_timeout_naming_it() {
        let f = fixture(&["a"]);
        let knobs = Knobs::default();
        knobs.timeout_ms.store(50, Ordering::Relaxed);
        let hang = tower::service_fn(|_: Req| -> super::super::BoxFuture {
            Box::pin(async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok::<Resp, CallError>(http::Response::new(super::super::pool::PooledBody::empty()))
            })
        });
        let err = TimeoutLayer::new(Arc::new(knobs))
            .layer(hang)
            .oneshot(call_req_to(&f, "a"))
            .await
            .err()
            .unwrap();
        assert_eq!(err.to_string(), "a did not answer within 50ms");
    }

    /// A timer kept from an earlier attempt counts from the new attempt's start.
    #[tokio::test(start_paused = true)]
    async fn a_reused_timer_counts_from_its_own_attempt() {
        let f = fixture(&["a"]);
        let knobs = Knobs::default();
        knobs.timeout_ms.store(50, Ordering::Relaxed);
        let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let seen = calls.clone();
        // The first call answers at once, later ones after 70 ms.
        let svc = tower::service_fn(move |_: Req| -> super::super::BoxFuture {
            let n = seen.fetch_add(1, Ordering::Relaxed);
            Box::pin(async move {
                if n > 0 {
                    tokio::time::sleep(Duration::from_millis(70)).await;
                }
                Ok::<Resp, CallError>(http::Response::new(super::super::pool::PooledBody::empty()))
            })
        });
        let layer = TimeoutLayer::new(Arc::new(knobs));
        let svc = layer.layer(svc);
        svc.clone().oneshot(call_req_to(&f, "a")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(40)).await;
        let start = Instant::now();
        let err = svc
            .clone()
            .oneshot(call_req_to(&f, "a"))
            .await
            .err()
            .unwrap();
        assert!(matches!(err, CallError::Timeout { .. }), "{err}");
        assert_eq!(start.elapsed(), Duration::from_millis(50));
        assert_eq!(calls.load(Ordering::Relaxed), 2);
        assert_eq!(
            layer.timers.0.lock().unwrap().len(),
            1,
            "one timer, used twice"
        );
    }
}
