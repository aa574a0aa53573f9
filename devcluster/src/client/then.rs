//! The future of a layer whose own work comes after the layers below have answered (the
//! breaker's record, the pick's note of who answered, the attempt's span, the outlier report):
//! the layers below's future, then that work — without a boxed future per layer.

use super::request::{CallError, Resp};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// What a layer does with the answer of the layers below, before passing it up.
pub trait Finish: Send + Unpin + 'static {
    fn finish(self, result: &mut Result<Resp, CallError>);
}

/// Nothing to do afterwards (a dry run, or a layer that has no work there).
/// The layers below's future `F` and what to do with its answer, or an answer the layer gave
/// itself (a refusal, no instance).
pub enum Then<F, D> {
    Below(F, Option<D>),
    Answered(Option<Result<Resp, CallError>>),
}

impl<F, D> Then<F, D> {
    pub fn below(f: F, then: D) -> Self {
        Then::Below(f, Some(then))
    }

    pub fn answered(result: Result<Resp, CallError>) -> Self {
        Then::Answered(Some(result))
    }
}

impl<F, D> Future for Then<F, D>
where
    F: Future<Output = Result<Resp, CallError>> + Unpin,
    D: Finish,
{
    type Output = Result<Resp, CallError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Then::Below(f, then) => {
                let mut result = std::task::ready!(Pin::new(f).poll(cx));
                if let Some(then) = then.take() {
                    then.finish(&mut result);
                }
                Poll::Ready(result)
            }
            Then::Answered(result) => Poll::Ready(result.take().unwrap_or_else(|| {
                Err(CallError::BadRequest(
                    "a finished call was polled again".into(),
                ))
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Status(std::sync::Arc<std::sync::atomic::AtomicU16>);

    impl Finish for Status {
        fn finish(self, result: &mut Result<Resp, CallError>) {
            let code = result.as_ref().map_or(0, |r| r.status().as_u16());
            self.0.store(code, std::sync::atomic::Ordering::Relaxed);
        }
    }

    #[tokio::test]
    async fn the_work_after_runs_once_with_the_answer_from_below() {
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicU16::new(0));
        let below = Box::pin(async {
            tokio::task::yield_now().await;
            let mut r = http::Response::new(super::super::pool::PooledBody::empty());
            *r.status_mut() = http::StatusCode::CREATED;
            Ok::<Resp, CallError>(r)
        });
        let r = Then::below(below, Status(seen.clone())).await.unwrap();
        assert_eq!(r.status(), 201);
        assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 201);
    }

    #[tokio::test]
    async fn dropped_before_the_answer_the_work_after_does_not_run() {
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicU16::new(7));
        let below = Box::pin(std::future::pending::<Result<Resp, CallError>>());
        let mut fut = Then::below(below, Status(seen.clone()));
        let waker = std::task::Waker::noop();
        assert!(
            Pin::new(&mut fut)
                .poll(&mut Context::from_waker(waker))
                .is_pending()
        );
        drop(fut);
        assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 7);
    }
}
