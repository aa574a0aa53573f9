//! Carrying out commands on the running cluster: kill and restart, breaker modes, strategies,
//! weights, faults, traffic rate, and the route inspector.

use super::Core;
use crate::balance::record::CandidateView;
use crate::breaker::{Mode, State};
use crate::control::{Command, ControlError};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

/// What `ctl route explain METHOD PATH` shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteExplain {
    pub method: String,
    pub path: String,
    pub route: Option<String>,
    pub service: Option<String>,
    pub rewritten: Option<String>,
    pub hash_key: Option<String>,
    pub strategy: Option<String>,
    pub candidates: Vec<CandidateView>,
    pub chosen: Option<String>,
    pub reason: Option<String>,
    pub breaker: Option<String>,
    pub breaker_state: Option<State>,
    pub breaker_mode: Option<Mode>,
    /// What the gateway would do with the request.
    pub outcome: String,
}

/// The longest `--for` a kill or a fault takes.
const MAX_FOR_S: u64 = 7 * 24 * 3600;

impl RouteExplain {
    /// The explanation as aligned lines, for `ctl` and the dashboard's inspector.
    pub fn text(&self) -> String {
        let e = self;
        let mut out = String::new();
        let or_dash = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
        let _ = writeln!(out, "request     {} {}", e.method, e.path);
        let _ = writeln!(out, "route       {}", or_dash(&e.route));
        let _ = writeln!(out, "rewritten   {}", or_dash(&e.rewritten));
        let _ = writeln!(out, "service     {}", or_dash(&e.service));
        let key = match (&e.strategy, &e.hash_key) {
            (Some(s), Some(k)) if s == "consistent_hash" => format!(" (key {k})"),
            _ => String::new(),
        };
        let _ = writeln!(out, "strategy    {}{key}", or_dash(&e.strategy));
        for c in &e.candidates {
            let mark = if e.chosen.as_deref() == Some(c.id.as_str()) {
                "→"
            } else {
                " "
            };
            let _ = writeln!(
                out,
                "  {mark} {:<18} {:<8} weight {:<3} in-flight {:<3}{}{}",
                c.id,
                c.health.to_string(),
                c.weight,
                c.in_flight,
                if c.ejected { " ejected" } else { "" },
                if c.eligible { "" } else { " (not a candidate)" }
            );
        }
        let _ = writeln!(
            out,
            "chosen      {} — {}",
            or_dash(&e.chosen),
            or_dash(&e.reason)
        );
        let _ = writeln!(
            out,
            "breaker     {} {} ({})",
            or_dash(&e.breaker),
            e.breaker_state.map(|s| s.to_string()).unwrap_or_default(),
            e.breaker_mode.map(|m| m.to_string()).unwrap_or_default()
        );
        let _ = writeln!(out, "outcome     {}", e.outcome);
        out
    }
}

impl Core {
    /// Executes a command; the answer is a sentence for a toast or `ctl`.
    pub async fn execute(self: &Arc<Self>, cmd: Command) -> Result<String, ControlError> {
        self.execute_as(cmd, "ctl").await
    }

