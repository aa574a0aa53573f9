//! order-service: orders that come back with their user embedded, fetched from user-service by
//! discovering a passing instance in the registry — over HTTP or gRPC, as the config says
//! (`services.order-service.user_protocol`).

use super::user::{SERVICE as USER_SERVICE, User};
use super::user_grpc;
use super::{ApiError, finish, parse_id, parse_json};
use crate::client::grpc::GrpcChannel;
use crate::client::{Call, ServiceClient};
use crate::config::Protocol;
use crate::proto::user::GetUserRequest;
use crate::proto::user::user_service_client::UserServiceClient;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

pub const SERVICE: &str = "order-service";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: u64,
    pub user_id: u64,
    pub item: String,
    pub quantity: u32,
    pub amount_cents: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderInput {
    user_id: u64,
    item: String,
    quantity: u32,
    amount_cents: u64,
}

/// An order as answered by `GET /orders/{id}`: the order and its user.
#[derive(Debug, Serialize, Deserialize)]
pub struct OrderWithUser {
    #[serde(flatten)]
    pub order: Order,
    pub user: User,
}

#[derive(Debug, Default)]
pub struct OrderStore {
    inner: RwLock<(u64, BTreeMap<u64, Order>)>,
}

impl OrderStore {
    pub fn seeded() -> Arc<OrderStore> {
        let seed = [
            (1, "keyboard", 1, 4_900),
            (2, "monitor", 2, 31_800),
            (3, "cable", 5, 1_250),
            (1, "mouse", 1, 2_500),
            (5, "laptop stand", 1, 3_999),
        ];
        let orders = seed
            .iter()
            .enumerate()
            .map(|(i, (user_id, item, quantity, amount_cents))| {
                let id = i as u64 + 1;
                let o = Order {
                    id,
                    user_id: *user_id,
                    item: (*item).into(),
                    quantity: *quantity,
                    amount_cents: *amount_cents,
                };
                (id, o)
            })
            .collect::<BTreeMap<_, _>>();
        Arc::new(OrderStore {
            inner: RwLock::new((orders.len() as u64, orders)),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, (u64, BTreeMap<u64, Order>)> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, (u64, BTreeMap<u64, Order>)> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// Finds users by calling user-service through the service client (discovery, balancer,
/// breaker `order-service->user-service`, timeout, retries), passing the trace context on.
pub struct UserLookup {
    client: Arc<ServiceClient>,
    /// The same client's layers as a gRPC channel to user-service-grpc.
    grpc: UserServiceClient<GrpcChannel>,
    over_grpc: AtomicBool,
}

impl UserLookup {
    pub fn new(client: Arc<ServiceClient>) -> Self {
        let channel = GrpcChannel::new(client.clone(), user_grpc::SERVICE).idempotent(
            user_grpc::IDEMPOTENT
                .iter()
                .map(|m| user_grpc::full_name(m)),
        );
        UserLookup {
            client,
            grpc: UserServiceClient::new(channel),
            over_grpc: AtomicBool::new(false),
        }
    }

    /// How users are fetched from now on (calls under way finish as they started).
    pub fn set_protocol(&self, p: Protocol) {
        self.over_grpc.store(p == Protocol::Grpc, Ordering::Relaxed);
    }

    /// The user, `None` when user-service says it has none (404, NOT_FOUND).
    pub async fn user(&self, id: u64, inbound: &HeaderMap) -> Result<Option<User>, ApiError> {
        if self.over_grpc.load(Ordering::Relaxed) {
            return self.user_over_grpc(id).await;
        }
        let mut call = Call::get(format!("/users/{id}"));
        for name in TRACE_HEADERS {
            if let Some(v) = inbound.get(name) {
                call.headers.insert(name, v.clone());
            }
        }
        call.params = vec![("id".into(), id.to_string())];
        let resp = self
            .client
            .call(USER_SERVICE, call)
            .await
            .map_err(|e| ApiError::new(e.status(), format!("{USER_SERVICE}: {e}")))?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(ApiError::bad_gateway(format!(
                "{USER_SERVICE} answered {status}"
            )));
        }
        let body = axum::body::to_bytes(axum::body::Body::new(resp.into_body()), 1 << 20)
            .await
            .map_err(|e| ApiError::bad_gateway(format!("{USER_SERVICE}: body cut short: {e}")))?;
        serde_json::from_slice(&body).map(Some).map_err(|e| {
            ApiError::bad_gateway(format!("{USER_SERVICE} sent an unreadable user: {e}"))
        })
    }

    /// `GetUser` on user-service-grpc. The trace goes on in the call's metadata (the client's
    /// attempt layer writes it), as over HTTP.
    async fn user_over_grpc(&self, id: u64) -> Result<Option<User>, ApiError> {
        let target = user_grpc::SERVICE;
        match self.grpc.clone().get_user(GetUserRequest { id }).await {
            Ok(u) => {
                let u = u.into_inner();
                Ok(Some(User {
                    id: u.id,
                    name: u.name,
                    email: u.email,
                    age: u.age,
                }))
            }
            Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
            Err(s) => {
                let status = match s.code() {
                    tonic::Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                    tonic::Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
                    _ => StatusCode::BAD_GATEWAY,
                };
                Err(ApiError::new(
                    status,
                    format!("{target}: {:?}: {}", s.code(), s.message()),
                ))
            }
        }
    }
}

const TRACE_HEADERS: [&str; 5] = [
    "traceparent",
    "tracestate",
    "x-trace-id",
    "x-span-id",
    "x-request-id",
];

#[derive(Clone)]
struct AppState {
    orders: Arc<OrderStore>,
    users: Arc<UserLookup>,
}

/// The router of one order-service instance.
pub fn router(
    orders: Arc<OrderStore>,
    users: Arc<UserLookup>,
    instance_id: &str,
    faults: Arc<super::faults::Faults>,
    metrics: Arc<crate::telemetry::metrics::ServerMetrics>,
) -> Router {
    let routes = Router::new()
        .route("/orders", get(list).post(create))
        .route("/orders/{id}", get(read).delete(remove))
        .with_state(AppState { orders, users });
    finish(routes, SERVICE, instance_id, faults, metrics)
}

async fn list(State(s): State<AppState>) -> Response {
    let orders: Vec<Order> = s.orders.read().1.values().cloned().collect();
    axum::Json(orders).into_response()
}

async fn read(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let order = s
        .orders
        .read()
        .1
        .get(&id)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("order {id} not found")))?;
    let user = s
        .users
        .user(order.user_id, &headers)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "order {id} belongs to user {} who no longer exists",
                    order.user_id
                ),
            )
        })?;
    Ok(axum::Json(OrderWithUser { order, user }).into_response())
}

async fn create(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let input: OrderInput = parse_json(&body)?;
    if input.item.trim().is_empty() {
        return Err(ApiError::bad_request("item: expected a non-empty string"));
    }
    if input.quantity == 0 {
        return Err(ApiError::bad_request(
            "quantity: expected at least 1, got 0",
        ));
    }
    let Some(user) = s.users.user(input.user_id, &headers).await? else {
        return Err(ApiError::bad_request(format!(
            "user_id: user {} does not exist",
            input.user_id
        )));
    };
    let order = {
        let mut w = s.orders.write();
        w.0 += 1;
        let order = Order {
            id: w.0,
            user_id: input.user_id,
            item: input.item.trim().to_string(),
            quantity: input.quantity,
            amount_cents: input.amount_cents,
        };
        w.1.insert(order.id, order.clone());
        order
    };
    Ok((
        StatusCode::CREATED,
        axum::Json(OrderWithUser { order, user }),
    )
        .into_response())
}

async fn remove(State(s): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    match s.orders.write().1.remove(&id) {
        Some(_) => Ok(StatusCode::NO_CONTENT.into_response()),
        None => Err(ApiError::not_found(format!("order {id} not found"))),
    }
}
