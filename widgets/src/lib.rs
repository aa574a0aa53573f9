//! ratatui widgets for lgo-dash. They take plain view structs defined here and know nothing of
//! the cluster; the app converts its snapshots into these structs.

pub mod instance_table;
pub mod notice;
pub mod theme;

pub use instance_table::{HealthMark, InstanceRow, InstanceTable};
pub use notice::Notice;
pub use theme::Theme;
