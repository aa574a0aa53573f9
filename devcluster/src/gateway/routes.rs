//! The gateway's route table: `/api/users/{id}` patterns matched segment by segment, with the
//! captured parameters substituted into the rewrite (`/users/{id}`). The framework's gateway
//! ignored this mapping; here the rewritten path is what the upstream receives.

use crate::config::{Invalid, RouteConfig};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(Arc<str>),
}

#[derive(Debug, Clone)]
pub struct Route {
    pub pattern: Arc<str>,
    pub service: Arc<str>,
    pub rewrite: String,
    pub methods: Vec<String>,
    segments: Vec<Segment>,
    /// The rewrite's segments, each a literal or the index of a path parameter.
    rewrite_segments: Vec<Rewrite>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Rewrite {
    Literal(String),
    Param(usize),
}

/// A request matched to a route (the route's names shared, not copied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    pub route: Arc<str>,
    pub service: Arc<str>,
    pub path: String,
    pub params: Vec<(Arc<str>, String)>,
}

fn split(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

fn param_name(seg: &str) -> Option<&str> {
    seg.strip_prefix('{')?.strip_suffix('}')
}

impl Route {
    /// A route as configured, checked; a refusal's key is the route's own (`path`).
    pub fn compile(cfg: &RouteConfig) -> Result<Route, Invalid> {
        let quoted = |s: &str| format!("\"{s}\"");
        if !cfg.path.starts_with('/') {
            return Err(Invalid::new(
                "path",
                quoted(&cfg.path),
                "a path starting with /",
            ));
        }
        if !cfg.rewrite.starts_with('/') {
            return Err(Invalid::new(
                "rewrite",
                quoted(&cfg.rewrite),
                "a path starting with /",
            ));
        }
        if cfg.service.trim().is_empty() {
            return Err(Invalid::new(
                "service",
                quoted(&cfg.service),
                "a service name",
            ));
        }
        let segments: Vec<Segment> = split(&cfg.path)
            .map(|s| match param_name(s) {
                Some(name) if !name.is_empty() => Segment::Param(Arc::from(name)),
                _ => Segment::Literal(s.to_string()),
            })
            .collect();
        for seg in split(&cfg.rewrite) {
            if let Some(name) = param_name(seg)
                && !segments.contains(&Segment::Param(Arc::from(name)))
            {
                return Err(Invalid::new(
                    "rewrite",
                    quoted(&cfg.rewrite),
                    format!(
                        "only parameters of path \"{}\" ({{{name}}} is not one)",
                        cfg.path
                    ),
                ));
            }
        }
        let methods = cfg.methods.iter().map(|m| m.to_ascii_uppercase()).collect();
        let params: Vec<&str> = segments
            .iter()
            .filter_map(|s| match s {
                Segment::Param(n) => Some(&**n),
                Segment::Literal(_) => None,
            })
            .collect();
        let rewrite_segments = split(&cfg.rewrite)
            .map(
                |seg| match param_name(seg).and_then(|n| params.iter().position(|p| *p == n)) {
                    Some(i) => Rewrite::Param(i),
                    None => Rewrite::Literal(seg.to_string()),
                },
            )
            .collect();
        Ok(Route {
            pattern: Arc::from(cfg.path.as_str()),
            service: Arc::from(cfg.service.as_str()),
            rewrite: cfg.rewrite.clone(),
            methods,
            segments,
            rewrite_segments,
        })
    }

    /// The parameters when `path` matches, else `None`. Walks the path once; allocates only
    /// for the parameters' values.
    pub fn matches(&self, path: &str) -> Option<Vec<(Arc<str>, String)>> {
        let parts: Vec<&str> = split(path).collect();
        self.matches_parts(&parts)
    }

    /// The parameters when the path's segments `parts` match.
    fn matches_parts(&self, parts: &[&str]) -> Option<Vec<(Arc<str>, String)>> {
        if parts.len() != self.segments.len() {
            return None;
        }
        // Literals first: most routes are told apart without taking anything.
        let literal_ok = self
            .segments
            .iter()
            .zip(parts)
            .all(|(seg, part)| match seg {
                Segment::Literal(l) => l == part,
                Segment::Param(_) => true,
            });
        if !literal_ok {
            return None;
        }
        Some(
            self.segments
                .iter()
                .zip(parts)
                .filter_map(|(seg, part)| match seg {
                    Segment::Param(name) => Some((name.clone(), (*part).to_string())),
                    Segment::Literal(_) => None,
                })
                .collect(),
        )
    }

    pub fn rewrite_with(&self, params: &[(Arc<str>, String)]) -> String {
        let mut out = String::with_capacity(self.rewrite.len() + 16);
        for seg in &self.rewrite_segments {
            out.push('/');
            match seg {
                Rewrite::Literal(l) => out.push_str(l),
                Rewrite::Param(i) => out.push_str(params.get(*i).map_or("", |(_, v)| v)),
            }
        }
        if out.is_empty() {
            out.push('/');
        }
        out
    }

    pub fn allows(&self, method: &str) -> bool {
        self.methods.is_empty() || self.methods.iter().any(|m| m == method)
    }
}

/// Path segments matched without allocating.
const MAX_SEGMENTS: usize = 16;

/// Routes in order; the first match wins.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    pub fn new(cfg: &[RouteConfig]) -> Result<RouteTable, Invalid> {
        let routes = cfg
            .iter()
            .enumerate()
            .map(|(i, r)| Route::compile(r).map_err(|e| e.under(&format!("routes[{i}]."))))
            .collect::<Result<_, _>>()?;
        Ok(RouteTable { routes })
    }

    /// The matching route for `path`; `Err(Some(route))` when the path matches but not the method.
    pub fn find(&self, method: &str, path: &str) -> Result<Matched, Option<&Route>> {
        let mut wrong_method = None;
        // The path's segments, split once (on the stack for any ordinary path).
        let mut buf = [""; MAX_SEGMENTS];
        let mut count = 0;
        let mut long: Vec<&str> = Vec::new();
        for seg in split(path) {
            if count < MAX_SEGMENTS {
                buf[count] = seg;
            } else {
                if long.is_empty() {
                    long.extend_from_slice(&buf);
                }
                long.push(seg);
            }
            count += 1;
        }
        let parts: &[&str] = if count <= MAX_SEGMENTS {
            &buf[..count]
        } else {
            &long
        };
        for r in self.routes.iter().filter(|r| r.segments.len() == count) {
            if let Some(params) = r.matches_parts(parts) {
                if !r.allows(method) {
                    wrong_method.get_or_insert(r);
                    continue;
                }
                return Ok(Matched {
                    route: r.pattern.clone(),
                    service: r.service.clone(),
                    path: r.rewrite_with(&params),
                    params,
                });
            }
        }
        Err(wrong_method)
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(path: &str, service: &str, rewrite: &str) -> RouteConfig {
        RouteConfig {
            path: path.into(),
            service: service.into(),
            rewrite: rewrite.into(),
            methods: vec![],
        }
    }

    #[test]
    fn matches_by_segment_and_rewrites_parameters() {
        let t = RouteTable::new(&[
            cfg("/api/users", "user-service", "/users"),
            cfg("/api/users/{id}", "user-service", "/users/{id}"),
            cfg(
                "/api/orders/{id}/lines/{line}",
                "order-service",
                "/v2/orders/{id}/l/{line}",
            ),
        ])
        .unwrap();
        let m = t.find("GET", "/api/users/42").unwrap();
        assert_eq!(
            (&*m.service, m.path.as_str()),
            ("user-service", "/users/42")
        );
        assert_eq!(t.find("POST", "/api/users/").unwrap().path, "/users");
        assert_eq!(
            t.find("GET", "/api/orders/7/lines/2").unwrap().path,
            "/v2/orders/7/l/2"
        );
        assert!(t.find("GET", "/api/users/42/extra").is_err());
        assert!(t.find("GET", "/api/usersx").is_err());
    }

    #[test]
    fn method_lists_and_bad_routes() {
        let mut c = cfg("/api/x", "s", "/x");
        c.methods = vec!["get".into()];
        let t = RouteTable::new(&[c]).unwrap();
        assert!(t.find("GET", "/api/x").is_ok());
        assert!(matches!(t.find("DELETE", "/api/x"), Err(Some(_))));
        let err = Route::compile(&cfg("/api/{id}", "s", "/x/{user}")).unwrap_err();
        assert_eq!(err.key, "rewrite");
        assert_eq!(err.value, "\"/x/{user}\"");
        assert!(err.expected.contains("{user} is not one"), "{err}");
        assert!(Route::compile(&cfg("api", "s", "/x")).is_err());
    }
}
