//! Virtual time for JWT checks.
//!
//! The simulator runs on virtual time, so nothing in this crate reads the
//! wall clock: whoever builds a [`crate::GitLab`] hands it a [`Clock`].

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Source of "now" in Unix seconds.
pub trait Clock: Send + Sync + 'static {
    /// Current time in seconds since the Unix epoch.
    fn now_unix(&self) -> i64;
}

/// A clock that only moves when told to; clones share the same time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    now: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock frozen at `now` (Unix seconds).
    pub fn new(now: i64) -> Self {
        Self { now: Arc::new(AtomicI64::new(now)) }
    }

    /// Jump to `now`.
    pub fn set(&self, now: i64) {
        self.now.store(now, Ordering::SeqCst);
    }

    /// Move forward (or backward, with a negative value) by `secs`.
    pub fn advance(&self, secs: i64) {
        self.now.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_unix(&self) -> i64 {
        self.now.load(Ordering::SeqCst)
    }
}
