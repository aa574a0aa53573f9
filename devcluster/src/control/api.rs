//! Admin API routes. Answers are JSON; errors are `{"error": ...}` with a fitting status.

use super::{Command, ControlError};
use crate::cluster::Core;
use crate::duration::parse_go_duration;
use crate::handle::ClusterSnapshot;
use crate::telemetry::{self, LogFilter, TraceFilter, TraceId};
use axum::Router;
use axum::body::Bytes;
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
        .route("/api/breakers", get(breakers))
        .route("/api/balancers", get(balancers))
        .route("/api/commands", post(command))
        .route("/api/route/explain", get(explain))
        .route("/api/traces", get(traces))
        .route("/metrics", get(metrics))
        .route("/api/logs", get(logs))
        .route("/api/metrics", get(metrics_view))
        .route("/api/traces/{id}", get(trace))
        .route(
            "/health",
            get(|| async { axum::Json(json!({"status": "healthy", "service": "admin"})) }),
        )
        .route("/api/config", get(config_entries).post(config_set))
        .route("/api/config/history", get(config_history))
        .route("/api/config/undo", post(config_undo))
        .route("/api/config/env/{name}", get(env_diff).post(env_switch))
        .route("/api/config/key/{key}", get(config_get))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such admin endpoint") })
        .with_state(core)
        .layer(axum::middleware::map_response(
            crate::server::refusals::json_refusals,
        ))
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    crate::server::refusals::json_error(status, msg)
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        match &self {
            // A refusal also says its parts, for scripts: which key, what value, what would do.
            ControlError::Refused(i) => (
                status,
                axum::Json(json!({
                    "error": self.to_string(),
                    "key": i.key,
                    "value": i.value,
                    "expected": i.expected,
                })),
            )
                .into_response(),
            _ => error(status, self.to_string()),
        }
    }
}

/// `GET /api/snapshot[?after=V&wait=10s][&epoch=E&slices=1]`: with `after`, waits until the
/// snapshot version passes V (or `wait` ends) so an attached dashboard follows changes without
/// busy polling; with `slices`, answers only the slices changed since version V of run E.
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
    // `slices`: the asker holds version `after` of run `epoch`; only what changed since goes.
    let epoch: Option<u64> = match q.get("epoch").map(|s| s.parse()) {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "epoch: expected the cluster run's epoch (integer)",
            );
        }
    };
    let mut rx = core.subscribe();
    let current = rx.borrow().epoch;
    if after > 0 && !wait.is_zero() && epoch.is_none_or(|e| e == current) {
        let _ = tokio::time::timeout(wait, rx.wait_for(|s| s.version > after)).await;
    }
    let snap: Arc<ClusterSnapshot> = rx.borrow().clone();
    if q.contains_key("slices") {
        return axum::Json(snap.since(after, epoch.unwrap_or(0))).into_response();
    }
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
    let message = core.execute(Command::Kill { id, for_s: None }).await?;
    Ok(axum::Json(json!({"ok": true, "message": message})).into_response())
}

async fn restart(
    State(core): State<Arc<Core>>,
    Path(id): Path<String>,
) -> Result<Response, ControlError> {
    let message = core.execute(Command::Restart { id }).await?;
    Ok(axum::Json(json!({"ok": true, "message": message})).into_response())
}

async fn breakers(State(core): State<Arc<Core>>) -> Response {
    axum::Json(core.breakers.snapshots()).into_response()
}

async fn balancers(State(core): State<Arc<Core>>) -> Response {
    let list: Vec<_> = core
        .balancers
        .all()
        .iter()
        .map(|b| b.snapshot(50))
        .collect();
    axum::Json(list).into_response()
}

/// `GET /api/config`: every key with its value and origin, and the live version.
async fn config_entries(State(core): State<Arc<Core>>) -> Response {
    axum::Json(json!({
        "version": core.config.version(),
        "entries": core.config.entries(),
    }))
    .into_response()
}

async fn config_get(State(core): State<Arc<Core>>, Path(key): Path<String>) -> Response {
    match core.config.get(&key) {
        Some(e) => axum::Json(e).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no config key \"{key}\"")),
    }
}

#[derive(serde::Deserialize)]
struct SetBody {
    key: String,
    /// A TOML literal or a bare word; absent: unset (the layer below takes over).
    #[serde(default)]
    value: Option<String>,
    #[serde(default = "who_ctl")]
    who: String,
}

fn who_ctl() -> String {
    "ctl".into()
}

