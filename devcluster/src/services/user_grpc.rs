//! user-service over gRPC (`assets/proto/user.proto`): the same users as its HTTP API, served
//! by every instance on its own port beside the standard health service (`grpc.health.v1`, what
//! the registry's gRPC checks ask) and server reflection (so `grpcurl` lists and calls it).
//!
//! The listener runs on the cluster's [`HttpServer`](crate::server::HttpServer) like every other
//! one, so killing the instance closes it too and a graceful stop drains it.

use super::faults::{FaultLayerState, Faults, inject_grpc};
use super::user::{User, UserInput, UserStore};
use crate::proto::user::user_service_server::{UserService, UserServiceServer};
use crate::proto::user::{self as pb, CreateUserRequest, GetUserRequest, ListUsersRequest};
use crate::server::Connections;
use crate::telemetry::grpc::{GrpcSpans, trace_grpc};
use crate::telemetry::http::ServerSpans;
use crate::telemetry::metrics::ServerMetrics;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};
use tower::ServiceExt;

/// The registry name of the sample service's gRPC endpoints (each instance registers one,
/// `user-service-N-grpc`, with `protocol=grpc` in its meta and a gRPC health check).
pub const SERVICE: &str = "user-service-grpc";

/// The proto's full service name: what health checks and reflection call it.
pub const PROTO_SERVICE: &str = "lgo.user.v1.UserService";

/// One instance's `UserService`.
pub struct Users {
    store: Arc<UserStore>,
}

fn to_pb(u: User) -> pb::User {
    pb::User {
        id: u.id,
        name: u.name,
        email: u.email,
        age: u.age,
    }
}

#[tonic::async_trait]
impl UserService for Users {
    async fn get_user(&self, req: Request<GetUserRequest>) -> Result<Response<pb::User>, Status> {
        let id = req.into_inner().id;
        if id == 0 {
            return Err(Status::invalid_argument(
                "id: expected a user id from 1 up, got 0",
            ));
        }
        match self.store.get(id) {
            Some(u) => Ok(Response::new(to_pb(u))),
            None => Err(Status::not_found(format!("user {id} not found"))),
        }
    }

    async fn list_users(
        &self,
        _req: Request<ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        let users = self.store.list().into_iter().map(to_pb).collect();
        Ok(Response::new(pb::ListUsersResponse { users }))
    }

    async fn create_user(
        &self,
        req: Request<CreateUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let r = req.into_inner();
        let input = UserInput {
            name: r.name,
            email: r.email,
            age: r.age,
        };
        match self.store.create(input) {
            Ok(u) => Ok(Response::new(to_pb(u))),
            Err(e) => Err(Status::invalid_argument(e.message)),
        }
    }
}

/// The gRPC services of one instance: UserService, health (SERVING) and reflection. Requests
/// may come gzipped (grpcio and grpcurl clients can compress theirs).
pub async fn routes(store: Arc<UserStore>) -> tonic::service::Routes {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<UserServiceServer<Users>>().await;
    let users =
        UserServiceServer::new(Users { store }).accept_compressed(CompressionEncoding::Gzip);
    let health = health.accept_compressed(CompressionEncoding::Gzip);
    let mut routes = tonic::service::Routes::new(users).add_service(health);
    // Both versions of reflection: grpcurl speaks v1; grpcio-reflection's Python client and
    // several GUI clients speak only v1alpha.
    if let Ok(r) = reflection().build_v1() {
        routes = routes.add_service(r.accept_compressed(CompressionEncoding::Gzip));
    }
    if let Ok(r) = reflection().build_v1alpha() {
        routes = routes.add_service(r.accept_compressed(CompressionEncoding::Gzip));
    }
    routes
}

/// Server reflection over every service an instance serves: UserService and the standard
/// health service (`grpc.health.v1.Health`), with their files.
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::user::DESCRIPTOR)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}

/// The methods of `UserService` that read only: a caller may send them again (the proto marks
/// them `idempotency_level = NO_SIDE_EFFECTS`).
pub const IDEMPOTENT: [&str; 2] = ["GetUser", "ListUsers"];

/// A method's full name, as it travels (the HTTP/2 path): `/lgo.user.v1.UserService/GetUser`.
pub fn full_name(method: &str) -> String {
    format!("/{PROTO_SERVICE}/{method}")
}

/// The full names of the methods `UserService` serves, as routes are labelled.
pub fn methods() -> Arc<[Arc<str>]> {
    ["GetUser", "ListUsers", "CreateUser"]
        .iter()
        .map(|m| Arc::from(full_name(m)))
        .collect()
}

/// One instance's gRPC side: `routes` with the instance's faults (those of `instance`, the
/// process it belongs to) and, around them, its spans and metrics.
pub fn instance_router(
    routes: tonic::service::Routes,
    instance: &str,
    faults: Arc<Faults>,
    metrics: Arc<ServerMetrics>,
) -> Router {
    routes
        .into_axum_router()
        .layer(axum::middleware::from_fn_with_state(
            FaultLayerState {
                faults,
                instance: Arc::from(instance),
            },
            inject_grpc,
        ))
        .layer(axum::middleware::from_fn_with_state(
            GrpcSpans {
                spans: ServerSpans::new(metrics),
                methods: methods(),
            },
            trace_grpc,
        ))
}

/// Largest header list (metadata) a gRPC request may carry: 64 KiB, as an HTTP/1.1 head.
pub const MAX_HEADER_LIST: u32 = 64 * 1024;

/// A router of gRPC services as a connection handler: HTTP/2 on each accepted connection (what
/// tonic's own server does), stopped gracefully with the rest of the cluster.
pub struct GrpcConnections(pub Router);

impl Connections for GrpcConnections {
    fn serve(
        &self,
        stream: TcpStream,
        _peer: SocketAddr,
        mut stop: watch::Receiver<bool>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let routes = self.0.clone();
        let svc = hyper::service::service_fn(move |req: http::Request<Incoming>| {
            routes.clone().oneshot(req.map(axum::body::Body::new))
        });
        Box::pin(async move {
            let conn = hyper::server::conn::http2::Builder::new(crate::telemetry::Executor)
                // The same bound on a request's head as the HTTP/1.1 servers (h2's own
                // default is 16 MiB of headers).
                .max_header_list_size(MAX_HEADER_LIST)
                .serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = async { let _ = stop.wait_for(|s| *s).await; } => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        })
    }
}
