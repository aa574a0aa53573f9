//! The gateway's route table (the shipped routes) asked for any method and path: a route and a
//! rewritten path that starts with `/`, or none — never a panic.
#![no_main]

use devcluster::gateway::routes::RouteTable;
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

static TABLE: LazyLock<RouteTable> = LazyLock::new(|| {
    RouteTable::new(&devcluster::config::Config::defaults().routes).expect("the shipped routes")
});

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (method, path) = text.split_once(' ').unwrap_or(("GET", &text));
    if let Ok(m) = TABLE.find(method, path) {
        assert!(m.path.starts_with('/'), "{method} {path} -> {}", m.path);
        assert!(!m.service.is_empty());
    }
});
