//! What the tests of the shared stores (`etcd.rs`, `consul_store.rs`, included by path) have in
//! common: an instance whose health the test sets through its TTL check, and waiting for what
//! another registry sees.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use devcluster::registry::{CheckKind, CheckSpec, Health, Registration, Registry};
use std::time::{Duration, Instant};

/// An instance of `payments` with a TTL check, passing at first.
pub fn instance(id: &str) -> Registration {
    Registration {
        id: id.into(),
        name: "payments".into(),
        address: "127.0.0.1".into(),
        port: 7000,
        meta: [("version".to_string(), "2.1.0".to_string())].into(),
        weight_passing: 1,
        weight_warning: 1,
        checks: vec![CheckSpec {
            id: String::new(),
            name: "payments alive".into(),
            kind: CheckKind::Ttl {
                ttl: Duration::from_secs(60),
            },
            initial: Some(Health::Passing),
            notes: String::new(),
            deregister_critical_after: None,
        }],
        ..Default::default()
    }
}

/// Waits until `f` holds, failing with `what` after `limit`.
pub async fn until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let started = Instant::now();
    while !f() {
        assert!(started.elapsed() < limit, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn health_in(r: &Registry, id: &str) -> Option<Health> {
    r.instance(id).map(|i| i.health)
}