/// `POST /api/config {"key": …, "value": …, "who": …}`: checked, applied, in the history; a
/// refusal is a 400 naming the key, the value and what was expected.
async fn config_set(State(core): State<Arc<Core>>, body: Bytes) -> Response {
    let b: SetBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")),
    };
    let SetBody {
        key, value, who, ..
    } = b;
    let done = core
        .config
        .change(move |c| match &value {
            Some(v) => c.set(&key, v, &who),
            None => c.unset(&key, &who),
        })
        .await;
    match done {
        Ok(changes) => axum::Json(json!({"version": core.config.version(), "changes": changes}))
            .into_response(),
        Err(e) => ControlError::from(e).into_response(),
    }
}

/// `GET /api/config/env/NAME`: what switching to that environment would change.
async fn env_diff(State(core): State<Arc<Core>>, Path(name): Path<String>) -> Response {
    match core.config.env_diff(&name) {
        Ok(changes) => axum::Json(json!({"version": core.config.version(), "changes": changes}))
            .into_response(),
        Err(e) => ControlError::from(e).into_response(),
    }
}

/// `POST /api/config/env/NAME`: switch to it.
async fn env_switch(State(core): State<Arc<Core>>, Path(name): Path<String>) -> Response {
    let env = name.clone();
    match core.config.change(move |c| c.switch_env(&env, "env")).await {
        Ok(changes) => axum::Json(json!({"version": core.config.version(), "changes": changes}))
            .into_response(),
        Err(e) => ControlError::from(e).into_response(),
    }
}

async fn config_history(State(core): State<Arc<Core>>) -> Response {
    axum::Json(core.config.history()).into_response()
}

async fn config_undo(State(core): State<Arc<Core>>) -> Response {
    match core.config.change(|c| c.undo("undo")).await {
        Ok(changes) => axum::Json(json!({"version": core.config.version(), "changes": changes}))
            .into_response(),
        Err(e) => error(StatusCode::CONFLICT, e.to_string()),
    }
}

/// `POST /api/commands` with a JSON [`Command`]; malformed JSON is a 400 saying what is wrong.
/// `?who=NAME` names who sent it in the config history (default `ctl`).
async fn command(
    State(core): State<Arc<Core>>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<Response, ControlError> {
    let cmd: Command = serde_json::from_slice(&body)
        .map_err(|e| ControlError::Invalid(format!("invalid command JSON: {e}")))?;
    let who = q.get("who").map_or("ctl", String::as_str);
    let message = core.execute_as(cmd, who).await?;
    Ok(axum::Json(json!({"ok": true, "message": message})).into_response())
}

async fn explain(
    State(core): State<Arc<Core>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (Some(method), Some(path)) = (q.get("method"), q.get("path")) else {
        return error(
            StatusCode::BAD_REQUEST,
            "expected ?method=GET&path=/api/users/1",
        );
    };
    axum::Json(core.explain(method, path).await).into_response()
}

/// `GET /api/traces[?service=&operation=&min_duration_ms=&errors_only=&limit=]`: recent traces,
/// newest first.
async fn traces(
    State(core): State<Arc<Core>>,
    q: Result<Query<TraceFilter>, axum::extract::rejection::QueryRejection>,
) -> Response {
    match q {
        Ok(Query(f)) => axum::Json(core.telemetry.spans.traces(&f)).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, e.body_text()),
    }
}

/// `GET /api/traces/{id}`: every span of one trace, by start time.
async fn trace(State(core): State<Arc<Core>>, Path(id): Path<String>) -> Response {
    let Some(trace_id) = TraceId::parse(&id) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("trace id {id:?}: expected 32 (or 16) hex digits"),
        );
    };
    let spans = core.telemetry.spans.trace(trace_id);
    if spans.is_empty() {
        return error(
            StatusCode::NOT_FOUND,
            format!("no trace {trace_id} in the store (it may have been evicted)"),
        );
    }
    axum::Json(spans).into_response()
}

/// `GET /metrics`: the gateway, the client side and the process, as OpenMetrics text.
async fn metrics(State(core): State<Arc<Core>>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            telemetry::metrics::CONTENT_TYPE,
        )],
        core.metrics.encode_admin(),
    )
        .into_response()
}

/// `GET /api/logs[?level=&service=&q=&trace=&after=&limit=]`: the newest matching records,
/// oldest first.
async fn logs(
    State(core): State<Arc<Core>>,
    q: Result<Query<LogFilter>, axum::extract::rejection::QueryRejection>,
) -> Response {
    match q {
        Ok(Query(f)) => axum::Json(core.telemetry.logs.query(&f)).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, e.body_text()),
    }
}

/// `GET /api/metrics`: per service and instance, the last five minutes second by second, and
/// the process and host — computed now, not from the last snapshot.
async fn metrics_view(State(core): State<Arc<Core>>) -> Response {
    axum::Json(
        core.metrics
            .view(telemetry::rolling::WINDOW_SECONDS as usize),
    )
    .into_response()
}
