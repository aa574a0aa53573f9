//! Parsers that take what clients send, fed arbitrary input (proptest: 256 cases per property
//! per run, shrunk on failure): none panics, each refuses with a message or reads back what a
//! well-formed input meant.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use devcluster::config::kv::{KvError, KvStore};
use devcluster::config::layers::Layer;
use devcluster::duration::{format_go_duration, parse_go_duration};
use devcluster::registry::consul::parse_registration;
use devcluster::telemetry::context::{extract, parse_traceparent};
use devcluster::telemetry::{SpanId, TraceId};
use proptest::prelude::*;
use std::time::Duration;

proptest! {
    /// Go durations: any text is an answer or a refusal; a duration written out reads back.
    #[test]
    fn go_durations_parse_or_refuse_and_round_trip(text in ".{0,24}", ns in any::<u64>()) {
        let _ = parse_go_duration(&text);
        // To the nanosecond, the whole range (the fuzzer found 4ns written as 0s).
        let d = Duration::from_nanos(ns);
        prop_assert_eq!(parse_go_duration(&format_go_duration(d)), Ok(d));
    }

    /// W3C traceparent: any text, no panic; a well-formed one reads back its ids.
    #[test]
    fn traceparent_reads_back_what_was_written(
        text in ".{0,80}",
        trace in 1u128..,
        span in 1u64..,
    ) {
        let _ = parse_traceparent(&text);
        let header = format!("00-{trace:032x}-{span:016x}-01");
        let r = parse_traceparent(&header).expect("a well-formed traceparent");
        prop_assert_eq!(r.trace_id, TraceId(trace));
        prop_assert_eq!(r.parent, Some(SpanId(span)));
        // A zero trace id is invalid, as the spec says.
        let zero = format!("00-{:032x}-{span:016x}-01", 0u128);
        prop_assert!(parse_traceparent(&zero).is_none());
    }

    /// The framework's X-Trace-ID / X-Span-ID and traceparent, any visible ASCII values
    /// together: no panic.
    #[test]
    fn trace_headers_of_any_value_never_panic(
        tp in "[ -~]{0,70}",
        tid in "[ -~]{0,40}",
        sid in "[ -~]{0,20}",
    ) {
        let mut h = http::HeaderMap::new();
        for (name, v) in [("traceparent", tp), ("x-trace-id", tid), ("x-span-id", sid)] {
            if let Ok(v) = http::HeaderValue::from_str(&v) {
                h.insert(name, v);
            }
        }
        let _ = extract(&h);
    }

    /// A Consul service definition: any bytes are a registration or a message saying why not.
    #[test]
    fn registrations_of_any_bytes_are_read_or_refused_with_a_reason(
        body in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        if let Err(msg) = parse_registration(&body) {
            prop_assert!(!msg.is_empty());
        }
    }

    /// JSON objects with Consul's fields in any case and of any JSON type.
    #[test]
    fn registrations_with_fields_of_any_type_never_panic(
        name in prop_oneof![Just("Name"), Just("name"), Just("ID"), Just("Port"), Just("Check"),
                            Just("Checks"), Just("Meta"), Just("Tags"), Just("Weights")],
        value in prop_oneof![
            Just(serde_json::json!(null)), Just(serde_json::json!(-1)),
            Just(serde_json::json!(70000)), Just(serde_json::json!("x")),
            Just(serde_json::json!([1, "a", null])), Just(serde_json::json!({"HTTP": 5})),
            Just(serde_json::json!({"TTL": "-3s"})), Just(serde_json::json!({"GRPC": "::"})),
        ],
    ) {
        let body = serde_json::json!({"Name": "svc", name: value});
        let _ = parse_registration(body.to_string().as_bytes());
    }

    /// KV keys: any key is stored or refused as a bad key; a stored one stays in its namespace.
    #[test]
    fn kv_keys_are_stored_inside_their_namespace_or_refused(key in ".{0,40}") {
        let kv = KvStore::new();
        match kv.put(&key, b"v".to_vec(), None, None) {
            Ok(_) => {
                prop_assert!(!key.starts_with('/'));
                prop_assert!(!key.split('/').any(|s| s == ".." || s == "."));
                prop_assert!(!key.chars().any(char::is_control));
            }
            Err(KvError::BadKey(k)) => prop_assert_eq!(k, key),
            Err(other) => prop_assert!(false, "unexpected refusal {other}"),
        }
    }

    /// A config layer of any text parses or is refused with where and why.
    #[test]
    fn config_text_parses_or_is_refused_with_its_origin(text in "[a-z_.=\\[\\]\"0-9 \n#-]{0,120}") {
        if let Err(msg) = Layer::parse("test.toml", &text) {
            prop_assert!(msg.contains("test.toml"), "{}", msg);
        }
    }
}

