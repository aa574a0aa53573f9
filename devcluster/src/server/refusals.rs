//! Refusals in JSON on every HTTP server of the cluster. axum's extractors refuse in plain
//! text (a body over the size limit: "length limit exceeded", a path that is not UTF-8, a
//! query that does not parse); a client of a JSON API reads `{"error": …}` like every other
//! refusal of it.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Largest request body an API of the cluster buffers (axum's own default, said once here).
pub const MAX_BODY: usize = 2 << 20;

/// A JSON refusal: `{"error": msg}` with `status`.
pub fn json_error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, axum::Json(serde_json::json!({"error": msg.into()}))).into_response()
}

/// A router's plain-text 4xx answers, said in JSON (for `axum::middleware::map_response`).
pub async fn json_refusals(resp: Response) -> Response {
    let plain = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/plain"));
    if !resp.status().is_client_error() || !plain {
        return resp;
    }
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).trim().to_string();
    let text = if status == StatusCode::PAYLOAD_TOO_LARGE {
        format!("{text}: the body may be at most {MAX_BODY} bytes")
    } else {
        text
    };
    json_error(status, text)
}
