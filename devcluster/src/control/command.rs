//! Every command the dashboard and `ctl` can give, as one serializable type: the in-process
//! handle executes it directly, the remote one posts it to `/api/commands`.

use crate::balance::Strategy;
use crate::breaker::Mode;
use crate::services::faults::Fault;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    /// Stop like a crash; with `for_s`, restart by itself after that many seconds.
    Kill {
        id: String,
        #[serde(default)]
        for_s: Option<u64>,
    },
    Restart {
        id: String,
    },
    BreakerMode {
        name: String,
        mode: Mode,
    },
    Strategy {
        service: String,
        strategy: Strategy,
    },
    Weight {
        id: String,
        weight: u32,
    },
    Fault {
        id: String,
        fault: Fault,
        #[serde(default)]
        for_s: Option<u64>,
    },
    ClearFault {
        id: String,
    },
    Traffic {
        rps: u32,
    },
}
