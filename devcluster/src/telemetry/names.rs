//! Names the traffic path records again and again (services, instances, routes, operations,
//! breakers), each kept once for the life of the process and known by a 4-byte [`Name`]. A
//! request records names it looked up once (a route, a member of a candidate set caches its
//! own), so recording a span copies integers: no hashing, no formatting, no allocation.
//!
//! Bounded: past [`MAX_NAMES`] distinct names, new ones all read as [`OVERFLOW`].

use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};

/// Distinct names kept at most (a few thousand in a busy dev cluster).
pub const MAX_NAMES: usize = 16_384;
/// What a name reads as once the table is full.
pub const OVERFLOW: &str = "…";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Name(u32);

#[derive(Default)]
struct Table {
    ids: HashMap<&'static str, u32, foldhash::fast::FixedState>,
    /// Index 0 is the empty name.
    texts: Vec<&'static str>,
}

fn table() -> &'static RwLock<Table> {
    static TABLE: OnceLock<RwLock<Table>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = Table::default();
        t.texts.push("");
        t.ids.insert("", 0);
        t.texts.push(OVERFLOW);
        t.ids.insert(OVERFLOW, 1);
        RwLock::new(t)
    })
}

impl Name {
    /// The empty name.
    pub const EMPTY: Name = Name(0);

    /// The name for `s`, added on first sight. Look names up once and keep them.
    pub fn of(s: &str) -> Name {
        if let Some(&id) = table().read().unwrap_or_else(|e| e.into_inner()).ids.get(s) {
            return Name(id);
        }
        let mut t = table().write().unwrap_or_else(|e| e.into_inner());
        if let Some(&id) = t.ids.get(s) {
            return Name(id);
        }
        if t.texts.len() >= MAX_NAMES {
            return Name(1);
        }
        // Kept for the life of the process: the table is bounded, and a name handed out must
        // stay readable.
        let text: &'static str = Box::leak(s.to_owned().into_boxed_str());
        let id = t.texts.len() as u32;
        t.texts.push(text);
        t.ids.insert(text, id);
        Name(id)
    }

    pub fn as_str(self) -> &'static str {
        table()
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .texts
            .get(self.0 as usize)
            .copied()
            .unwrap_or(OVERFLOW)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// An HTTP method's name; the common ones are looked up once for the whole process.
    pub fn method(m: &http::Method) -> Name {
        static COMMON: OnceLock<[(http::Method, Name); 8]> = OnceLock::new();
        let common = COMMON.get_or_init(|| {
            [
                http::Method::GET,
                http::Method::POST,
                http::Method::PUT,
                http::Method::DELETE,
                http::Method::HEAD,
                http::Method::PATCH,
                http::Method::OPTIONS,
                grpc_method().clone(),
            ]
            .map(|m| {
                let n = Name::of(m.as_str());
                (m, n)
            })
        });
        common
            .iter()
            .find(|(c, _)| c == m)
            .map_or_else(|| Name::of(label_method(m).as_str()), |(_, n)| *n)
    }

    /// The number behind the name, to keep in a plain integer field.
    pub fn raw(self) -> u32 {
        self.0
    }

    /// A name back from [`Name::raw`] (an unknown number reads as [`OVERFLOW`]).
    pub fn from_raw(n: u32) -> Name {
        Name(n)
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The method gRPC calls are labelled with (they all travel as POST): metrics, spans and the
/// access log tell them from HTTP requests by it.
pub fn grpc_method() -> &'static http::Method {
    static GRPC: OnceLock<http::Method> = OnceLock::new();
    GRPC.get_or_init(|| http::Method::from_bytes(b"gRPC").unwrap_or_default())
}

/// `m` if it is one of HTTP's own methods (or [`grpc_method`]), else `OTHER`: a method is a
/// label and a name, and a client making up methods must not make up series and names without
/// end.
pub fn label_method(m: &http::Method) -> http::Method {
    use http::Method as M;
    match *m {
        M::GET
        | M::POST
        | M::PUT
        | M::DELETE
        | M::HEAD
        | M::PATCH
        | M::OPTIONS
        | M::TRACE
        | M::CONNECT => m.clone(),
        _ if m == grpc_method() => m.clone(),
        _ => {
            static OTHER: OnceLock<http::Method> = OnceLock::new();
            OTHER
                .get_or_init(|| http::Method::from_bytes(b"OTHER").unwrap_or_default())
                .clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_kept_once_and_reads_back() {
        let a = Name::of("user-service-1");
        assert_eq!(a, Name::of("user-service-1"));
        assert_ne!(a, Name::of("user-service-2"));
        assert_eq!(a.as_str(), "user-service-1");
        assert_eq!(Name::of(""), Name::EMPTY);
        assert!(Name::EMPTY.is_empty());
    }

    /// Methods a client makes up share one name and one label: nobody can grow the name table
    /// or the metric series by inventing methods.
    #[test]
    fn made_up_methods_share_one_name_and_one_label() {
        let m = |s: &str| http::Method::from_bytes(s.as_bytes()).unwrap();
        assert_eq!(Name::method(&m("GET")).as_str(), "GET");
        assert_eq!(Name::method(&m("TRACE")).as_str(), "TRACE");
        assert_eq!(Name::method(&m("BREW1")).as_str(), "OTHER");
        let metrics = crate::telemetry::metrics::ServerMetrics::new("svc", "svc-1");
        for i in 0..50 {
            let names = metrics.route_names("/x", &m(&format!("MADEUP{i}")));
            assert_eq!(names.op.as_str(), "OTHER /x");
            metrics.record_route(&names, 200, std::time::Duration::from_millis(1));
        }
        let text = metrics.encode();
        let series: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("http_requests_total{") || l.contains("_requests_total{"))
            .collect();
        assert_eq!(series.len(), 1, "{text}");
        assert!(series[0].contains("method=\"OTHER\""), "{text}");
        assert!(series[0].ends_with(" 50"), "{text}");
    }
}
