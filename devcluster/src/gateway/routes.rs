//! The gateway's route table: `/api/users/{id}` patterns matched segment by segment, with the
//! captured parameters substituted into the rewrite (`/users/{id}`). The framework's gateway
//! ignored this mapping; here the rewritten path is what the upstream receives.

use crate::config::RouteConfig;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

#[derive(Debug, Clone)]
pub struct Route {
    pub pattern: String,
    pub service: String,
    pub rewrite: String,
    pub methods: Vec<String>,
    segments: Vec<Segment>,
}

/// A request matched to a route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Matched {
    pub route: String,
    pub service: String,
    pub path: String,
    pub params: Vec<(String, String)>,
}

fn split(path: &str) -> impl Iterator<Item = &str> {
    path.trim_matches('/').split('/').filter(|s| !s.is_empty())
}

fn param_name(seg: &str) -> Option<&str> {
    seg.strip_prefix('{')?.strip_suffix('}')
}

impl Route {
    pub fn compile(cfg: &RouteConfig) -> Result<Route, String> {
        if !cfg.path.starts_with('/') {
            return Err(format!(
                "path = \"{}\": expected a path starting with /",
                cfg.path
            ));
        }
        if !cfg.rewrite.starts_with('/') {
            return Err(format!(
                "rewrite = \"{}\": expected a path starting with /",
                cfg.rewrite
            ));
        }
        if cfg.service.trim().is_empty() {
            return Err("service: expected a service name".into());
        }
        let segments: Vec<Segment> = split(&cfg.path)
            .map(|s| match param_name(s) {
                Some(name) if !name.is_empty() => Segment::Param(name.to_string()),
                _ => Segment::Literal(s.to_string()),
            })
            .collect();
        for seg in split(&cfg.rewrite) {
            if let Some(name) = param_name(seg)
                && !segments.contains(&Segment::Param(name.to_string()))
            {
                return Err(format!(
                    "rewrite = \"{}\": {{{name}}} is not a parameter of path \"{}\"",
                    cfg.rewrite, cfg.path
                ));
            }
        }
        let methods = cfg.methods.iter().map(|m| m.to_ascii_uppercase()).collect();
        Ok(Route {
            pattern: cfg.path.clone(),
            service: cfg.service.clone(),
            rewrite: cfg.rewrite.clone(),
            methods,
            segments,
        })
    }

    /// The parameters when `path` matches, else `None`.
    pub fn matches(&self, path: &str) -> Option<Vec<(String, String)>> {
        let parts: Vec<&str> = split(path).collect();
        if parts.len() != self.segments.len() {
            return None;
        }
        let mut params = Vec::new();
        for (seg, part) in self.segments.iter().zip(&parts) {
            match seg {
                Segment::Literal(l) if l == part => {}
                Segment::Literal(_) => return None,
                Segment::Param(name) => params.push((name.clone(), (*part).to_string())),
            }
        }
        Some(params)
    }

    pub fn rewrite_with(&self, params: &[(String, String)]) -> String {
        let mut out = String::new();
        for seg in split(&self.rewrite) {
            out.push('/');
            match param_name(seg).and_then(|n| params.iter().find(|(k, _)| k == n)) {
                Some((_, v)) => out.push_str(v),
                None => out.push_str(seg),
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

/// Routes in order; the first match wins.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    pub fn new(cfg: &[RouteConfig]) -> Result<RouteTable, String> {
        let routes = cfg
            .iter()
            .enumerate()
            .map(|(i, r)| Route::compile(r).map_err(|e| format!("routes[{i}]: {e}")))
            .collect::<Result<_, _>>()?;
        Ok(RouteTable { routes })
    }

    /// The matching route for `path`; `Err(Some(route))` when the path matches but not the method.
    pub fn find(&self, method: &str, path: &str) -> Result<Matched, Option<&Route>> {
        let mut wrong_method = None;
        for r in &self.routes {
            if let Some(params) = r.matches(path) {
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
            (m.service.as_str(), m.path.as_str()),
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
        assert!(err.contains("{user} is not a parameter"), "{err}");
        assert!(Route::compile(&cfg("api", "s", "/x")).is_err());
    }
}
