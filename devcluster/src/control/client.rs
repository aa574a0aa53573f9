//! A client of the admin API, used by `lgo-dash ctl` and by `--attach`.

use super::{Command, ControlError};
use crate::balance::service::BalancerSnapshot;
use crate::breaker::BreakerSnapshot;
use crate::cluster::RouteExplain;
use crate::config::center::{Change, Entry};
use crate::duration::format_go_duration;
use crate::handle::{ClusterSnapshot, InstanceSnapshot, SnapshotDelta};
use crate::telemetry::metrics::MetricsView;
use crate::telemetry::{LogFilter, LogRecord, SpanRecord, TraceFilter, TraceId, TraceSummary};
use serde::de::DeserializeOwned;
use std::time::Duration;

/// Bound on an ordinary admin call (long polls add their wait on top).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct AdminClient {
    base: String,
    http: reqwest::Client,
}

impl AdminClient {
    pub fn new(base: impl Into<String>) -> Self {
        let base = base.into().trim_end_matches('/').to_string();
        // A cluster with an admin token answers only requests that present it.
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(t) = super::auth::Token::from_env()
            && let Ok(v) = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", t.as_str()))
        {
            headers.insert(reqwest::header::AUTHORIZATION, v);
        }
        let http = reqwest::Client::builder()
            .no_proxy()
            .default_headers(headers)
            .build()
            .unwrap_or_default();
        AdminClient { base, http }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    async fn call<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<T, ControlError> {
        let resp = req
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| ControlError::Unreachable {
                url: self.base.clone(),
                // "Connection refused (os error 111)", not the client library's wrapping.
                message: crate::client::headers::root_cause(&e),
            })?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| ControlError::Unreachable {
            url: self.base.clone(),
            message: e.to_string(),
        })?;
        if !status.is_success() {
            let answer = serde_json::from_slice::<serde_json::Value>(&body).ok();
            // A refused value comes back as the same typed refusal it was on the server.
            if let Some(invalid) = answer
                .clone()
                .and_then(|v| serde_json::from_value::<crate::config::Invalid>(v).ok())
            {
                return Err(ControlError::Refused(invalid));
            }
            let message = answer
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            return Err(ControlError::Remote {
                status: status.as_u16(),
                message,
            });
        }
        serde_json::from_slice(&body).map_err(|e| ControlError::Remote {
            status: status.as_u16(),
            message: format!("unreadable answer: {e}"),
        })
    }

    /// The snapshot; with `after > 0`, waits up to `wait` for a newer one.
    pub async fn snapshot(
        &self,
        after: u64,
        wait: Duration,
    ) -> Result<ClusterSnapshot, ControlError> {
        let url = format!(
            "{}/api/snapshot?after={after}&wait={}",
            self.base,
            format_go_duration(wait)
        );
        self.call(self.http.get(url), CALL_TIMEOUT + wait).await
    }

    /// The slices changed since version `after` of run `epoch` (every slice when `after` is 0
    /// or the cluster is another run), waiting up to `wait` for a change.
    pub async fn snapshot_since(
        &self,
        after: u64,
        epoch: u64,
        wait: Duration,
    ) -> Result<SnapshotDelta<'static>, ControlError> {
        let url = format!(
            "{}/api/snapshot?after={after}&epoch={epoch}&slices=1&wait={}",
            self.base,
            format_go_duration(wait)
        );
        self.call(self.http.get(url), CALL_TIMEOUT + wait).await
    }

    pub async fn instances(&self) -> Result<Vec<InstanceSnapshot>, ControlError> {
        self.call(
            self.http.get(format!("{}/api/instances", self.base)),
            CALL_TIMEOUT,
        )
        .await
    }

    pub async fn send(&self, cmd: &Command) -> Result<String, ControlError> {
        self.send_as(cmd, "ctl").await
    }

    /// Sends `cmd` as `who` (the config history's "who" of what it changes).
    pub async fn send_as(&self, cmd: &Command, who: &str) -> Result<String, ControlError> {
        let url = format!("{}/api/commands?who={}", self.base, encode(who));
        let v: serde_json::Value = self
            .call(self.http.post(url).json(cmd), CALL_TIMEOUT)
            .await?;
        Ok(v["message"].as_str().unwrap_or_default().to_string())
    }

    pub async fn breakers(&self) -> Result<Vec<BreakerSnapshot>, ControlError> {
        self.call(
            self.http.get(format!("{}/api/breakers", self.base)),
            CALL_TIMEOUT,
        )
        .await
    }

    pub async fn balancers(&self) -> Result<Vec<BalancerSnapshot>, ControlError> {
        self.call(
            self.http.get(format!("{}/api/balancers", self.base)),
            CALL_TIMEOUT,
        )
        .await
    }

    pub async fn explain(&self, method: &str, path: &str) -> Result<RouteExplain, ControlError> {
        let url = format!(
            "{}/api/route/explain?method={}&path={}",
            self.base,
            encode(method),
            encode(path)
        );
        self.call(self.http.get(url), CALL_TIMEOUT).await
    }

    pub async fn traces(&self, f: &TraceFilter) -> Result<Vec<TraceSummary>, ControlError> {
        let url = format!("{}/api/traces?{}", self.base, query_of(f));
        self.call(self.http.get(url), CALL_TIMEOUT).await
    }

    pub async fn metrics(&self) -> Result<MetricsView, ControlError> {
        self.call(
            self.http.get(format!("{}/api/metrics", self.base)),
            CALL_TIMEOUT,
        )
        .await
    }

    pub async fn logs(&self, f: &LogFilter) -> Result<Vec<LogRecord>, ControlError> {
        let url = format!("{}/api/logs?{}", self.base, query_of(f));
        self.call(self.http.get(url), CALL_TIMEOUT).await
    }

    pub async fn config_entries(&self) -> Result<ConfigEntries, ControlError> {
        self.call(
            self.http.get(format!("{}/api/config", self.base)),
            CALL_TIMEOUT,
        )
        .await
    }

    pub async fn config_get(&self, key: &str) -> Result<Entry, ControlError> {
        let url = format!("{}/api/config/key/{}", self.base, encode(key));
        self.call(self.http.get(url), CALL_TIMEOUT).await
    }

    /// Sets `key` (`None`: unsets it); the changes it made.
    pub async fn config_set(
        &self,
        key: &str,
        value: Option<&str>,
        who: &str,
    ) -> Result<ConfigApplied, ControlError> {
        let body = serde_json::json!({"key": key, "value": value, "who": who});
        let url = format!("{}/api/config", self.base);
        self.call(self.http.post(url).json(&body), CALL_TIMEOUT)
            .await
    }

    pub async fn config_history(&self) -> Result<Vec<Change>, ControlError> {
        self.call(
            self.http.get(format!("{}/api/config/history", self.base)),
            CALL_TIMEOUT,
        )
        .await
    }

    /// What switching to environment `name` would change; with `apply`, switches.
    pub async fn config_env(&self, name: &str, apply: bool) -> Result<ConfigApplied, ControlError> {
        let url = format!("{}/api/config/env/{}", self.base, encode(name));
        let req = if apply {
            self.http.post(url)
        } else {
            self.http.get(url)
        };
        self.call(req, CALL_TIMEOUT).await
    }

    pub async fn config_undo(&self) -> Result<ConfigApplied, ControlError> {
        let url = format!("{}/api/config/undo", self.base);
        self.call(self.http.post(url), CALL_TIMEOUT).await
    }

    pub async fn trace(&self, id: TraceId) -> Result<Vec<SpanRecord>, ControlError> {
        self.call(
            self.http.get(format!("{}/api/traces/{id}", self.base)),
            CALL_TIMEOUT,
        )
        .await
    }
}

/// A filter as query parameters, by its serde names (what the admin API's `Query` reads back):
/// absent and `false` fields are left out.
fn query_of<T: serde::Serialize>(filter: &T) -> String {
    let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(filter) else {
        return String::new();
    };
    fields
        .iter()
        .filter_map(|(k, v)| {
            let v = match v {
                serde_json::Value::Null | serde_json::Value::Bool(false) => return None,
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Some(format!("{k}={}", encode(&v)))
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes a path segment (instance ids may hold anything a Consul client sent).
fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `GET /api/config`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ConfigEntries {
    pub version: u64,
    pub entries: Vec<Entry>,
}

/// What a config write did.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ConfigApplied {
    pub version: u64,
    pub changes: Vec<Change>,
}
