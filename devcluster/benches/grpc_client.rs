//! What the balanced, guarded gRPC client costs per call: `GetUser` round trips at 64 calls in
//! flight, through the service client's layers (`GrpcChannel`: breaker, retry, pick over three
//! instances, attempt span and trace metadata, outlier report, timeout, metrics) against a
//! plain tonic `Channel` to one instance (target: ≤ 10 % more client CPU per call).
//!
//! The instances run in a child process (this binary again), so the CPU this process uses is
//! the client's alone. Rounds alternate plain / balanced (the machine is shared: compare within
//! one run); each prints calls/s and client CPU per call, then the medians and their ratios.
//!
//! Run: `cargo bench -p devcluster --bench grpc_client`   (ROUNDS=N, SECS=N per round;
//! defaults 5 and 3; CONCURRENCY=N calls in flight, default 64; OVER=1 balances over the one
//! instance the plain channel calls; ONLY=plain|balanced runs one side, for a profile)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use devcluster::balance::service::Balancers;
use devcluster::breaker::Breakers;
use devcluster::client::grpc::GrpcChannel;
use devcluster::client::{ClientSettings, ServiceClient};
use devcluster::config::Config;
use devcluster::proto::user::GetUserRequest;
use devcluster::proto::user::user_service_client::UserServiceClient;
use devcluster::registry::{Registration, Registry};
use devcluster::services::{user, user_grpc};
use devcluster::telemetry::metrics::MetricsHub;
use std::io::BufRead;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const INSTANCES: usize = 3;
const SERVER_ENV: &str = "LGO_BENCH_GRPC_SERVER";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if std::env::var_os(SERVER_ENV).is_some() {
        serve();
        return;
    }
    // `cargo bench` passes `--bench`; nothing else is taken.
    let rounds = env_or("ROUNDS", 5);
    let secs = env_or("SECS", 3);
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .env(SERVER_ENV, "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let ports: Vec<u16> = (0..INSTANCES)
        .map(|_| lines.next().unwrap().unwrap().trim().parse().unwrap())
        .collect();
    // One worker thread: CPU per call is then the client's path, not thread hand-offs.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        devcluster::telemetry::install_if_absent();
        let plain = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{}", ports[0]))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let plain = UserServiceClient::new(plain);
        let balanced = UserServiceClient::new(balanced_channel(&ports));
        // For a profile of one side: ONLY=plain or ONLY=balanced runs just it (warmed, then
        // measured once).
        match std::env::var("ONLY").as_deref() {
            Ok("plain") => {
                run("warm", plain.clone(), Duration::from_secs(1)).await;
                return println!("{}", run("plain", plain, Duration::from_secs(secs)).await);
            }
            Ok("balanced") => {
                run("warm", balanced.clone(), Duration::from_secs(1)).await;
                return println!("{}", run("balanced", balanced, Duration::from_secs(secs)).await);
            }
            _ => {}
        }
        // Warm both: connections open, names interned, the allocator's pools filled.
        run("warm", plain.clone(), Duration::from_secs(1)).await;
        run("warm", balanced.clone(), Duration::from_secs(1)).await;
        let mut p = Vec::new();
        let mut b = Vec::new();
        println!(
            "{} calls in flight, {secs} s per round",
            env_or("CONCURRENCY", 64)
        );
        for round in 1..=rounds {
            let r = run("plain tonic channel", plain.clone(), Duration::from_secs(secs)).await;
            println!("round {round}: {r}");
            p.push(r);
            let r = run("balanced GrpcChannel", balanced.clone(), Duration::from_secs(secs)).await;
            println!("round {round}: {r}");
            b.push(r);
        }
        let (pr, pc) = medians(&p);
        let (br, bc) = medians(&b);
        println!(
            "median: plain {pr:.0} calls/s {pc:.1} µs CPU/call; balanced {br:.0} calls/s {bc:.1} µs CPU/call"
        );
        println!(
            "balanced / plain: CPU per call {:.3}x, calls/s {:.3}x",
            bc / pc,
            br / pr
        );
    });
    let _ = child.kill();
    let _ = child.wait();
}