    /// Carries out `cmd` for `who` (the config history's "who" of a strategy or rate change:
    /// `ctl`, `dashboard`).
    pub async fn execute_as(
        self: &Arc<Self>,
        cmd: Command,
        who: &str,
    ) -> Result<String, ControlError> {
        // A time a command waits for, bounded: a week is more than a dev session, and a larger
        // one would overflow the clock.
        if let Command::Kill { for_s: Some(s), .. } | Command::Fault { for_s: Some(s), .. } = &cmd
            && *s > MAX_FOR_S
        {
            return Err(ControlError::Invalid(format!(
                "for = {s}s: expected 1 to {MAX_FOR_S} seconds (a week)"
            )));
        }
        let msg = match cmd {
            Command::Kill { id, for_s } => {
                self.kill(&id).await?;
                match for_s {
                    Some(s) => {
                        self.restart_later(&id, Duration::from_secs(s));
                        format!("killed {id} for {s}s: it restarts by itself")
                    }
                    None => format!(
                        "killed {id}: port closed, still registered; its health check will turn critical"
                    ),
                }
            }
            Command::Restart { id } => {
                self.restart(&id).await?;
                format!("restarted {id}")
            }
            Command::BreakerMode { name, mode } => {
                self.breakers
                    .set_mode(&name, mode)
                    .map_err(ControlError::NotFound)?;
                format!("breaker {name} is now {mode}")
            }
            // Knobs that are config go through the config center: checked, versioned, in the
            // history, the same as `ctl config set`.
            Command::Strategy { service, strategy } => {
                let (key, value, by) = (
                    format!("balancer.{service}.strategy"),
                    format!("\"{strategy}\""),
                    who.to_string(),
                );
                self.config
                    .change(move |c| c.set(&key, &value, &by))
                    .await
                    .map_err(ControlError::from)?;
                format!("{service} is now balanced by {strategy}")
            }
            Command::Weight { id, weight } => {
                if weight > 1000 {
                    return Err(ControlError::Invalid(format!(
                        "weight = {weight}: expected 0 to 1000"
                    )));
                }
                self.registry.set_weight(&id, weight).map_err(|e| match e {
                    crate::registry::RegistryError::Owned { .. } => {
                        ControlError::Invalid(e.to_string())
                    }
                    _ => ControlError::UnknownInstance(id.clone()),
                })?;
                format!("{id} now has weight {weight}")
            }
            Command::Fault { id, fault, for_s } => {
                // Kept under the process's id: its gRPC side shares its faults.
                let id = self.managed(&id)?.id.clone();
                fault.validate().map_err(ControlError::Refused)?;
                self.faults
                    .set(&id, fault.clone(), for_s.map(Duration::from_secs));
                let mut parts = Vec::new();
                if fault.latency_ms > 0 || fault.jitter_ms > 0 {
                    parts.push(format!("+{}ms (±{}ms)", fault.latency_ms, fault.jitter_ms));
                }
                if fault.error_rate > 0.0 {
                    parts.push(format!("{:.0}% errors", fault.error_rate * 100.0));
                }
                if fault.hang {
                    parts.push("hang".into());
                }
                let what = if parts.is_empty() {
                    "no fault".into()
                } else {
                    parts.join(", ")
                };
                let text = match for_s {
                    Some(s) => format!("{id}: {what} for {s}s"),
                    None => format!("{id}: {what} until cleared"),
                };
                tracing::warn!(instance = %id, "fault: {what}");
                text
            }
            Command::ClearFault { id } => {
                let id = self.managed(&id)?.id.clone();
                self.faults.clear(&id);
                tracing::info!(instance = %id, "fault cleared");
                format!("{id}: faults cleared")
            }
            Command::Traffic { rps } => {
                if rps > 10_000 {
                    return Err(ControlError::Invalid(format!(
                        "rps = {rps}: expected 0 to 10000"
                    )));
                }
                let by = who.to_string();
                self.config
                    .change(move |c| c.set("traffic.rps", &rps.to_string(), &by))
                    .await
                    .map_err(ControlError::from)?;
                // Also when the config already says so: `--no-traffic` starts at 0 whatever it says.
                self.traffic.set_rps(rps);
                if rps == 0 {
                    "traffic paused".into()
                } else {
                    format!("traffic at {rps} req/s")
                }
            }
        };
        self.publish();
        Ok(msg)
    }

    /// Stops an instance like a crash: its port closes, it stays registered, health checks
    /// have to notice.
    pub(crate) async fn kill(&self, id: &str) -> Result<(), ControlError> {
        let inst = self.managed(id)?;
        for server in inst.servers() {
            server.kill().await;
        }
        tracing::warn!(instance = %inst.id, "killed");
        self.publish();
        Ok(())
    }

