//! A snapshot in slices, each stamped with the version it last changed at. The publisher keeps
//! an unchanged slice's stamp and publishes nothing when no slice changed, so a quiet cluster
//! wakes no dashboard; an attached dashboard asks for the slices changed since the version it
//! holds and gets only those (`GET /api/snapshot?after=V&epoch=E&slices=1`).

use super::{ClusterSnapshot, InstanceSnapshot};
use crate::balance::service::BalancerSnapshot;
use crate::breaker::BreakerSnapshot;
use crate::config::center::ConfigView;
use crate::control::Endpoint;
use crate::services::traffic::TrafficView;
use crate::telemetry::metrics::MetricsView;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// The version at which each slice last changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Slices {
    pub instances: u64,
    pub balancers: u64,
    pub breakers: u64,
    pub traffic: u64,
    pub metrics: u64,
    pub config: u64,
}

/// A snapshot without the slices that did not change since the version the asker holds.
#[derive(Debug, Serialize, Deserialize)]
pub struct SnapshotDelta<'a> {
    pub version: u64,
    pub epoch: u64,
    pub registry_index: u64,
    pub endpoints: Cow<'a, [Endpoint]>,
    pub slices: Slices,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<Cow<'a, [InstanceSnapshot]>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balancers: Option<Cow<'a, [BalancerSnapshot]>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breakers: Option<Cow<'a, [BreakerSnapshot]>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<Cow<'a, TrafficView>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Cow<'a, MetricsView>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Cow<'a, ConfigView>>,
}

impl ClusterSnapshot {
    /// What changed since version `after` of this cluster run (`epoch`): every slice when the
    /// asker holds nothing of this run (a cluster started again, or `after` 0).
    pub fn since(&self, after: u64, epoch: u64) -> SnapshotDelta<'_> {
        let whole = after == 0 || epoch != self.epoch || after > self.version;
        let s = self.slices;
        fn put<T: ?Sized + ToOwned>(changed: bool, v: &T) -> Option<Cow<'_, T>> {
            changed.then_some(Cow::Borrowed(v))
        }
        SnapshotDelta {
            version: self.version,
            epoch: self.epoch,
            registry_index: self.registry_index,
            endpoints: Cow::Borrowed(&self.endpoints),
            slices: s,
            instances: put(whole || s.instances > after, &self.instances[..]),
            balancers: put(whole || s.balancers > after, &self.balancers[..]),
            breakers: put(whole || s.breakers > after, &self.breakers[..]),
            traffic: put(whole || s.traffic > after, &self.traffic),
            metrics: put(whole || s.metrics > after, &self.metrics),
            config: put(whole || s.config > after, &self.config),
        }
    }

    /// `next` as the snapshot after `self`: each slice keeps its stamp when it is unchanged and
    /// gets the new version otherwise. `None` when nothing changed (nothing to publish).
    pub fn followed_by(&self, mut next: ClusterSnapshot) -> Option<ClusterSnapshot> {
        let v = self.version + 1;
        let mut s = self.slices;
        let mut changed = next.registry_index != self.registry_index
            || next.endpoints != self.endpoints
            || next.epoch != self.epoch;
        let mut stamp = |same: bool, at: &mut u64| {
            if !same {
                *at = v;
                changed = true;
            }
        };
        stamp(next.instances == self.instances, &mut s.instances);
        stamp(next.balancers == self.balancers, &mut s.balancers);
        stamp(next.breakers == self.breakers, &mut s.breakers);
        stamp(next.traffic == self.traffic, &mut s.traffic);
        stamp(next.metrics == self.metrics, &mut s.metrics);
        stamp(next.config == self.config, &mut s.config);
        if !changed {
            return None;
        }
        next.version = v;
        next.slices = s;
        Some(next)
    }
}

impl SnapshotDelta<'_> {
    /// The snapshot this delta makes of `base`, the snapshot it was asked against: the slices
    /// it carries, `base`'s for the others. Refused when a slice is missing and `base` is not
    /// from the same run.
    pub fn apply(self, base: &ClusterSnapshot) -> Result<ClusterSnapshot, String> {
        fn take<T: ?Sized + ToOwned>(
            got: Option<Cow<'_, T>>,
            base: &T,
            same_run: bool,
            name: &str,
        ) -> Result<T::Owned, String> {
            match got {
                Some(c) => Ok(c.into_owned()),
                None if same_run => Ok(base.to_owned()),
                None => Err(format!(
                    "the answer left out {name}, which this side does not hold"
                )),
            }
        }
        let same = base.epoch == self.epoch && base.version > 0;
        Ok(ClusterSnapshot {
            version: self.version,
            epoch: self.epoch,
            registry_index: self.registry_index,
            endpoints: self.endpoints.into_owned(),
            slices: self.slices,
            // Unchanged, the held slice is shared, not copied.
            instances: match self.instances {
                Some(c) => c.into_owned().into(),
                None if same => base.instances.clone(),
                None => {
                    return Err(
                        "the answer left out instances, which this side does not hold".into(),
                    );
                }
            },
            balancers: take(self.balancers, &base.balancers[..], same, "balancers")?,
            breakers: take(self.breakers, &base.breakers[..], same, "breakers")?,
            traffic: take(self.traffic, &base.traffic, same, "traffic")?,
            metrics: take(self.metrics, &base.metrics, same, "metrics")?,
            config: take(self.config, &base.config, same, "config")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(epoch: u64) -> ClusterSnapshot {
        ClusterSnapshot {
            epoch,
            ..Default::default()
        }
    }

    #[test]
    fn only_changed_slices_are_stamped_and_an_unchanged_snapshot_is_not_published() {
        let first = snap(7).followed_by(ClusterSnapshot {
            epoch: 7,
            registry_index: 1,
            ..Default::default()
        });
        let first = first.expect("a new registry index is a change");
        assert_eq!(first.version, 1);
        assert_eq!(first.followed_by(first.clone()), None, "nothing changed");

        let mut next = first.clone();
        next.traffic.rps = 20;
        let second = first.followed_by(next).unwrap();
        assert_eq!(second.version, 2);
        assert_eq!(second.slices.traffic, 2);
        assert_eq!(second.slices.instances, 0, "untouched: its stamp stays");
    }

    #[test]
    fn a_delta_carries_what_changed_and_rebuilds_the_same_snapshot() {
        let mut a = snap(7)
            .followed_by(ClusterSnapshot {
                epoch: 7,
                registry_index: 1,
                ..Default::default()
            })
            .unwrap();
        a.config.version = 3;
        let mut next = a.clone();
        next.traffic.rps = 50;
        let b = a.followed_by(next).unwrap();

        // Asked against `a`: only traffic travels; applied to `a`, it is `b`.
        let d = b.since(a.version, a.epoch);
        let text = serde_json::to_string(&d).unwrap();
        assert!(
            text.contains("\"traffic\":{") && !text.contains("\"config\":{"),
            "{text}"
        );
        let got: SnapshotDelta<'static> = serde_json::from_str(&text).unwrap();
        assert_eq!(got.apply(&a).unwrap(), b);

        // Asked with nothing held, or by a dashboard of another run: everything.
        for (after, epoch) in [(0, 7), (a.version, 8), (99, 7)] {
            let d = b.since(after, epoch);
            assert!(d.instances.is_some() && d.config.is_some() && d.metrics.is_some());
            assert_eq!(d.apply(&ClusterSnapshot::default()).unwrap(), b);
        }
        // A delta cannot be applied to a snapshot of another run.
        let partial = b.since(a.version, a.epoch);
        assert!(partial.apply(&snap(8)).is_err());
    }
}
