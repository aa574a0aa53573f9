//! The sample services that make the dev cluster alive: user-service (CRUD on users) and
//! order-service (orders that embed their user, fetched from user-service through discovery).

mod api_error;
pub mod faults;
pub mod order;
pub mod traffic;
pub mod user;
pub mod user_grpc;

pub use api_error::ApiError;

use crate::telemetry::http::{ServerSpans, trace_request};
use crate::telemetry::metrics::{self, ServerMetrics};
use axum::Router;
use axum::http::HeaderValue;
use axum::http::header::CONTENT_TYPE;
use axum::response::Response;
use axum::routing::get;
use faults::{FaultLayerState, Faults};
use serde_json::json;
use std::sync::Arc;

/// Response header naming the instance that answered, so callers can see the balancing.
pub const SERVED_BY_HEADER: &str = "x-served-by";

/// What every sample service adds to its routes: `GET /health`, a JSON 404, `x-served-by`, and
/// the fault injection of its instance.
pub(crate) fn finish(
    router: Router,
    service: &'static str,
    instance_id: &str,
    faults: Arc<Faults>,
    metrics: Arc<ServerMetrics>,
) -> Router {
    let scrape = metrics.clone();
    let served_by =
        HeaderValue::from_str(instance_id).unwrap_or(HeaderValue::from_static("unknown"));
    router
        .route(
            "/health",
            get(
                move || async move { axum::Json(json!({"status": "healthy", "service": service})) },
            ),
        )
        .route(
            "/metrics",
            get(move || {
                let m = scrape.clone();
                async move { ([(CONTENT_TYPE, metrics::CONTENT_TYPE)], m.encode()) }
            }),
        )
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(axum::middleware::map_response(
            crate::server::refusals::json_refusals,
        ))
        .layer(axum::middleware::from_fn_with_state(
            FaultLayerState {
                faults,
                instance: Arc::from(instance_id),
            },
            faults::inject,
        ))
        .layer(axum::middleware::map_response(move |mut res: Response| {
            let served_by = served_by.clone();
            async move {
                res.headers_mut().insert(SERVED_BY_HEADER, served_by);
                res
            }
        }))
        // Outermost, so the span sees injected faults' answers and their latency too.
        .layer(axum::middleware::from_fn_with_state(
            ServerSpans::new(metrics),
            trace_request,
        ))
}

/// Reads a JSON body into `T`, turning every decode problem into a 400 that says what was wrong.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("empty body: expected a JSON object"));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// Parses a numeric path id, answering 400 (not 404) when it is not a number.
pub(crate) fn parse_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::bad_request(format!("id must be a positive integer, got \"{raw}\"")))
}
