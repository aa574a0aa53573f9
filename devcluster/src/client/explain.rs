//! What a dry run of the client's stack saw: each layer notes what it would do with the
//! request, and nothing changes (no breaker count, no turn of a rotation, no pick recorded).

use crate::balance::service::{NoCandidate, Picked};
use crate::breaker::{Mode, Rejected, State};

#[derive(Debug, Default)]
pub struct Explain {
    pub breaker: Option<String>,
    pub breaker_state: Option<State>,
    pub breaker_mode: Option<Mode>,
    /// The breaker would refuse the call.
    pub refused: Option<Rejected>,
    pub picked: Option<Picked>,
    pub no_instance: Option<NoCandidate>,
}
