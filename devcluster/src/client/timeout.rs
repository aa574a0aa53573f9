//! The per-attempt timeout: an attempt that gets no answer within `timeouts.call_ms` ends with
//! a timeout error naming the instance. It sits below the pick, so the outlier report and the
//! attempt's span above it see a timeout as that instance's outcome.

use super::request::{CallError, Req, Resp};
use super::{BoxFuture, Knobs, Stack};
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

#[derive(Clone)]
pub struct TimeoutLayer {
    knobs: Arc<Knobs>,
}

impl TimeoutLayer {
    pub fn new(knobs: Arc<Knobs>) -> Self {
        TimeoutLayer { knobs }
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;
    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout {
            inner,
            knobs: self.knobs.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Timeout<S> {
    inner: S,
    knobs: Arc<Knobs>,
}

impl<S: Stack> Service<Req> for Timeout<S> {
    type Response = Resp;
    type Error = CallError;
    type Future = BoxFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), CallError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> BoxFuture {
        let after = self.knobs.timeout();
        let instance = req.picked.as_ref().map(|p| p.member().id.clone());
        let fut = self.inner.call(req);
        Box::pin(async move {
            match tokio::time::timeout(after, fut).await {
                Ok(r) => r,
                Err(_) => Err(CallError::Timeout {
                    instance: instance.as_deref().unwrap_or("?").to_string(),
                    after,
                }),
            }
        })
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
}
