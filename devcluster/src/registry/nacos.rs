//! The part of Nacos's HTTP Open API that its SDKs use, served from the embedded registry and
//! config center: naming (register, list, beat, deregister) and config (get, publish, delete,
//! the long-polling listener), v1 with Nacos's own answers and v2 in its `{code, message,
//! data}` envelope. There is one registry underneath: an instance registered here is the
//! instance a Consul client sees, and the other way round.
//!
//! How Nacos's names map: a service in namespace `public` and group `DEFAULT_GROUP` is the
//! registry's service of the same name; another group is `GROUP@@service` (Nacos's own grouped
//! name), another namespace `namespace:GROUP@@service`. A config in group `LGO` is the live
//! config of the cluster (a TOML or properties document); any other config is kept in the KV
//! store under `nacos/namespace/group/dataId`.

/// A v1 and a v2 handler for each answering function (`fn(&Nacos, &Params) -> Result<Answer,
/// Failure>`): the two versions differ only in how the answer is put.
macro_rules! handlers {
    ($($v1:ident, $v2:ident => $f:ident;)*) => {
        $(
            pub(super) async fn $v1(
                axum::extract::State(n): axum::extract::State<super::Nacos>,
                query: axum::extract::RawQuery,
                body: axum::body::Bytes,
            ) -> axum::response::Response {
                super::v1($f(&n, &super::Params::of(&query, &body)))
            }

            pub(super) async fn $v2(
                axum::extract::State(n): axum::extract::State<super::Nacos>,
                query: axum::extract::RawQuery,
                body: axum::body::Bytes,
            ) -> axum::response::Response {
                super::v2($f(&n, &super::Params::of(&query, &body)))
            }
        )*
    };
}

mod config;
mod naming;

use crate::config::center::ConfigCenter;
use crate::config::kv::KvStore;
use crate::registry::Registry;
use axum::Router;
use axum::extract::RawQuery;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// The namespace a request names when it names none.
pub const PUBLIC: &str = "public";
/// The group a request names when it names none.
pub const DEFAULT_GROUP: &str = "DEFAULT_GROUP";
/// The group whose configs are the cluster's own live config.
pub const LGO_GROUP: &str = "LGO";

/// What the Nacos endpoint serves from.
#[derive(Clone)]
pub struct Nacos {
    pub(crate) registry: Registry,
    pub(crate) kv: KvStore,
    pub(crate) config: Arc<ConfigCenter>,
}

/// The Nacos Open API, v1 and v2, on one router (mounted at the root of the Nacos port).
pub fn router(registry: Registry, kv: KvStore, config: Arc<ConfigCenter>) -> Router {
    let nacos = Nacos {
        registry,
        kv,
        config,
    };
    Router::new()
        .route(
            "/nacos/v1/ns/instance",
            post(naming::v1_register)
                .put(naming::v1_update)
                .delete(naming::v1_deregister)
                .get(naming::v1_instance),
        )
        .route("/nacos/v1/ns/instance/list", get(naming::v1_list))
        .route(
            "/nacos/v1/ns/instance/beat",
            axum::routing::put(naming::v1_beat),
        )
        .route("/nacos/v1/ns/service/list", get(naming::v1_services))
        // What clients ask to tell whether the server is up.
        .route("/nacos/v1/ns/operator/metrics", get(naming::v1_metrics))
        .route("/nacos/v1/console/health/liveness", get(|| async { "OK" }))
        .route("/nacos/v1/console/health/readiness", get(|| async { "OK" }))
        .route(
            "/nacos/v1/cs/configs",
            get(config::v1_get)
                .post(config::v1_publish)
                .delete(config::v1_delete),
        )
        .route("/nacos/v1/cs/configs/listener", post(config::v1_listen))
        .route(
            "/nacos/v2/ns/instance",
            post(naming::v2_register)
                .put(naming::v2_update)
                .delete(naming::v2_deregister)
                .get(naming::v2_instance),
        )
        .route("/nacos/v2/ns/instance/list", get(naming::v2_list))
        .route(
            "/nacos/v2/cs/config",
            get(config::v2_get)
                .post(config::v2_publish)
                .delete(config::v2_delete),
        )
        .fallback(|| async {
            Failure::new(StatusCode::NOT_FOUND, 404, "no such Nacos endpoint").v1()
        })
        .with_state(nacos)
}

