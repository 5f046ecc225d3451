//! Time sources. Core logic measures durations with tokio's clock (virtual in the simulator). Where
//! an absolute time is unavoidable — JWT `iat`/`exp`, tracker TTLs shared between kas replicas that
//! run on different simulated hosts — it comes from an injected [`Clock`].

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

/// Milliseconds since the Unix epoch, as the deployment (or the simulation) defines it.
pub trait Clock: Send + Sync + Debug + 'static {
    fn unix_millis(&self) -> i64;

    fn unix_seconds(&self) -> i64 {
        self.unix_millis().div_euclid(1000)
    }
}

/// A shareable clock.
pub type SharedClock = Arc<dyn Clock>;

/// The machine's wall clock. For binaries talking to a real GitLab only: never use it in code that
/// must replay deterministically.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn unix_millis(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

/// A fixed epoch plus tokio's elapsed time since creation: virtual under a paused or simulated clock.
/// Only meaningful within one tokio runtime (each simulated host has its own).
#[derive(Debug, Clone)]
pub struct TokioClock {
    epoch_unix_millis: i64,
    start: tokio::time::Instant,
}

impl TokioClock {
    pub fn new(epoch_unix_millis: i64) -> Self {
        Self { epoch_unix_millis, start: tokio::time::Instant::now() }
    }
}

impl Clock for TokioClock {
    fn unix_millis(&self) -> i64 {
        let elapsed: Duration = self.start.elapsed();
        self.epoch_unix_millis + i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
    }
}

/// 2026-01-01T00:00:00Z, the default epoch of virtual clocks, so traces read as plausible dates.
pub const DEFAULT_EPOCH_UNIX_MILLIS: i64 = 1_767_225_600_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_virtual_time() {
        let c = TokioClock::new(DEFAULT_EPOCH_UNIX_MILLIS);
        assert_eq!(c.unix_millis(), DEFAULT_EPOCH_UNIX_MILLIS);
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(c.unix_seconds(), DEFAULT_EPOCH_UNIX_MILLIS / 1000 + 3600);
    }
}
