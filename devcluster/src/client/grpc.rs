//! gRPC through the service client: [`GrpcChannel`] is what a tonic-generated client is built
//! on (`UserServiceClient::new(channel)`), and every call it makes goes down the same layers
//! as an HTTP call — breaker, retry, pick, attempt span and trace metadata, outlier report,
//! timeout — to the chosen instance's HTTP/2 connection.
//!
//! The layers' own refusals come back as gRPC statuses: an open breaker or no instance
//! UNAVAILABLE (the server never saw the call), a timeout DEADLINE_EXCEEDED.
//!
//! Unary calls only: the request is read whole before it goes, so that a retry can send it
//! again.

use super::{Call, CallError, ServiceClient};
use crate::client::pool::PooledBody;
use http_body_util::BodyExt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::Status;

/// Requests larger than this are refused (RESOURCE_EXHAUSTED): tonic's own default limit on a
/// decoded message.
const MAX_REQUEST: usize = 4 << 20;

/// A balanced, guarded channel to the instances of one registered gRPC service.
#[derive(Clone)]
pub struct GrpcChannel {
    client: Arc<ServiceClient>,
    target: Arc<str>,
    /// The full names (`/pkg.Service/Method`) of the methods that may be sent again after they
    /// reached an instance (retried on UNAVAILABLE).
    idempotent: Arc<[Arc<str>]>,
}

impl GrpcChannel {
    pub fn new(client: Arc<ServiceClient>, target: &str) -> GrpcChannel {
        GrpcChannel {
            client,
            target: Arc::from(target),
            idempotent: Arc::new([]),
        }
    }

    /// Marks methods safe to retry (`/pkg.Service/Method`): reads, as the proto's
    /// `idempotency_level` would say.
    #[must_use]
    pub fn idempotent<S: AsRef<str>>(mut self, methods: impl IntoIterator<Item = S>) -> Self {
        self.idempotent = methods.into_iter().map(|m| Arc::from(m.as_ref())).collect();
        self
    }
}

/// The gRPC status a caller sees for a call the layers ended without an answer.
pub fn status_of(e: &CallError) -> Status {
    match e {
        CallError::Timeout { .. } => Status::deadline_exceeded(e.to_string()),
        CallError::BadRequest(m) => Status::internal(m.clone()),
        _ => Status::unavailable(e.to_string()),
    }
}

type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<PooledBody>, Status>> + Send>>;

impl tower::Service<http::Request<tonic::body::Body>> for GrpcChannel {
    type Response = http::Response<PooledBody>;
    type Error = Status;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> ResponseFuture {
        let (client, target) = (self.client.clone(), self.target.clone());
        let (parts, body) = req.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_string(), |p| p.as_str().to_string());
        let idempotent = self.idempotent.iter().any(|m| **m == *path);
        Box::pin(async move {
            let message = http_body_util::Limited::new(body, MAX_REQUEST)
                .collect()
                .await
                .map_err(|e| Status::resource_exhausted(format!("request not sent: {e}")))?
                .to_bytes();
            let call = Call {
                method: crate::telemetry::names::grpc_method().clone(),
                path_and_query: path,
                headers: parts.headers,
                body: axum::body::Body::empty(),
                params: Vec::new(),
                parent: None,
                forward: false,
                forwarded_for: None,
                grpc: true,
                idempotent: Some(idempotent),
            };
            client
                .call_with(&target, call, Some(message))
                .await
                .map_err(|e| status_of(&e))
        })
    }
}
