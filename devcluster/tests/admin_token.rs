//! With an admin token (`LGO_ADMIN_TOKEN`, required by `--bind` beyond loopback) the admin API
//! answers only requests that present it, the registry's writes and KV writes too; registry
//! reads stay open; a wrong token is refused like none.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use devcluster::cluster::{Cluster, ClusterOptions};
use devcluster::config::Config;
use devcluster::control::auth::Token;
use reqwest::StatusCode;

#[tokio::test]
async fn the_token_guards_the_admin_api_and_registry_writes_not_reads() {
    let cluster = Cluster::start(
        ClusterOptions::new(Config::defaults())
            .auto_ports(true)
            .traffic(false)
            .admin_token(Some(Token::new("s3cret"))),
    )
    .await
    .unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let admin = cluster.admin_url();
    let registry = cluster.registry_url();

    let r = http
        .get(format!("{admin}/api/instances"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("LGO_ADMIN_TOKEN"),
        "the refusal says where the token goes: {body}"
    );
    for wrong in ["Bearer s3cre", "Bearer s3cret2", "s3cret", "Bearer "] {
        let r = http
            .get(format!("{admin}/api/instances"))
            .header("authorization", wrong)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{wrong:?}");
    }
    let r = http
        .get(format!("{admin}/api/instances"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let service = r#"{"ID":"pay-1","Name":"payments","Port":7001}"#;
    let r = http
        .put(format!("{registry}/v1/agent/service/register"))
        .body(service)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "a write without the token"
    );
    assert!(
        cluster.registry().instance("pay-1").is_none(),
        "nothing registered"
    );
    let r = http
        .put(format!("{registry}/v1/agent/service/register"))
        .header("x-consul-token", "s3cret")
        .body(service)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(cluster.registry().instance("pay-1").is_some());

    // Reads need no token, as with Consul's default policy.
    let r = http
        .get(format!("{registry}/v1/health/service/payments"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // KV writes are writes.
    let r = http
        .put(format!("{registry}/v1/kv/team/flag"))
        .body("on")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = http
        .put(format!("{registry}/v1/kv/team/flag"))
        .bearer_auth("s3cret")
        .body("on")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    cluster.shutdown().await;
}