/// The registry's Consul API and KV store, in process, fed any method, path, query and body.
mod consul_api {
    use super::*;
    use axum::body::Body;
    use devcluster::registry::Registry;
    use tower::ServiceExt;

    fn method() -> impl Strategy<Value = http::Method> {
        prop_oneof![
            Just(http::Method::GET),
            Just(http::Method::PUT),
            Just(http::Method::POST),
            Just(http::Method::DELETE),
            Just(http::Method::PATCH),
        ]
    }

    fn path() -> impl Strategy<Value = String> {
        (
            prop_oneof![
                Just("/v1/agent/service/register"),
                Just("/v1/agent/service/deregister/"),
                Just("/v1/agent/check/pass/"),
                Just("/v1/agent/check/update/"),
                Just("/v1/health/service/"),
                Just("/v1/catalog/service/"),
                Just("/v1/catalog/services"),
                Just("/v1/kv/"),
                Just("/v1/kv/lgo/"),
                Just("/v1/agent/check/register"),
                Just("/v1/agent/check/deregister/"),
                Just("/v1/agent/health/service/id/"),
                Just("/v1/health/checks/"),
                Just("/v1/health/state/"),
                Just("/v1/catalog/node/"),
                Just("/v1/"),
            ],
            "[a-zA-Z0-9._~%/-]{0,20}",
            proptest::option::of(
                "(index|wait|passing|recurse|keys|raw|cas|flags|separator|tag|note|filter|node-meta|dc|ns|replace-existing-checks)(=[a-z0-9%.=:-]{0,8})?(&[a-z]{1,8}(=[0-9a-z]{0,4})?){0,2}"
            ),
        )
            .prop_map(|(p, rest, q)| match q {
                Some(q) => format!("{p}{rest}?{q}"),
                None => format!("{p}{rest}"),
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Never a panic, never a 5xx but Consul's own (a TTL update of a check that has no
        /// TTL answers 500, as Consul does, and so does a `?dc=` other than dc1); a refusal says why in JSON (a read of a missing
        /// key or instance answers 404 with no body, as Consul does).
        #[test]
        fn any_request_is_answered_or_refused_with_a_reason(
            method in method(),
            path in path(),
            body in proptest::collection::vec(any::<u8>(), 0..120),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let (status, text) = rt.block_on(async {
                let router = devcluster::registry::consul::router(Registry::new(), KvStore::new());
                let Ok(req) = http::Request::builder()
                    .method(method.clone())
                    .uri(&path)
                    .body(Body::from(body.clone()))
                else {
                    return (http::StatusCode::BAD_REQUEST, String::from("{\"error\":\"bad uri\"}"));
                };
                let resp = router.oneshot(req).await.unwrap();
                let status = resp.status();
                let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
                (status, String::from_utf8_lossy(&bytes).into_owned())
            });
            prop_assert!(
                !status.is_server_error() || text.contains("does not have associated TTL")
                    || text.contains("No path to datacenter"),
                "{} {} -> {} {}", method, path, status, text
            );
            if status.is_client_error() && !(status == 404 && method == http::Method::GET)
                && status != 405
            {
                let v: serde_json::Value = serde_json::from_str(&text)
                    .unwrap_or_else(|_| panic!("{method} {path} -> {status}: not JSON: {text:?}"));
                prop_assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{}", text);
            }
        }
    }
}

/// The gateway's route table against a plain reading of the rules: a path's non-empty
/// segments, the first route (in table order) with as many segments whose literals are equal,
/// its method allowed, wins; the rewrite puts each parameter's value where its name is.
mod routes {
    use devcluster::config::RouteConfig;
    use devcluster::gateway::routes::RouteTable;
    use proptest::prelude::*;

    /// A few segments mostly (so that routes and paths meet often), sometimes more than the
    /// table's fast path holds (16).
    fn segments<S>(one: S) -> impl Strategy<Value = Vec<String>>
    where
        S: Strategy<Value = String> + Clone,
    {
        prop_oneof![
            4 => proptest::collection::vec(one.clone(), 0..4),
            1 => proptest::collection::vec(one, 15..19),
        ]
    }

    /// A route: its segments (literal, or `{p}`-style parameter), methods (empty: any).
    fn route() -> impl Strategy<Value = RouteConfig> {
        (
            segments(prop_oneof!["[ab]", "\\{[pq]\\}"]),
            proptest::sample::subsequence(vec!["GET", "POST"], 0..=2),
            "[st]",
        )
            .prop_map(|(segs, methods, service)| {
                let params: Vec<&String> = segs.iter().filter(|s| s.starts_with('{')).collect();
                let rewrite = format!(
                    "/up/{}",
                    params
                        .iter()
                        .map(|p| p.as_str())
                        .collect::<Vec<_>>()
                        .join("/")
                );
                RouteConfig {
                    path: format!("/{}", segs.join("/")),
                    service,
                    rewrite,
                    methods: methods.into_iter().map(str::to_string).collect(),
                }
            })
    }

    /// What the rules say `METHOD path` goes to: Ok((pattern, rewritten path)), or Err with
    /// the first route whose path matched but not its method.
    fn model(
        table: &[RouteConfig],
        method: &str,
        path: &str,
    ) -> Result<(String, String), Option<String>> {
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let mut wrong = None;
        for r in table {
            let segs: Vec<&str> = r.path.split('/').filter(|s| !s.is_empty()).collect();
            if segs.len() != parts.len()
                || segs
                    .iter()
                    .zip(&parts)
                    .any(|(s, p)| !s.starts_with('{') && s != p)
            {
                continue;
            }
            if !r.methods.is_empty() && !r.methods.iter().any(|m| m == method) {
                wrong.get_or_insert(r.path.clone());
                continue;
            }
            let value = |name: &str| {
                segs.iter()
                    .position(|s| *s == name)
                    .map_or("", |i| parts[i])
                    .to_string()
            };
            let rewritten: Vec<String> = r
                .rewrite
                .split('/')
                .filter(|s| !s.is_empty())
                .map(|s| {
                    if s.starts_with('{') {
                        value(s)
                    } else {
                        s.to_string()
                    }
                })
                .collect();
            return Ok((r.path.clone(), format!("/{}", rewritten.join("/"))));
        }
        Err(wrong)
    }

    proptest! {
        #[test]
        fn the_route_table_finds_what_the_rules_say(
            table in proptest::collection::vec(route(), 1..6),
            parts in segments("[ab]".prop_map(|s| s)),
            slashes in "/{1,2}",
            trailing in any::<bool>(),
            method in prop_oneof![Just("GET"), Just("POST"), Just("DELETE")],
        ) {
            let compiled = RouteTable::new(&table).expect("generated routes are valid");
            let mut path = format!("/{}", parts.join(&slashes));
            if trailing {
                path.push('/');
            }
            let got = compiled
                .find(method, &path)
                .map(|m| (m.route.to_string(), m.path))
                .map_err(|r| r.map(|r| r.pattern.to_string()));
            prop_assert_eq!(got, model(&table, method, &path), "{} {}", method, path);
        }

        /// Any text as a path (and any method): an answer, never a panic.
        #[test]
        fn any_path_is_matched_or_not_without_panic(path in ".{0,200}", method in "[A-Z]{0,8}") {
            let table = devcluster::config::Config::defaults().routes;
            let compiled = RouteTable::new(&table).unwrap();
            if let Ok(m) = compiled.find(&method, &path) {
                prop_assert!(m.path.starts_with('/'));
            }
        }
    }
}

/// OTLP/HTTP export bodies, as an OpenTelemetry SDK (or anything else) sends them.
mod otlp {
    use devcluster::telemetry::otlp::Receiver;
    use devcluster::telemetry::{LogStore, SpanId, SpanStore, TraceId};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use proptest::prelude::*;
    use prost::Message;
    use std::sync::Arc;

    fn receiver() -> (Receiver, Arc<SpanStore>) {
        let spans = Arc::new(SpanStore::new(10_000));
        let r = Receiver::new(spans.clone(), Arc::new(LogStore::new(10_000)));
        (r, spans)
    }

    fn span(
        trace: u128,
        id: u64,
        parent: Option<u64>,
        name: String,
        start: u64,
        took: u64,
    ) -> Span {
        Span {
            trace_id: trace.to_be_bytes().to_vec(),
            span_id: id.to_be_bytes().to_vec(),
            parent_span_id: parent.map(|p| p.to_be_bytes().to_vec()).unwrap_or_default(),
            name,
            start_time_unix_nano: start,
            end_time_unix_nano: start + took,
            ..Span::default()
        }
    }

    proptest! {
        /// Any bytes as protobuf or JSON, for traces and for logs: taken or refused with a
        /// message, never a panic.
        #[test]
        fn export_bodies_of_any_bytes_are_taken_or_refused(
            body in proptest::collection::vec(any::<u8>(), 0..300),
            json in any::<bool>(),
        ) {
            let (r, _) = receiver();
            if let Err(m) = r.take_traces_body(json, &body) {
                prop_assert!(!m.is_empty());
            }
            if let Err(m) = r.take_logs_body(json, &body) {
                prop_assert!(!m.is_empty());
            }
        }

        /// A valid export, in either encoding, is stored span for span: ids, parent, name,
        /// service and duration as sent.
        #[test]
        fn a_trace_export_reads_back_span_for_span(
            spans in proptest::collection::vec(
                (1u128.., 1u64.., proptest::option::of(1u64..), ".{0,16}", 0u64..1 << 60, 0u64..1 << 40),
                1..12,
            ),
            json in any::<bool>(),
        ) {
            let sent: Vec<Span> = spans
                .iter()
                .map(|(t, s, p, n, start, took)| span(*t, *s, *p, n.clone(), *start, *took))
                .collect();
            let req = ExportTraceServiceRequest {
                resource_spans: vec![ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![KeyValue {
                            key: "service.name".into(),
                            value: Some(AnyValue {
                                value: Some(any_value::Value::StringValue("inventory".into())),
                            }),
                            ..KeyValue::default()
                        }],
                        ..Resource::default()
                    }),
                    scope_spans: vec![ScopeSpans { spans: sent, ..ScopeSpans::default() }],
                    ..ResourceSpans::default()
                }],
            };
            let body = if json { serde_json::to_vec(&req).unwrap() } else { req.encode_to_vec() };
            let (r, store) = receiver();
            prop_assert_eq!(r.take_traces_body(json, &body), Ok(spans.len()));
            for (t, s, p, n, _, took) in &spans {
                let stored = store.trace(TraceId(*t));
                let got = stored.iter().find(|x| x.span_id == SpanId(*s));
                prop_assert!(got.is_some(), "span {:x} of trace {:x} stored", s, t);
                let got = got.unwrap();
                prop_assert_eq!(got.parent_id, p.map(SpanId));
                prop_assert_eq!(&got.name, n);
                prop_assert_eq!(&got.service, "inventory");
                prop_assert_eq!(got.duration_ns, *took);
            }
        }
    }
}

