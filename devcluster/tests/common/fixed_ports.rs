//! A cluster config on fixed free ports, for tests that stop a cluster and start one again at
//! the same addresses. Shared by `devcluster/tests/attach.rs` and the root crate's
//! `tests/dashboard_pty.rs` (included by path).

/// The config's text and its admin port. The ports are free loopback ports below the kernel's
/// ephemeral range (32768 and up on Linux), so no `bind(:0)` elsewhere (other tests'
/// `--ports auto`) can take one between here and its use, nor while the cluster is down and
/// started again. One instance per sample service keeps the ports apart. Every port is set
/// (Nacos's too): a default one (8848) would be shared by two tests' clusters.
pub fn fixed_ports_toml() -> (String, u16) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let mut seed = u64::from(std::process::id()) << 32 | u64::from(nanos);
    let mut p = Vec::new();
    while p.len() < 9 {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let port = 20_000 + ((seed >> 33) % 12_000) as u16;
        if !p.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            p.push(port);
        }
    }
    let text = format!(
        "[ports]\nregistry = {}\nadmin = {}\ngateway = {}\notlp_grpc = {}\notlp_http = {}\n\
         user_service = {}\norder_service = {}\nuser_service_grpc = {}\nnacos = {}\n\
         [services.user-service]\ninstances = 1\n[services.order-service]\ninstances = 1\n",
        p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8]
    );
    (text, p[1])
}
