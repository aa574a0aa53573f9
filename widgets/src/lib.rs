//! ratatui widgets for lgo-dash. They take plain view structs defined here and know nothing of
//! the cluster; the app converts its snapshots into these structs.

pub mod breaker_badge;
pub mod columns;
pub mod distribution;
pub mod highlight;
pub mod instance_table;
pub mod notice;
pub mod theme;
pub mod waterfall;

pub use breaker_badge::{BreakerBadge, BreakerLight};
pub use distribution::{DistributionBars, ShareKind, ShareRow};
pub use instance_table::{HealthMark, InstanceRow, InstanceTable};
pub use notice::Notice;
pub use theme::Theme;
pub use waterfall::{Waterfall, WaterfallRow};
