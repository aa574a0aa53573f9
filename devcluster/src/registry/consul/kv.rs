//! Consul's KV endpoints over the config center's store: `GET/PUT/DELETE /v1/kv/<key>` with
//! `?recurse`, `?keys`, `?raw`, `?cas`, `?flags` and blocking reads. Reads carry
//! `X-Consul-Index` even on 404 (clients block on a key that does not exist yet).

use super::api::error;
use super::blocking::Blocking;
use crate::config::kv::{KvEntry, KvError, KvStore};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use serde_json::{Value, json};
use std::collections::HashMap;

type Params = Query<HashMap<String, String>>;

pub fn routes(kv: KvStore) -> Router {
    Router::new()
        .route("/v1/kv/", get(get_root).put(put_root).delete(delete_root))
        .route("/v1/kv/{*key}", get(read).put(write).delete(remove))
        .with_state(kv)
}

fn entry_json(e: &KvEntry) -> Value {
    json!({
        "LockIndex": 0,
        "Key": e.key,
        "Flags": e.flags,
        // Consul keeps an empty value as nil.
        "Value": (!e.value.is_empty())
            .then(|| base64::engine::general_purpose::STANDARD.encode(&e.value)),
        "CreateIndex": e.create_index,
        "ModifyIndex": e.modify_index,
    })
}

fn with_index(mut resp: Response, index: u64) -> Response {
    let h = resp.headers_mut();
    h.insert("X-Consul-Index", HeaderValue::from(index));
    h.insert("X-Consul-KnownLeader", HeaderValue::from_static("true"));
    h.insert("X-Consul-LastContact", HeaderValue::from_static("0"));
    resp
}

fn not_found(index: u64) -> Response {
    with_index(StatusCode::NOT_FOUND.into_response(), index)
}

fn number(q: &HashMap<String, String>, name: &str) -> Result<Option<u64>, String> {
    q.get(name)
        .map(|s| {
            s.parse()
                .map_err(|_| format!("{name}: expected a non-negative integer, got \"{s}\""))
        })
        .transpose()
}

async fn get_root(kv: State<KvStore>, q: Params) -> Response {
    read(kv, Path(String::new()), q).await
}

async fn put_root() -> Response {
    error(StatusCode::BAD_REQUEST, "missing key name")
}

async fn delete_root(kv: State<KvStore>, q: Params) -> Response {
    remove(kv, Path(String::new()), q).await
}

/// Consul's flags are present-means-true for these.
fn present(q: &HashMap<String, String>, name: &str) -> bool {
    q.contains_key(name)
}

async fn read(State(kv): State<KvStore>, Path(key): Path<String>, Query(q): Params) -> Response {
    let b = match Blocking::from_query(&q) {
        Ok(b) => b,
        Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
    };
    let (recurse, keys) = (present(&q, "recurse"), present(&q, "keys"));
    if key.is_empty() && !recurse && !keys {
        return error(StatusCode::BAD_REQUEST, "missing key name");
    }
    let prefix = recurse || keys;
    kv.wait_past(&key, prefix, b.index(), b.wait()).await;
    let index = kv.index_of(&key, prefix);
    if keys {
        let sep = q.get("separator").filter(|s| !s.is_empty());
        let mut names: Vec<String> = Vec::new();
        for e in kv.list(&key) {
            let rest = &e.key[key.len()..];
            let name = match sep.and_then(|s| rest.find(s.as_str()).map(|i| i + s.len())) {
                Some(end) => format!("{key}{}", &rest[..end]),
                None => e.key.clone(),
            };
            if names.last() != Some(&name) {
                names.push(name);
            }
        }
        if names.is_empty() && !key.is_empty() {
            return not_found(index);
        }
        return with_index(axum::Json(names).into_response(), index);
    }
    if recurse {
        let list = kv.list(&key);
        if list.is_empty() {
            return not_found(index);
        }
        let body: Vec<Value> = list.iter().map(entry_json).collect();
        return with_index(axum::Json(body).into_response(), index);
    }
    let Some(e) = kv.get(&key) else {
        return not_found(index);
    };
    if present(&q, "raw") {
        let resp = (
            [
                (header::CONTENT_TYPE, "text/plain"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::CONTENT_SECURITY_POLICY, "sandbox"),
            ],
            e.value,
        )
            .into_response();
        return with_index(resp, index);
    }
    with_index(axum::Json([entry_json(&e)]).into_response(), index)
}

async fn write(
    State(kv): State<KvStore>,
    Path(key): Path<String>,
    Query(q): Params,
    body: Bytes,
) -> Response {
    if q.contains_key("acquire") || q.contains_key("release") {
        return error(
            StatusCode::BAD_REQUEST,
            "sessions (acquire/release) are not supported by the lgo-dash KV store",
        );
    }
    let (flags, cas) = match number(&q, "flags").and_then(|f| Ok((f, number(&q, "cas")?))) {
        Ok(x) => x,
        Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
    };
    match kv.put(&key, body.to_vec(), flags, cas) {
        Ok(done) => axum::Json(done.is_some()).into_response(),
        Err(e @ KvError::TooLarge { .. }) => error(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
        // A config key whose value would make the config invalid: the reason names the key,
        // the value and what is expected; nothing was stored.
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

async fn remove(State(kv): State<KvStore>, Path(key): Path<String>, Query(q): Params) -> Response {
    let recurse = present(&q, "recurse");
    if key.is_empty() && !recurse {
        return error(StatusCode::BAD_REQUEST, "missing key name");
    }
    let cas = match number(&q, "cas") {
        Ok(c) => c,
        Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
    };
    axum::Json(kv.delete(&key, recurse, cas)).into_response()
}
