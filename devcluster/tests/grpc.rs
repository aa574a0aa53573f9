//! user-service over gRPC, over real sockets: every instance answers `UserService` (called here
//! by a client written from the .proto alone, not the crate's generated code), maps errors to
//! the right status codes, reports SERVING on `grpc.health.v1`, lists itself through server
//! reflection (v1 and v1alpha, the health service included) and takes gzipped requests; the
//! registry's gRPC checks notice a killed instance, and a service registered through the
//! Consul API with a `GRPC` check is checked the same way.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use devcluster::cluster::{Cluster, ClusterOptions};
use devcluster::config::{Config, DEFAULTS_TOML};
use devcluster::registry::{Health, InstanceView};
use std::time::{Duration, Instant};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};

/// The messages of `assets/proto/user.proto`, written out by hand from it.
mod wire {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GetUserRequest {
        #[prost(uint64, tag = "1")]
        pub id: u64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListUsersRequest {}
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct CreateUserRequest {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub email: String,
        #[prost(uint32, tag = "3")]
        pub age: u32,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct User {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(string, tag = "2")]
        pub name: String,
        #[prost(string, tag = "3")]
        pub email: String,
        #[prost(uint32, tag = "4")]
        pub age: u32,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListUsersResponse {
        #[prost(message, repeated, tag = "1")]
        pub users: Vec<User>,
    }
}

/// A unary call of `lgo.user.v1.UserService/{method}` on `channel`.
async fn unary<Q, R>(channel: &Channel, method: &str, req: Q) -> Result<R, tonic::Status>
where
    Q: prost::Message + Send + Sync + 'static,
    R: prost::Message + Default + Send + Sync + 'static,
{
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let path = PathAndQuery::try_from(format!("/lgo.user.v1.UserService/{method}")).unwrap();
    let codec = tonic_prost::ProstCodec::<Q, R>::default();
    grpc.unary(tonic::Request::new(req), path, codec)
        .await
        .map(tonic::Response::into_inner)
}

async fn start() -> Cluster {
    let cfg = Config::from_layers(&[
        ("defaults", DEFAULTS_TOML),
        ("test", "[health]\ninterval_ms = 300\ntimeout_ms = 250\n"),
    ])
    .unwrap();
    let cluster = Cluster::start(ClusterOptions::new(cfg).auto_ports(true).traffic(false))
        .await
        .unwrap();
    let reg = cluster.registry().clone();
    wait_until(Duration::from_secs(10), || {
        let grpc = grpc_instances(&reg.instances());
        grpc.len() == 3 && grpc.iter().all(|i| i.health == Health::Passing)
    })
    .await
    .expect("the three gRPC endpoints pass their first gRPC health check");
    cluster
}

fn grpc_instances(all: &[InstanceView]) -> Vec<InstanceView> {
    all.iter()
        .filter(|i| i.service == "user-service-grpc")
        .cloned()
        .collect()
}

async fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if f() {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

async fn channel_to(i: &InstanceView) -> Channel {
    Endpoint::from_shared(format!("http://{}:{}", i.address, i.port))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

#[tokio::test]
async fn every_instance_answers_user_service_with_proper_status_codes() {
    let cluster = start().await;
    let grpc = grpc_instances(&cluster.registry().instances());
    let mut ids: Vec<&str> = grpc.iter().map(|i| i.id.as_str()).collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            "user-service-1-grpc",
            "user-service-2-grpc",
            "user-service-3-grpc"
        ]
    );
    for i in &grpc {
        assert_eq!(i.meta.get("protocol").map(String::as_str), Some("grpc"));
        assert_eq!(i.checks[0].kind, "grpc", "{}: {:?}", i.id, i.checks);
        let ch = channel_to(i).await;
        let ada: wire::User = unary(&ch, "GetUser", wire::GetUserRequest { id: 1 })
            .await
            .unwrap_or_else(|s| panic!("GetUser on {}: {s:?}", i.id));
        assert_eq!(ada.name, "Ada Lovelace", "{}", i.id);
        let list: wire::ListUsersResponse = unary(&ch, "ListUsers", wire::ListUsersRequest {})
            .await
            .unwrap();
        assert!(list.users.len() >= 3, "{}: {list:?}", i.id);
        let missing = unary::<_, wire::User>(&ch, "GetUser", wire::GetUserRequest { id: 999_999 })
            .await
            .expect_err("no such user");
        assert_eq!(missing.code(), tonic::Code::NotFound, "{missing:?}");
        let zero = unary::<_, wire::User>(&ch, "GetUser", wire::GetUserRequest { id: 0 })
            .await
            .expect_err("id 0");
        assert_eq!(zero.code(), tonic::Code::InvalidArgument, "{zero:?}");
    }
    // One store behind both protocols: a user created over gRPC is there over HTTP.
    let ch = channel_to(&grpc[0]).await;
    let bad = unary::<_, wire::User>(
        &ch,
        "CreateUser",
        wire::CreateUserRequest {
            name: "Grace".into(),
            email: "not-an-email".into(),
            age: 30,
        },
    )
    .await
    .expect_err("an invalid email");
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(bad.message().contains("email"), "{bad:?}");
    let grace: wire::User = unary(
        &ch,
        "CreateUser",
        wire::CreateUserRequest {
            name: "Grace Hopper".into(),
            email: "grace@example.com".into(),
            age: 45,
        },
    )
    .await
    .unwrap();
    let http = cluster
        .registry()
        .instances()
        .into_iter()
        .find(|i| i.id == "user-service-2")
        .unwrap();
    let over_http: serde_json::Value = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!(
            "http://{}:{}/users/{}",
            http.address, http.port, grace.id
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(over_http["name"], "Grace Hopper");
    cluster.shutdown().await;
}

#[tokio::test]
async fn health_reports_serving_and_reflection_lists_the_service() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let cluster = start().await;
    let grpc = grpc_instances(&cluster.registry().instances());
    let ch = channel_to(&grpc[0]).await;
    let mut health = HealthClient::new(ch.clone());
    for service in ["", "lgo.user.v1.UserService"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status();
        assert_eq!(status, ServingStatus::Serving, "{service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .expect_err("an unknown service");
    assert_eq!(unknown.code(), tonic::Code::NotFound);

    let mut reflection = ServerReflectionClient::new(ch);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::once(req))
        .await
        .unwrap()
        .into_inner();
    let first = answers.message().await.unwrap().expect("one answer");
    let Some(MessageResponse::ListServicesResponse(list)) = first.message_response else {
        panic!("expected a list of services, got {first:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.iter().any(|n| n == "lgo.user.v1.UserService"),
        "{names:?}"
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_killed_instance_fails_its_grpc_check_and_passes_again_after_restart() {
    let cluster = start().await;
    let handle = cluster.handle();
    handle.kill("user-service-2-grpc").await.unwrap();
    let reg = cluster.registry().clone();
    let health_of = |id: &str| {
        reg.instances()
            .into_iter()
            .find(|i| i.id == id)
            .map(|i| (i.health, i.checks[0].output.clone()))
            .unwrap()
    };
    wait_until(Duration::from_secs(5), || {
        health_of("user-service-2-grpc").0 == Health::Critical
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "the gRPC check notices the kill: {:?}",
            health_of("user-service-2-grpc")
        )
    });
    let (_, output) = health_of("user-service-2-grpc");
    assert!(output.starts_with("gRPC check 127.0.0.1:"), "{output}");
    // One process, two ports: its HTTP side went down with it, the others stayed up.
    wait_until(Duration::from_secs(5), || {
        health_of("user-service-2").0 == Health::Critical
    })
    .await
    .expect("the HTTP side died with it");
    assert_eq!(health_of("user-service-1-grpc").0, Health::Passing);

    handle.restart("user-service-2").await.unwrap();
    wait_until(Duration::from_secs(5), || {
        health_of("user-service-2-grpc").0 == Health::Passing
    })
    .await
    .unwrap_or_else(|| panic!("back: {:?}", health_of("user-service-2-grpc")));
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_grpc_check_registered_through_the_consul_api_follows_the_server() {
    let cluster = start().await;
    let registry = cluster
        .handle()
        .snapshot()
        .endpoints
        .iter()
        .find(|e| e.name == "registry")
        .unwrap()
        .url
        .clone();
    // A gRPC server of the test's own, serving the standard health service.
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("billing.v1.Billing", tonic_health::ServingStatus::Serving)
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let body = serde_json::json!({
        "ID": "billing-1", "Name": "billing", "Address": "127.0.0.1", "Port": addr.port(),
        "Check": {"GRPC": format!("{addr}/billing.v1.Billing"), "Interval": "1s", "Timeout": "500ms"},
    });
    let r = http
        .put(format!("{registry}/v1/agent/service/register"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let status_of = || async {
        let v: serde_json::Value = http
            .get(format!("{registry}/v1/health/service/billing"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let check = &v[0]["Checks"][0];
        (
            check["Status"].as_str().unwrap_or("").to_string(),
            check["Type"].as_str().unwrap_or("").to_string(),
            check["Output"].as_str().unwrap_or("").to_string(),
        )
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = status_of().await;
    while last.0 != "passing" && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        last = status_of().await;
    }
    assert_eq!(last.0, "passing", "{last:?}");
    assert_eq!(last.1, "grpc");

    reporter
        .set_service_status(
            "billing.v1.Billing",
            tonic_health::ServingStatus::NotServing,
        )
        .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while last.0 != "critical" && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        last = status_of().await;
    }
    assert_eq!(last.0, "critical", "{last:?}");
    assert!(last.2.contains("NOT_SERVING"), "{last:?}");
    cluster.shutdown().await;
}

/// The spans of the trace an answer names in its `X-Trace-ID`.
async fn trace_of(
    cluster: &Cluster,
    resp: &reqwest::Response,
) -> Vec<devcluster::telemetry::SpanRecord> {
    let id = resp.headers()["x-trace-id"].to_str().unwrap().to_string();
    let id = devcluster::telemetry::TraceId::parse(&id).expect("a trace id");
    let handle = cluster.handle();
    // Spans are written as each hop ends: wait for the server span of the gateway's request.
    let mut spans = Vec::new();
    for _ in 0..50 {
        spans = handle.trace(id).await.unwrap();
        if spans
            .iter()
            .any(|s| s.service == "gateway" && s.parent_id.is_none())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    spans
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

#[tokio::test]
async fn orders_fetch_their_user_over_grpc_in_one_trace_when_the_config_says_so() {
    let cluster = start().await;
    let handle = cluster.handle();
    handle
        .config_set("services.order-service.user_protocol", Some("grpc"))
        .await
        .unwrap();
    let resp = http_client()
        .get(format!("{}/api/orders/1", cluster.gateway_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let spans = trace_of(&cluster, &resp).await;
    let order: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(order["user"]["name"], "Ada Lovelace", "{order}");
    let server = spans
        .iter()
        .find(|s| s.service == "user-service-grpc")
        .unwrap_or_else(|| panic!("a span on a gRPC instance in {spans:#?}"));
    assert_eq!(server.name, "gRPC /lgo.user.v1.UserService/GetUser");
    assert!(server.instance.ends_with("-grpc"), "{server:?}");
    // Its parent is order-service's attempt, which names the instance it picked.
    let attempt = spans
        .iter()
        .find(|s| Some(s.span_id) == server.parent_id)
        .expect("the server span's parent is in the trace");
    assert_eq!(attempt.service, "order-service");
    assert_eq!(
        attempt.attribute("peer.instance"),
        Some(server.instance.as_str())
    );
    assert!(
        spans.iter().all(|s| s.trace_id == server.trace_id),
        "one trace from the gateway to the gRPC hop"
    );
    assert!(
        !spans.iter().any(|s| s.service == "user-service"),
        "no HTTP call to user-service: {spans:#?}"
    );

    // Back to HTTP, live.
    handle
        .config_set("services.order-service.user_protocol", Some("http"))
        .await
        .unwrap();
    let resp = http_client()
        .get(format!("{}/api/orders/1", cluster.gateway_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let spans = trace_of(&cluster, &resp).await;
    assert!(spans.iter().any(|s| s.service == "user-service"));
    assert!(!spans.iter().any(|s| s.service == "user-service-grpc"));

    let bad = handle
        .config_set(
            "services.order-service.user_protocol",
            Some("carrier-pigeon"),
        )
        .await
        .expect_err("not a protocol");
    assert!(bad.to_string().contains("grpc"), "{bad}");
    cluster.shutdown().await;
}

#[tokio::test]
async fn an_unavailable_instance_is_retried_on_another_and_its_breaker_shows_the_grpc_path() {
    let cluster = start().await;
    let handle = cluster.handle();
    handle
        .config_set("services.order-service.user_protocol", Some("grpc"))
        .await
        .unwrap();
    // user-service-1 (both its ports) answers every request with an error.
    handle
        .config_set("faults.user-service-1.error_rate", Some("1"))
        .await
        .unwrap();
    let client = http_client();
    let mut retried = 0;
    for _ in 0..9 {
        let resp = client
            .get(format!("{}/api/orders/2", cluster.gateway_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            200,
            "GetUser is retried elsewhere on UNAVAILABLE"
        );
        let spans = trace_of(&cluster, &resp).await;
        let failed: Vec<_> = spans
            .iter()
            .filter(|s| s.service == "user-service-grpc" && s.error)
            .collect();
        if let Some(f) = failed.first() {
            assert_eq!(f.instance, "user-service-1-grpc");
            assert_eq!(f.attribute("http.status_code"), Some("503"), "{f:?}");
            retried += 1;
        }
    }
    assert!(
        retried >= 2,
        "round robin sent some first attempts to the failing instance"
    );
    // The snapshot is published on a slow tick.
    wait_until(Duration::from_secs(3), || {
        let snap = handle.snapshot();
        snap.breakers
            .iter()
            .any(|b| b.name == "order-service->user-service-grpc")
            && snap
                .balancers
                .iter()
                .any(|b| b.target == "user-service-grpc" && !b.recent.is_empty())
    })
    .await
    .expect("the gRPC path's breaker and its balancer's picks show");
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_forced_open_breaker_fails_grpc_calls_fast_without_reaching_the_server() {
    use devcluster::balance::service::Balancers;
    use devcluster::breaker::{Breakers, Mode};
    use devcluster::client::grpc::GrpcChannel;
    use devcluster::client::{ClientSettings, ServiceClient};
    use devcluster::proto::user::user_service_client::UserServiceClient;
    use devcluster::proto::user::user_service_server::{UserService, UserServiceServer};
    use devcluster::proto::user::{
        self as pb, CreateUserRequest, GetUserRequest, ListUsersRequest,
    };
    use devcluster::registry::{Registration, Registry};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A user service that counts the calls that reach it.
    struct Counting(Arc<AtomicUsize>);
    #[tonic::async_trait]
    impl UserService for Counting {
        async fn get_user(
            &self,
            r: tonic::Request<GetUserRequest>,
        ) -> Result<tonic::Response<pb::User>, tonic::Status> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(tonic::Response::new(pb::User {
                id: r.into_inner().id,
                name: "Counted".into(),
                ..Default::default()
            }))
        }
        async fn list_users(
            &self,
            _: tonic::Request<ListUsersRequest>,
        ) -> Result<tonic::Response<pb::ListUsersResponse>, tonic::Status> {
            Err(tonic::Status::unimplemented("not here"))
        }
        async fn create_user(
            &self,
            _: tonic::Request<CreateUserRequest>,
        ) -> Result<tonic::Response<pb::User>, tonic::Status> {
            Err(tonic::Status::unimplemented("not here"))
        }
    }
    let reached = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(UserServiceServer::new(Counting(reached.clone())))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let cfg = Config::from_layers(&[("defaults", DEFAULTS_TOML)]).unwrap();
    let registry = Registry::new();
    registry
        .register(Registration {
            id: "counting-1".into(),
            name: "counting".into(),
            address: "127.0.0.1".into(),
            port,
            ..Default::default()
        })
        .unwrap();
    let breakers = Arc::new(Breakers::new(cfg.breaker_defaults(), cfg.named_breakers()));
    let client = Arc::new(ServiceClient::new(
        "test",
        registry,
        Arc::new(Balancers::new(cfg.strategies(), cfg.outlier.clone())),
        breakers.clone(),
        ClientSettings::default(),
        Default::default(),
    ));
    let mut users = UserServiceClient::new(GrpcChannel::new(client, "counting"));
    let ok = users.get_user(GetUserRequest { id: 7 }).await.unwrap();
    assert_eq!(ok.into_inner().name, "Counted");
    assert_eq!(reached.load(Ordering::SeqCst), 1);

    breakers
        .get(&Breakers::name("test", "counting"))
        .set_mode(Mode::ForcedOpen);
    for _ in 0..5 {
        let refused = users
            .get_user(GetUserRequest { id: 7 })
            .await
            .expect_err("the breaker is open");
        assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
        assert!(refused.message().contains("test->counting"), "{refused:?}");
    }
    assert_eq!(
        reached.load(Ordering::SeqCst),
        1,
        "no refused call reached the server"
    );

    breakers
        .get(&Breakers::name("test", "counting"))
        .set_mode(Mode::Auto);
    users.get_user(GetUserRequest { id: 7 }).await.unwrap();
    assert_eq!(reached.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn the_grpc_path_rides_out_a_kill_and_uses_the_instance_again_after_restart() {
    let cluster = start().await;
    let handle = cluster.handle();
    handle
        .config_set("services.order-service.user_protocol", Some("grpc"))
        .await
        .unwrap();
    let client = http_client();
    let order = || async {
        let resp = client
            .get(format!("{}/api/orders/3", cluster.gateway_url()))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let spans = trace_of(&cluster, &resp).await;
        let served_by: Vec<String> = spans
            .iter()
            .filter(|s| s.service == "user-service-grpc")
            .map(|s| s.instance.clone())
            .collect();
        (status, served_by)
    };
    // Every instance has an open connection from order-service.
    for _ in 0..6 {
        assert_eq!(order().await.0, 200);
    }
    handle.kill("user-service-1").await.unwrap();
    for _ in 0..9 {
        let (status, served_by) = order().await;
        assert_eq!(status, 200, "the dead instance's calls go elsewhere");
        assert!(
            !served_by.iter().any(|i| i == "user-service-1-grpc"),
            "a killed instance serves nothing: {served_by:?}"
        );
    }
    handle.restart("user-service-1").await.unwrap();
    let reg = cluster.registry().clone();
    wait_until(Duration::from_secs(5), || {
        reg.instances()
            .iter()
            .any(|i| i.id == "user-service-1-grpc" && i.health == Health::Passing)
    })
    .await
    .expect("passing again");
    let mut back = false;
    for _ in 0..30 {
        let (status, served_by) = order().await;
        assert_eq!(status, 200);
        if served_by.iter().any(|i| i == "user-service-1-grpc") {
            back = true;
            break;
        }
        // Ejected for a while after its failures: give it time to come back.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        back,
        "calls reach the restarted instance on a new connection"
    );
    cluster.shutdown().await;
}

/// A gzipped request (grpcio's `compression=Gzip`, grpcurl's) is answered like any other, by
/// UserService and the health service alike.
#[tokio::test]
async fn gzipped_requests_are_answered() {
    use tonic::codec::CompressionEncoding;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let cluster = start().await;
    let grpc = grpc_instances(&cluster.registry().instances());
    let ch = channel_to(&grpc[0]).await;
    let mut client =
        tonic::client::Grpc::new(ch.clone()).send_compressed(CompressionEncoding::Gzip);
    client.ready().await.unwrap();
    let user: wire::User = client
        .unary(
            tonic::Request::new(wire::GetUserRequest { id: 1 }),
            PathAndQuery::from_static("/lgo.user.v1.UserService/GetUser"),
            tonic_prost::ProstCodec::<wire::GetUserRequest, wire::User>::default(),
        )
        .await
        .expect("a gzipped GetUser answered")
        .into_inner();
    assert_eq!((user.id, user.name.as_str()), (1, "Ada Lovelace"));
    let status = HealthClient::new(ch)
        .send_compressed(CompressionEncoding::Gzip)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("a gzipped health check answered")
        .into_inner()
        .status();
    assert_eq!(status, ServingStatus::Serving);
    cluster.shutdown().await;
}

/// Reflection in both of its versions (grpcio-reflection's Python client and several GUI tools
/// speak only v1alpha), listing the health service too, whose file resolves.
#[tokio::test]
async fn reflection_answers_v1alpha_too_and_knows_the_health_service() {
    use tonic_reflection::pb::{v1, v1alpha};
    let cluster = start().await;
    let grpc = grpc_instances(&cluster.registry().instances());
    let ch = channel_to(&grpc[0]).await;

    let ask_alpha = |req| {
        let mut client = v1alpha::server_reflection_client::ServerReflectionClient::new(ch.clone());
        async move {
            let req = v1alpha::ServerReflectionRequest {
                host: String::new(),
                message_request: Some(req),
            };
            let mut answers = client
                .server_reflection_info(tokio_stream::once(req))
                .await
                .expect("v1alpha served")
                .into_inner();
            answers
                .message()
                .await
                .unwrap()
                .expect("one answer")
                .message_response
        }
    };
    use v1alpha::server_reflection_request::MessageRequest as AlphaReq;
    use v1alpha::server_reflection_response::MessageResponse as AlphaResp;
    let Some(AlphaResp::ListServicesResponse(list)) =
        ask_alpha(AlphaReq::ListServices(String::new())).await
    else {
        panic!("expected a list of services");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in ["lgo.user.v1.UserService", "grpc.health.v1.Health"] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    for symbol in ["lgo.user.v1.UserService", "grpc.health.v1.Health"] {
        let answer = ask_alpha(AlphaReq::FileContainingSymbol(symbol.into())).await;
        let Some(AlphaResp::FileDescriptorResponse(files)) = answer else {
            panic!("{symbol}: expected its file, got {answer:?}");
        };
        assert!(!files.file_descriptor_proto.is_empty(), "{symbol}");
    }

    // v1 as well, for grpcurl.
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(ch);
    let req = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1::server_reflection_request::MessageRequest::FileContainingSymbol(
                "grpc.health.v1.Health".into(),
            ),
        ),
    };
    let answer = client
        .server_reflection_info(tokio_stream::once(req))
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap()
        .expect("one answer")
        .message_response;
    assert!(
        matches!(
            answer,
            Some(v1::server_reflection_response::MessageResponse::FileDescriptorResponse(_))
        ),
        "{answer:?}"
    );
    cluster.shutdown().await;
}
