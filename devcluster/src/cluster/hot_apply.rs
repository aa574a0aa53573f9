//! A new config reaches the running cluster without a restart: each part that changed is handed
//! to the component that owns it (balancers, breakers, clients, gateway, traffic, stores), which
//! switches for the next request; in-flight requests finish under what they started with.

use crate::balance::service::Balancers;
use crate::breaker::Breakers;
use crate::client::ServiceClient;
use crate::config::Config;
use crate::gateway::Gateway;
use crate::gateway::routes::RouteTable;
use crate::services::faults::Faults;
use crate::services::order::UserLookup;
use crate::services::traffic::Traffic;
use std::sync::Arc;

/// What a config change can reach.
pub(super) struct Parts {
    pub balancers: Arc<Balancers>,
    pub breakers: Arc<Breakers>,
    pub clients: Vec<Arc<ServiceClient>>,
    pub gateway: Arc<Gateway>,
    pub traffic: Arc<Traffic>,
    pub faults: Arc<Faults>,
    pub users: Arc<UserLookup>,
    pub telemetry: Arc<crate::telemetry::Telemetry>,
}

impl Parts {
    pub(super) fn apply(&self, old: &Config, new: &Config) {
        for (target, b) in &new.balancer {
            if old.balancer.get(target).map(|o| o.strategy) != Some(b.strategy) {
                self.balancers.set_strategy(target, b.strategy);
            }
        }
        if old.hash_keys() != new.hash_keys() {
            for c in &self.clients {
                c.set_hash_keys(new.hash_keys());
            }
        }
        if old.breaker != new.breaker {
            self.breakers
                .set_settings(new.breaker_defaults(), new.named_breakers());
        }
        if old.timeouts != new.timeouts || old.retries != new.retries {
            for c in &self.clients {
                c.set_settings(super::client_settings(new));
            }
        }
        if old.outlier != new.outlier {
            self.balancers.set_outlier(new.outlier.clone());
        }
        if old.traffic != new.traffic {
            self.traffic.set_rps(new.traffic.rps);
        }
        if old.routes != new.routes {
            match RouteTable::new(&new.routes) {
                Ok(t) => self.gateway.set_routes(t),
                // Checked before the change was accepted; kept for safety.
                Err(e) => tracing::error!("routes not applied: {e}"),
            }
        }
        for (id, f) in &new.faults {
            if old.faults.get(id) != Some(f) {
                self.faults.set(id, f.clone(), None);
            }
        }
        for id in old.faults.keys().filter(|id| !new.faults.contains_key(*id)) {
            self.faults.clear(id);
        }
        if old.telemetry != new.telemetry {
            self.telemetry.spans.set_capacity(new.telemetry.max_spans);
            self.telemetry.logs.set_capacity(new.telemetry.max_logs);
        }
        if old.user_protocol() != new.user_protocol() {
            self.users.set_protocol(new.user_protocol());
        }
        // What is left of [services] once the protocol (applied live) is set aside.
        let fixed = |c: &Config| {
            let mut s = c.services.clone();
            s.values_mut().for_each(|s| s.user_protocol = None);
            s
        };
        for (section, changed) in [
            ("ports", old.ports != new.ports),
            ("services", fixed(old) != fixed(new)),
            ("health", old.health != new.health),
            ("shutdown", old.shutdown != new.shutdown),
        ] {
            if changed {
                tracing::warn!("[{section}] changed: it takes effect when the cluster restarts");
            }
        }
    }
}