    /// Brings a killed instance back on its port (and re-registers it if it was removed).
    pub(crate) async fn restart(&self, id: &str) -> Result<(), ControlError> {
        let inst = self.managed(id)?;
        if let Some((_, t)) = self
            .restarts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&inst.id)
        {
            t.abort();
        }
        for server in inst.servers() {
            server.restart().await.map_err(|e| ControlError::Restart {
                id: id.to_string(),
                addr: server.addr().to_string(),
                message: e.to_string(),
            })?;
        }
        for reg in inst.registrations() {
            if self.registry.instance(&reg.id).is_none() {
                let _ = self.registry.register(reg.clone());
            }
        }
        tracing::info!(instance = %inst.id, "restarted");
        self.publish();
        Ok(())
    }

    fn restart_later(self: &Arc<Self>, id: &str, after: Duration) {
        let core = Arc::downgrade(self);
        // Kept under the instance's own id: its gRPC side names the same process.
        let id = self.managed(id).map_or(id, |m| m.id.as_str());
        let owned = id.to_string();
        let stop = self.stop.clone();
        let task = crate::telemetry::spawn(async move {
            // A graceful stop of the cluster ends the wait: nothing restarts then.
            if stop
                .run_until_cancelled(tokio::time::sleep(after))
                .await
                .is_none()
            {
                return;
            }
            if let Some(core) = core.upgrade() {
                core.restarts
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&owned);
                if let Err(e) = core.restart(&owned).await {
                    tracing::warn!(instance = %owned, error = %e, "timed restart failed");
                }
            }
        });
        let at = tokio::time::Instant::now() + after;
        if let Some((_, old)) = self
            .restarts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string(), (at, task))
        {
            old.abort();
        }
    }

    /// Where the gateway would send `METHOD PATH` right now, and why.
    pub async fn explain(&self, method: &str, path: &str) -> RouteExplain {
        let method = method.to_ascii_uppercase();
        let mut out = RouteExplain {
            method: method.clone(),
            path: path.to_string(),
            route: None,
            service: None,
            rewritten: None,
            hash_key: None,
            strategy: None,
            candidates: Vec::new(),
            chosen: None,
            reason: None,
            breaker: None,
            breaker_state: None,
            breaker_mode: None,
            outcome: String::new(),
        };
        let (route_path, query) = path
            .split_once('?')
            .map_or((path, None), |(p, q)| (p, Some(q)));
        let table = self.gateway.routes();
        let m = match table.find(&method, route_path) {
            Ok(m) => m,
            Err(Some(r)) => {
                out.route = Some(r.pattern.to_string());
                out.outcome = format!("405: route {} does not allow {method}", r.pattern);
                return out;
            }
            Err(None) => {
                out.outcome = format!("404: no route matches {route_path}");
                return out;
            }
        };
        out.route = Some(m.route.to_string());
        out.service = Some(m.service.to_string());
        out.rewritten = Some(match query {
            Some(q) => format!("{}?{q}", m.path),
            None => m.path.clone(),
        });
        let call = crate::client::Call {
            method: http::Method::from_bytes(method.as_bytes()).unwrap_or_default(),
            path_and_query: out.rewritten.clone().unwrap_or_default(),
            headers: http::HeaderMap::new(),
            body: axum::body::Body::empty(),
            params: m.params.clone(),
            parent: None,
            forward: false,
            forwarded_for: None,
            grpc: false,
            idempotent: None,
        };
        out.hash_key = self
            .gateway
            .client
            .hash_key(&m.service, &call.headers, &call.params);
        out.strategy = Some(self.balancers.get(&m.service).strategy().to_string());
        // The gateway's own stack, dry: what a real call would do, with nothing changed.
        let e = match self.gateway.client.explain(&m.service, call).await {
            Ok(e) => e,
            Err(err) => {
                out.outcome = format!("{}: {err}", err.status().as_u16());
                return out;
            }
        };
        let breaker_name = e.breaker.clone().unwrap_or_default();
        out.breaker = e.breaker.clone();
        out.breaker_state = e.breaker_state;
        out.breaker_mode = e.breaker_mode;
        let (state, mode) = (
            e.breaker_state.unwrap_or(State::Closed),
            e.breaker_mode.unwrap_or(Mode::Auto),
        );
        if let Some(p) = &e.picked {
            let rec = p.record("gateway", &m.service);
            out.strategy = Some(rec.strategy.to_string());
            out.candidates = rec.candidates;
            out.chosen = Some(rec.chosen);
            out.reason = Some(rec.reason);
        }
        // The breaker answers first, as it does for a real call: an open one refuses before
        // any instance is looked for.
        if let (None, Some(none)) = (&e.refused, &e.no_instance) {
            out.outcome = format!("503: {none}");
            return out;
        }
        if let Some(r) = &e.refused {
            out.outcome = match (mode, state) {
                (Mode::Auto, State::Open) => {
                    format!("503 unless its open time is over: breaker {breaker_name} is open")
                }
                _ => format!("503: {r}"),
            };
            return out;
        }
        out.outcome = match state {
            State::HalfOpen => {
                format!("sent if a probe slot is free (breaker {breaker_name} is half-open)")
            }
            State::Open => format!("sent as a probe: breaker {breaker_name}'s open time is over"),
            State::Closed => format!(
                "sent to {} as {} {}",
                out.chosen.clone().unwrap_or_default(),
                method,
                out.rewritten.clone().unwrap_or_default()
            ),
        };
        out
    }
}
