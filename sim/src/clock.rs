//! A [`Clock`] on simulated time, consistent across all hosts of one simulation (each host's tokio
//! clock starts at its own creation, so tokio instants cannot be compared across hosts).

use kasim_core::clock::{Clock, DEFAULT_EPOCH_UNIX_MILLIS};

/// Simulated time since the start of the run, plus a fixed epoch.
#[derive(Debug, Clone, Copy)]
pub struct SimClock {
    pub epoch_unix_millis: i64,
}

impl Default for SimClock {
    fn default() -> Self {
        Self { epoch_unix_millis: DEFAULT_EPOCH_UNIX_MILLIS }
    }
}

impl Clock for SimClock {
    fn unix_millis(&self) -> i64 {
        let elapsed = turmoil::sim_elapsed().unwrap_or_default();
        self.epoch_unix_millis + i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX / 2)
    }
}

/// The GitLab stand-in verifies kas's JWTs on the same simulated time kas signs them with.
impl kasim_gitlab::Clock for SimClock {
    fn now_unix(&self) -> i64 {
        self.unix_seconds()
    }
}
