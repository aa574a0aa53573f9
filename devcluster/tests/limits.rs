//! Size limits on every server of the cluster: a request head over 64 KiB is refused with 431,
//! a body over what an API buffers with 413, each said in JSON; a gRPC request whose metadata
//! is over 64 KiB is refused, and the server goes on serving.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{http, start};
use devcluster::registry::InstanceView;
use serde_json::Value;
use std::time::Duration;
use tonic::codegen::http::uri::PathAndQuery;

/// Every HTTP/1.1 server of a running cluster, by name.
fn http_servers(cluster: &devcluster::cluster::Cluster) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = cluster
        .endpoints()
        .iter()
        .filter(|e| e.name != "otlp-grpc")
        .map(|e| (e.name.clone(), e.url.clone()))
        .collect();
    for service in ["user-service", "order-service"] {
        let i = cluster.registry().discover(service).remove(0);
        out.push((i.id.clone(), i.base_url()));
    }
    out
}

async fn json_refusal(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v: Value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("a JSON refusal, not {text:?} ({status})"));
    assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
    (status, v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_over_64k_is_refused_with_431_on_every_http_server() {
    let cluster = start().await;
    let big = "x".repeat(80 * 1024);
    for (name, url) in http_servers(&cluster) {
        let r = http()
            .get(format!("{url}/health"))
            .header("x-padding", &big)
            .send()
            .await
            .unwrap();
        let (status, v) = json_refusal(r).await;
        assert_eq!(status, 431, "{name}: {v}");
        // And the server still answers an ordinary request.
        let ok = http().get(format!("{url}/health")).send().await.unwrap();
        assert_ne!(ok.status().as_u16(), 431, "{name} after a refusal");
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_refused_with_413_in_json() {
    let cluster = start().await;
    let body = vec![b' '; 3 << 20];
    let user = cluster.registry().discover("user-service").remove(0);
    for (what, req) in [
        (
            "a config edit",
            http().post(format!("{}/api/config", cluster.admin_url())),
        ),
        (
            "a registration",
            http().put(format!(
                "{}/v1/agent/service/register",
                cluster.registry_url()
            )),
        ),
        (
            "a user created on an instance",
            http().post(format!("{}/users", user.base_url())),
        ),
        (
            "a user created through the gateway",
            http().post(format!("{}/api/users", cluster.gateway_url())),
        ),
    ] {
        let r = req
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let (status, v) = json_refusal(r).await;
        assert_eq!(status, 413, "{what}: {v}");
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .contains("at most 2097152 bytes"),
            "{what} names the limit: {v}"
        );
    }
    cluster.shutdown().await;
}

#[derive(Clone, PartialEq, prost::Message)]
struct GetUserRequest {
    #[prost(uint64, tag = "1")]
    id: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct User {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(string, tag = "2")]
    name: String,
}

/// `GetUser(1)` on `i`'s gRPC port, with `padding` bytes of metadata, on a new connection.
async fn get_user(i: &InstanceView, padding: usize) -> Result<User, tonic::Status> {
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}:{}", i.address, i.port))
            .unwrap()
            .timeout(Duration::from_secs(5))
            .connect()
            .await
            .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let mut req = tonic::Request::new(GetUserRequest { id: 1 });
    if padding > 0 {
        req.metadata_mut()
            .insert("x-padding", "x".repeat(padding).parse().unwrap());
    }
    let path = PathAndQuery::from_static("/lgo.user.v1.UserService/GetUser");
    grpc.unary(
        req,
        path,
        tonic_prost::ProstCodec::<GetUserRequest, User>::default(),
    )
    .await
    .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_metadata_over_64k_is_refused_and_the_server_goes_on() {
    let cluster = start().await;
    let i = cluster.registry().discover("user-service-grpc").remove(0);
    // Within the HTTP/1.1 servers' bound (h2's server default would refuse it at 16 KiB).
    let small = get_user(&i, 40 * 1024)
        .await
        .expect("a call with 40 KiB of metadata");
    assert_eq!(small.name, "Ada Lovelace");
    let refused = get_user(&i, 100 * 1024).await;
    assert!(refused.is_err(), "100 KiB of metadata: {refused:?}");
    let again = get_user(&i, 0).await.expect("served after the refusal");
    assert_eq!(again.id, 1);
    cluster.shutdown().await;
}
