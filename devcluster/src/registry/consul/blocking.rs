//! Consul blocking queries: `?index=N&wait=D` holds a read until the registry changes past N
//! or D elapses; every answer carries `X-Consul-Index`.

use crate::duration::parse_go_duration;
use crate::registry::Registry;
use std::collections::HashMap;
use std::time::Duration;

/// Consul's default and maximum `wait`.
const DEFAULT_WAIT: Duration = Duration::from_secs(300);
const MAX_WAIT: Duration = Duration::from_secs(600);

pub(super) struct Blocking {
    index: u64,
    wait: Duration,
}

impl Blocking {
    pub(super) fn from_query(q: &HashMap<String, String>) -> Result<Blocking, String> {
        let index = match q.get("index").map(String::as_str) {
            None | Some("") => 0,
            Some(s) => s
                .parse()
                .map_err(|_| format!("index: expected a non-negative integer, got \"{s}\""))?,
        };
        let wait = match q.get("wait").map(String::as_str) {
            None | Some("") => DEFAULT_WAIT,
            Some(s) => parse_go_duration(s).map_err(|e| format!("wait: {e}"))?,
        };
        Ok(Blocking {
            index,
            wait: wait.min(MAX_WAIT),
        })
    }

    pub(super) fn index(&self) -> u64 {
        self.index
    }

    pub(super) fn wait(&self) -> Duration {
        self.wait
    }

    /// Returns at once when `index` is 0 or already behind what `index_of` reads (the
    /// registry's index, a service's, the catalog's); otherwise waits for it to pass. Returns
    /// that index, for `X-Consul-Index`.
    pub(super) async fn wait_for(
        &self,
        reg: &Registry,
        index_of: impl Fn(&Registry) -> u64,
    ) -> u64 {
        let now = index_of(reg);
        if self.index == 0 || now > self.index {
            return now;
        }
        reg.wait_for_index(index_of, self.index, self.wait).await
    }
}

/// Consul's presence-based boolean flags (`?passing`, `?passing=1`, `?passing=false`), read
/// like Go's `strconv.ParseBool` with an empty value meaning true.
pub(super) fn flag(q: &HashMap<String, String>, name: &str) -> Result<bool, String> {
    match q.get(name).map(String::as_str) {
        None => Ok(false),
        Some("" | "1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
        Some(other) => Err(format!(
            "{name}: expected a boolean such as true or 1, got \"{other}\""
        )),
    }
}