/// A request's parameters: the query string, then a form body (`application/x-www-form-
/// urlencoded`, as the SDKs send POST and PUT), the body's winning.
#[derive(Debug, Default)]
pub(crate) struct Params(HashMap<String, String>);

impl Params {
    pub(crate) fn of(query: &RawQuery, body: &[u8]) -> Params {
        let mut map: HashMap<String, String> = HashMap::new();
        if let Some(q) = &query.0 {
            map.extend(serde_urlencoded::from_str::<Vec<(String, String)>>(q).unwrap_or_default());
        }
        map.extend(serde_urlencoded::from_bytes::<Vec<(String, String)>>(body).unwrap_or_default());
        Params(map)
    }

    /// The value of `name`, when given and not blank.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    pub(crate) fn require(&self, name: &str) -> Result<&str, Failure> {
        self.get(name).ok_or_else(|| {
            Failure::new(
                StatusCode::BAD_REQUEST,
                10000,
                format!("Param '{name}' is required."),
            )
        })
    }

    /// A boolean parameter, in any case (`True`, as Python clients send it), `default` when
    /// absent.
    pub(crate) fn flag(&self, name: &str, default: bool) -> Result<bool, Failure> {
        match self.get(name) {
            None => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(Failure::new(
                StatusCode::BAD_REQUEST,
                20002,
                format!("Param '{name}' is invalid: {v:?} (expected true or false)"),
            )),
        }
    }

    /// A parameter read as `T` (a number), `default` when absent.
    pub(crate) fn parse<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, Failure> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| {
                Failure::new(
                    StatusCode::BAD_REQUEST,
                    20002,
                    format!("Param '{name}' is invalid: {v:?}"),
                )
            }),
        }
    }
}

/// A refusal: v1 answers it as Nacos does (`caused: …;` in plain text), v2 as `{code,
/// message, data: null}`.
#[derive(Debug)]
pub(crate) struct Failure {
    status: StatusCode,
    code: i32,
    message: String,
}

impl Failure {
    pub(crate) fn new(status: StatusCode, code: i32, message: impl Into<String>) -> Self {
        Failure {
            status,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Failure::new(StatusCode::NOT_FOUND, 20004, message)
    }

    pub(crate) fn v1(self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, "text/plain;charset=UTF-8")],
            format!("caused: {};", self.message),
        )
            .into_response()
    }

    pub(crate) fn v2(self) -> Response {
        (
            self.status,
            axum::Json(json!({"code": self.code, "message": self.message, "data": null})),
        )
            .into_response()
    }
}

/// A successful answer before it is put in v1's or v2's shape.
pub(crate) enum Answer {
    /// v1 answers the text as it is (`ok`, a config's content).
    Text(String, Vec<(&'static str, String)>),
    Json(Value),
}

impl Answer {
    fn v1(self) -> Response {
        match self {
            Answer::Text(text, headers) => {
                let mut h = HeaderMap::new();
                h.insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("text/plain;charset=UTF-8"),
                );
                for (name, value) in headers {
                    if let Ok(v) = header::HeaderValue::from_str(&value) {
                        h.insert(name, v);
                    }
                }
                (h, text).into_response()
            }
            Answer::Json(v) => axum::Json(v).into_response(),
        }
    }

    fn v2(self) -> Response {
        let data = match self {
            Answer::Text(text, _) => Value::String(text),
            Answer::Json(v) => v,
        };
        axum::Json(json!({"code": 0, "message": "success", "data": data})).into_response()
    }
}

pub(crate) fn v1(r: Result<Answer, Failure>) -> Response {
    r.map_or_else(Failure::v1, Answer::v1)
}

pub(crate) fn v2(r: Result<Answer, Failure>) -> Response {
    r.map_or_else(Failure::v2, Answer::v2)
}

/// Nacos's rule for a data id, group or namespace: letters, digits and `-_.:`.
pub(crate) fn valid_name(what: &str, name: &str) -> Result<(), Failure> {
    if name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
    {
        Ok(())
    } else {
        Err(Failure::new(
            StatusCode::BAD_REQUEST,
            20002,
            format!("invalid {what} {name:?}: letters, digits and -_.: only"),
        ))
    }
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
