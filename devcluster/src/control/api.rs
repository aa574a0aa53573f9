//! Admin API routes. Answers are JSON; errors are `{"error": ...}` with a fitting status.

use super::ControlError;
use crate::cluster::Core;
use crate::duration::parse_go_duration;
use crate::handle::ClusterSnapshot;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Longest a snapshot long-poll may wait.
const MAX_WAIT: Duration = Duration::from_secs(60);

pub fn router(core: Arc<Core>) -> Router {
    Router::new()
        .route("/api/snapshot", get(snapshot))
        .route("/api/instances", get(instances))
        .route("/api/instances/{id}/kill", post(kill))
        .route("/api/instances/{id}/restart", post(restart))
        .route(
            "/health",
            get(|| async { axum::Json(json!({"status": "healthy", "service": "admin"})) }),
        )
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such admin endpoint") })
        .with_state(core)
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, axum::Json(json!({"error": msg.into()}))).into_response()
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        error(status, self.to_string())
    }
}

/// `GET /api/snapshot[?after=V&wait=10s]`: with `after`, waits until the snapshot version
/// passes V (or `wait` ends) so an attached dashboard follows changes without busy polling.
async fn snapshot(
    State(core): State<Arc<Core>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let after: u64 = match q.get("after").map(|s| s.parse()) {
        None => 0,
        Some(Ok(v)) => v,
        Some(Err(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "after: expected a snapshot version (integer)",
            );
        }
    };
    let wait = match q.get("wait").map(|s| parse_go_duration(s)) {
        None => Duration::ZERO,
        Some(Ok(d)) => d.min(MAX_WAIT),
        Some(Err(e)) => return error(StatusCode::BAD_REQUEST, format!("wait: {e}")),
    };
    let mut rx = core.subscribe();
    if after > 0 && !wait.is_zero() {
        let _ = tokio::time::timeout(wait, rx.wait_for(|s| s.version > after)).await;
    }
    let snap: Arc<ClusterSnapshot> = rx.borrow().clone();
    axum::Json(&*snap).into_response()
}

async fn instances(State(core): State<Arc<Core>>) -> Response {
    let snap = core.subscribe().borrow().clone();
    axum::Json(&snap.instances).into_response()
}

async fn kill(
    State(core): State<Arc<Core>>,
    Path(id): Path<String>,
) -> Result<Response, ControlError> {
    core.kill(&id).await?;
    Ok(axum::Json(json!({"ok": true, "instance": id, "process": "killed"})).into_response())
}

async fn restart(
    State(core): State<Arc<Core>>,
    Path(id): Path<String>,
) -> Result<Response, ControlError> {
    core.restart(&id).await?;
    Ok(axum::Json(json!({"ok": true, "instance": id, "process": "running"})).into_response())
}