/// Every config key set to any value through the config center (as `ctl config set`, the
/// dashboard and a KV write do): applied and read back, or refused naming a key — and then
/// nothing changed.
mod config_setters {
    use devcluster::config::center::{ChangeError, ConfigCenter};
    use devcluster::config::kv::KvStore;
    use devcluster::config::layers::{self, Layer};
    use proptest::prelude::*;
    use std::sync::{Arc, LazyLock};

    /// Every leaf key of the defaults.
    static KEYS: LazyLock<Vec<String>> = LazyLock::new(|| {
        let defaults = Layer::defaults().unwrap();
        layers::leaves(&defaults.table).into_keys().collect()
    });

    fn center() -> Arc<ConfigCenter> {
        ConfigCenter::new(
            vec![Layer::defaults().unwrap()],
            None,
            KvStore::new(),
            Box::new(|_, _| {}),
        )
        .unwrap()
    }

    proptest! {
        #[test]
        fn any_value_for_any_key_is_applied_or_refused_and_changes_nothing(
            index in any::<proptest::sample::Index>(),
            value in prop_oneof![
                "-?[0-9]{1,12}", "-?[0-9]{1,4}\\.[0-9]{1,3}", "true|false", "\"[ -~]{0,12}\"",
                "[a-z_]{1,12}", "\\[[0-9, ]{0,10}\\]", "[ -~]{0,16}",
            ],
        ) {
            let key = index.get(&KEYS).clone();
            let c = center();
            let before = c.config();
            match c.set(&key, &value, "proptest") {
                Ok(_) => {
                    let e = c.get(&key);
                    prop_assert!(e.is_some(), "{} set, then read back", key);
                    prop_assert_eq!(
                        e.unwrap().value,
                        layers::parse_value(&value).to_string(),
                        "{} = {}", key, value
                    );
                }
                Err(ChangeError::Refused(invalid)) => {
                    prop_assert!(!invalid.key.is_empty() && !invalid.expected.is_empty());
                    prop_assert_eq!(c.config(), before, "a refusal leaves the config as it was");
                    prop_assert!(c.history().is_empty());
                }
                Err(other) => prop_assert!(false, "{} = {}: {}", key, value, other),
            }
        }
    }
}