/// The child: three user-service gRPC instances served as the cluster serves them (its
/// HTTP/2 connections, spans, metrics and fault layer), their ports on stdout, until the
/// parent kills it.
fn serve() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        devcluster::telemetry::install_if_absent();
        let routes = user_grpc::routes(user::UserStore::seeded()).await;
        let metrics = MetricsHub::new();
        let faults = devcluster::services::faults::Faults::new();
        let mut servers = Vec::new();
        for n in 1..=INSTANCES {
            let id = format!("user-service-{n}");
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            println!("{}", listener.local_addr().unwrap().port());
            let router = user_grpc::instance_router(
                routes.clone(),
                &id,
                faults.clone(),
                metrics.server(user_grpc::SERVICE, &format!("{id}-grpc")),
            );
            servers.push(
                devcluster::server::HttpServer::start_with(
                    id,
                    listener,
                    Arc::new(user_grpc::GrpcConnections(router)),
                )
                .unwrap(),
            );
        }
        std::future::pending::<()>().await;
    });
}

/// The service client as the cluster makes it for order-service, over three instances.
fn balanced_channel(ports: &[u16]) -> GrpcChannel {
    let cfg = Config::defaults();
    let registry = Registry::new();
    // OVER=1: balance over the one instance the plain channel calls (the layers' cost alone).
    let over = env_or("OVER", ports.len() as u64) as usize;
    for (n, port) in ports.iter().take(over).enumerate() {
        registry
            .register(Registration {
                id: format!("user-service-{}-grpc", n + 1),
                name: user_grpc::SERVICE.into(),
                address: "127.0.0.1".into(),
                port: *port,
                ..Default::default()
            })
            .unwrap();
    }
    let client = ServiceClient::new(
        "order-service",
        registry,
        Arc::new(Balancers::new(cfg.strategies(), cfg.outlier.clone())),
        Arc::new(Breakers::new(cfg.breaker_defaults(), cfg.named_breakers())),
        ClientSettings::default(),
        Default::default(),
    )
    .with_metrics(Arc::new(MetricsHub::new()));
    GrpcChannel::new(Arc::new(client), user_grpc::SERVICE).idempotent(
        user_grpc::IDEMPOTENT
            .iter()
            .map(|m| user_grpc::full_name(m)),
    )
}

struct Round {
    what: &'static str,
    calls: u64,
    secs: f64,
    cpu_us: f64,
}

impl std::fmt::Display for Round {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:<22} {:>7.0} calls/s  {:>5.1} µs CPU/call",
            self.what,
            self.calls as f64 / self.secs,
            self.cpu_us / self.calls as f64
        )
    }
}

fn medians(rounds: &[Round]) -> (f64, f64) {
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (
        median(rounds.iter().map(|r| r.calls as f64 / r.secs).collect()),
        median(rounds.iter().map(|r| r.cpu_us / r.calls as f64).collect()),
    )
}

/// `CONCURRENCY` tasks (64 unless set) calling `GetUser` back to back for `length`.
async fn run<T>(what: &'static str, client: UserServiceClient<T>, length: Duration) -> Round
where
    T: tonic::client::GrpcService<tonic::body::Body> + Clone + Send + 'static,
    T::Future: Send,
    T::ResponseBody: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    <T::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
    T::Error: Into<tonic::codegen::StdError>,
{
    let concurrency = env_or("CONCURRENCY", 64) as usize;
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let cpu = process_cpu_us();
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|i| {
            let (mut c, stop, calls) = (client.clone(), stop.clone(), calls.clone());
            tokio::spawn(async move {
                let mut id = i as u64 % 5 + 1;
                while !stop.load(Ordering::Relaxed) {
                    let u = c.get_user(GetUserRequest { id }).await.expect("GetUser");
                    assert_eq!(u.get_ref().id, id);
                    calls.fetch_add(1, Ordering::Relaxed);
                    id = id % 5 + 1;
                }
            })
        })
        .collect();
    tokio::time::sleep(length).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    Round {
        what,
        calls: calls.load(Ordering::Relaxed),
        secs: started.elapsed().as_secs_f64(),
        cpu_us: process_cpu_us() - cpu,
    }
}

/// This process's CPU time (user + system), in µs, from /proc.
fn process_cpu_us() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks * 1e6 / 100.0
}
