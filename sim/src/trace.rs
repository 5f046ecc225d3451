//! The run's deterministic, line-oriented trace: `<virtual ms> <host> <event>`.
//!
//! Lines are appended in execution order. turmoil runs hosts one after another on one thread, so
//! the order is a function of the seed alone, and two runs with the same seed produce the same bytes.
//! Time is the virtual time at the start of the current step ([`SimTime`]): reading a host's own
//! clock from a destructor (a connection dropped by a crash) would fall back to the wall clock.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Virtual time as the world last set it (start of the current step). Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct SimTime(Arc<AtomicU64>);

impl SimTime {
    pub fn set(&self, d: Duration) {
        self.0.store(u64::try_from(d.as_millis()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub fn now(&self) -> Duration {
        Duration::from_millis(self.0.load(Ordering::Relaxed))
    }
}

#[derive(Debug, Default)]
struct Inner {
    lines: Vec<String>,
    echo: bool,
}

/// The trace; cheap to clone, shared by the world and every host.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    inner: Arc<Mutex<Inner>>,
    time: SimTime,
}

impl Trace {
    pub fn new(time: SimTime, echo: bool) -> Self {
        Self { inner: Arc::new(Mutex::new(Inner { lines: Vec::new(), echo })), time }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records `event` on `host` at the current virtual time.
    pub fn record(&self, host: &str, event: impl fmt::Display) {
        let line = format!("{:>10} {host:<12} {event}", self.time.now().as_millis());
        let mut inner = self.lock();
        if inner.echo {
            println!("{line}");
        }
        inner.lines.push(line);
    }

    pub fn len(&self) -> usize {
        self.lock().lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Lines from index `from` on.
    pub fn lines_from(&self, from: usize) -> Vec<String> {
        self.lock().lines.get(from..).map(<[String]>::to_vec).unwrap_or_default()
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines_from(0)
    }

    /// The last `n` lines joined, for failure reports.
    pub fn tail(&self, n: usize) -> String {
        let inner = self.lock();
        let start = inner.lines.len().saturating_sub(n);
        inner.lines[start..].join("\n")
    }

    /// The whole trace, one line per event, newline-terminated.
    pub fn text(&self) -> String {
        let inner = self.lock();
        let mut s = String::with_capacity(inner.lines.iter().map(|l| l.len() + 1).sum());
        for l in &inner.lines {
            s.push_str(l);
            s.push('\n');
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_time_and_host() {
        let time = SimTime::default();
        let t = Trace::new(time.clone(), false);
        time.set(Duration::from_millis(1234));
        t.record("kas-0", "started");
        assert_eq!(t.lines(), vec!["      1234 kas-0        started"]);
        assert_eq!(t.lines_from(1), Vec::<String>::new());
        assert_eq!(t.lines_from(9), Vec::<String>::new());
        assert_eq!(t.text(), "      1234 kas-0        started\n");
    }
}
