//! The registry's Consul HTTP API and KV store, in process, fed a request made of the input:
//! method, path and query, body. Never a panic; never a 5xx but Consul's own (a TTL update of
//! a check without a TTL answers 500, as Consul does, and so does a `?dc=` other than dc1).
#![no_main]

use axum::body::Body;
use devcluster::config::kv::KvStore;
use devcluster::registry::Registry;
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;
use tower::ServiceExt;

static RT: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
});

const METHODS: [&str; 5] = ["GET", "PUT", "POST", "DELETE", "PATCH"];

fuzz_target!(|data: &[u8]| {
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    // The path up to the first newline, the body after it.
    let (path, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let path = format!("/v1/{}", String::from_utf8_lossy(path));
    let Ok(req) = http::Request::builder()
        .method(METHODS[m as usize % METHODS.len()])
        .uri(&path)
        .body(Body::from(body.to_vec()))
    else {
        return;
    };
    RT.block_on(async {
        let router = devcluster::registry::consul::router(Registry::new(), KvStore::new());
        let resp = router.oneshot(req).await.expect("infallible");
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("a body");
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !status.is_server_error()
                || text.contains("does not have associated TTL")
                || text.contains("No path to datacenter"),
            "{path} -> {status} {text}"
        );
    });
});
