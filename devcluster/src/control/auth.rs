//! The admin token (`LGO_ADMIN_TOKEN`). A cluster that listens beyond this machine (`--bind`)
//! must have one: the admin API then answers only requests that present it, and the registry's
//! write endpoints and KV writes (what could reroute or reconfigure the services) too — as
//! `Authorization: Bearer TOKEN` or Consul's `X-Consul-Token: TOKEN`. Reads of the registry stay
//! open, as Consul's default ACL policy leaves them.

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;

/// The variable the token is read from (the dashboard, `serve` and `ctl` alike).
pub const TOKEN_ENV: &str = "LGO_ADMIN_TOKEN";

#[derive(Clone)]
pub struct Token(Arc<str>);

/// Never printed: a debug dump of the options must not leak it.
impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

impl Token {
    pub fn new(token: &str) -> Token {
        Token(Arc::from(token))
    }

    /// The token `LGO_ADMIN_TOKEN` holds, when it holds one.
    pub fn from_env() -> Option<Token> {
        std::env::var(TOKEN_ENV)
            .ok()
            .filter(|t| !t.trim().is_empty())
            .map(|t| Token::new(t.trim()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `req` presents this token. Compared in constant time: how long a refusal takes
    /// says nothing about how much of a guess was right.
    fn presented_by(&self, req: &Request) -> bool {
        let h = req.headers();
        let bearer = h
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let consul = h.get("x-consul-token").and_then(|v| v.to_str().ok());
        [bearer, consul]
            .into_iter()
            .flatten()
            .any(|given| same(given.trim().as_bytes(), self.0.as_bytes()))
    }
}

/// Equality in time that depends on the lengths only.
fn same(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i % b.len().max(1)).copied().unwrap_or(0));
    }
    diff == 0
}

/// Every request needs the token (the admin API).
pub async fn require(State(t): State<Token>, req: Request, next: Next) -> Response {
    if t.presented_by(&req) {
        return next.run(req).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({"error": format!(
            "this cluster requires its admin token: send Authorization: Bearer TOKEN (ctl and --attach read it from {TOKEN_ENV})"
        )})),
    )
        .into_response()
}

/// Writes need the token; reads do not (the registry's Consul API and KV).
pub async fn require_for_writes(State(t): State<Token>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD) || t.presented_by(&req) {
        return next.run(req).await;
    }
    (
        StatusCode::FORBIDDEN,
        axum::Json(json!({"error": format!(
            "Permission denied: writes need the cluster's token (X-Consul-Token or Authorization: Bearer; set in {TOKEN_ENV})"
        )})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_only_whole() {
        assert!(same(b"s3cret-token", b"s3cret-token"));
        assert!(!same(b"s3cret-toke", b"s3cret-token"));
        assert!(!same(b"s3cret-tokenX", b"s3cret-token"));
        assert!(!same(b"S3cret-token", b"s3cret-token"));
        assert!(!same(b"", b"s3cret-token"));
    }
}
