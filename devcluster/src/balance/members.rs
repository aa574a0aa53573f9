//! The candidate set of one target service: its registered instances as the balancer uses them
//! (id, health, weight, address, load), built once per registry change and shared by every pick
//! until the next one, so a pick filters nothing when nothing changed.

use super::load::InstanceLoad;
use crate::registry::{Health, InstanceView};
use crate::telemetry::names::Name;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug)]
pub struct Member {
    pub id: Arc<str>,
    /// The id as a telemetry name (spans record it without a lookup).
    pub name: Name,
    pub health: Health,
    pub weight: u32,
    pub address: Arc<str>,
    pub port: u16,
    pub load: Arc<InstanceLoad>,
}

/// The instances of a service in registry order (by id), as of a registry index.
#[derive(Debug, Default)]
pub struct Members {
    /// The registry index this set was built at (0: built from a list, not the registry).
    pub index: u64,
    members: Box<[Member]>,
    /// Indices of the passing members: the common candidate list, made once.
    passing: Box<[u32]>,
    /// The same as bits (the first 128 members).
    passing_mask: u128,
}

impl Members {
    /// The set for `instances`, each with its load from `loads` (created on first sight, kept
    /// across sets so an instance's in-flight count and latency survive registry changes).
    pub fn build(
        index: u64,
        instances: &[InstanceView],
        loads: &Mutex<HashMap<String, Arc<InstanceLoad>>>,
    ) -> Members {
        let mut loads = loads.lock().unwrap_or_else(|e| e.into_inner());
        let members: Box<[Member]> = instances
            .iter()
            .map(|i| Member {
                id: Arc::from(i.id.as_str()),
                name: Name::of(&i.id),
                health: i.health,
                weight: i.weight,
                address: Arc::from(i.address.as_str()),
                port: i.port,
                load: loads.entry(i.id.clone()).or_default().clone(),
            })
            .collect();
        let passing: Box<[u32]> = members
            .iter()
            .enumerate()
            .filter(|(_, m)| m.health == Health::Passing)
            .map(|(i, _)| i as u32)
            .collect();
        let passing_mask = passing
            .iter()
            .filter(|&&i| i < 128)
            .fold(0u128, |m, &i| m | 1 << i);
        Members {
            index,
            members,
            passing,
            passing_mask,
        }
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn get(&self, i: usize) -> Option<&Member> {
        self.members.get(i)
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Member> {
        self.members.iter()
    }

    pub fn passing(&self) -> &[u32] {
        &self.passing
    }

    pub fn passing_mask(&self) -> u128 {
        self.passing_mask
    }
}

impl std::ops::Index<usize> for Members {
    type Output = Member;
    fn index(&self, i: usize) -> &Member {
        &self.members[i]
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::BTreeMap;

    pub(crate) fn view(id: &str, health: Health) -> InstanceView {
        InstanceView {
            id: id.into(),
            service: "svc".into(),
            version: String::new(),
            address: "127.0.0.1".into(),
            port: 1,
            tags: vec![],
            meta: BTreeMap::new(),
            weight: 1,
            weight_warning: 1,
            enable_tag_override: false,
            protocol: "http".into(),
            health_path: String::new(),
            health,
            checks: vec![],
            create_index: 1,
            modify_index: 1,
            via: String::new(),
        }
    }

    /// A set of passing instances with these ids.
    pub(crate) fn members(ids: &[&str]) -> Arc<Members> {
        let views: Vec<InstanceView> = ids.iter().map(|id| view(id, Health::Passing)).collect();
        Arc::new(Members::build(0, &views, &Mutex::default()))
    }

    #[test]
    fn loads_outlive_the_set() {
        let loads = Mutex::default();
        let a = Members::build(
            1,
            &[view("a", Health::Passing), view("b", Health::Critical)],
            &loads,
        );
        assert_eq!(a.passing(), [0]);
        let _busy = a[0].load.start();
        let b = Members::build(2, &[view("a", Health::Passing)], &loads);
        assert_eq!(b[0].load.in_flight(), 1, "the same load behind both sets");
    }
}
