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
    fn go_durations_parse_or_refuse_and_round_trip(text in ".{0,24}", ms in 0u64..10_000_000) {
        let _ = parse_go_duration(&text);
        let d = Duration::from_millis(ms);
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
                Just("/v1/"),
            ],
            "[a-zA-Z0-9._~%/-]{0,20}",
            proptest::option::of(
                "(index|wait|passing|recurse|keys|raw|cas|flags|separator|tag|note)(=[a-z0-9%.-]{0,6})?(&[a-z]{1,8}(=[0-9a-z]{0,4})?){0,2}"
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
        /// TTL answers 500, as Consul does); a refusal says why in JSON (a read of a missing
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
                !status.is_server_error() || text.contains("does not have associated TTL"),
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
