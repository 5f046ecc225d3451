//! Every request a driver issues, and its outcome(s).
//!
//! The ledger is the ground truth for the "exactly one outcome per request" invariant: drivers write
//! `issue` before sending and `complete` when the call ends (success, error, or the driver's own
//! deadline). A second `complete` is kept (not ignored) so the checker can report it; a request whose
//! deadline passed without any outcome is lost. When a driver host crashes its in-flight requests are
//! closed as `abandoned`: the client went away, which is an outcome, not a loss.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// A gRPC status other than OK (code name).
    Failed(String),
    /// The driver's own deadline passed.
    TimedOut,
    /// The driver host crashed while the request was in flight.
    Abandoned,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ok => f.write_str("ok"),
            Self::Failed(c) => write!(f, "failed {c}"),
            Self::TimedOut => f.write_str("timed out"),
            Self::Abandoned => f.write_str("abandoned"),
        }
    }
}

/// What kind of call a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    Unary,
    Hold,
    /// Issued by the liveness phase.
    Probe,
}

impl fmt::Display for RequestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unary => "unary",
            Self::Hold => "hold",
            Self::Probe => "probe",
        })
    }
}

/// One request's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub driver: String,
    pub agent: usize,
    pub kind: RequestKind,
    pub issued_at: Duration,
    /// An outcome must exist by this time.
    pub deadline: Duration,
    pub outcomes: Vec<(Duration, Outcome)>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    requests: BTreeMap<u64, Request>,
    /// Requests without any outcome yet (fast path for the checker).
    open: BTreeMap<u64, ()>,
    /// Requests completed more than once, not reported yet.
    duplicates: Vec<u64>,
    /// Requests that ended other than OK, not reported yet.
    failures: Vec<u64>,
}

/// The shared ledger; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    inner: Arc<Mutex<Inner>>,
}

impl Ledger {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn issue(&self, driver: &str, agent: usize, kind: RequestKind, now: Duration, timeout: Duration) -> u64 {
        let mut inner = self.lock();
        inner.next_id += 1;
        let id = inner.next_id;
        inner.requests.insert(
            id,
            Request {
                driver: driver.to_owned(),
                agent,
                kind,
                issued_at: now,
                deadline: now + timeout,
                outcomes: vec![],
            },
        );
        inner.open.insert(id, ());
        id
    }

    pub fn complete(&self, id: u64, now: Duration, outcome: Outcome) {
        let mut inner = self.lock();
        if outcome != Outcome::Ok {
            inner.failures.push(id);
        }
        let dup = match inner.requests.get_mut(&id) {
            Some(r) => {
                r.outcomes.push((now, outcome));
                r.outcomes.len() > 1
            }
            None => true,
        };
        inner.open.remove(&id);
        if dup {
            inner.duplicates.push(id);
        }
    }

    /// Closes every open request of `driver` as abandoned; returns their ids.
    pub fn abandon(&self, driver: &str, now: Duration) -> Vec<u64> {
        let mut inner = self.lock();
        let ids: Vec<u64> = inner
            .open
            .keys()
            .copied()
            .filter(|id| inner.requests.get(id).is_some_and(|r| r.driver == driver))
            .collect();
        for id in &ids {
            inner.open.remove(id);
            if let Some(r) = inner.requests.get_mut(id) {
                r.outcomes.push((now, Outcome::Abandoned));
            }
        }
        ids
    }

    /// Open requests whose deadline is before `now - slack`.
    pub fn overdue(&self, now: Duration, slack: Duration) -> Vec<(u64, Request)> {
        let inner = self.lock();
        inner
            .open
            .keys()
            .filter_map(|id| inner.requests.get(id).map(|r| (*id, r)))
            .filter(|(_, r)| r.deadline + slack < now)
            .map(|(id, r)| (id, r.clone()))
            .collect()
    }

    /// Takes the ids completed more than once since the last call.
    pub fn take_duplicates(&self) -> Vec<(u64, Request)> {
        let mut inner = self.lock();
        let ids = std::mem::take(&mut inner.duplicates);
        ids.into_iter().filter_map(|id| inner.requests.get(&id).map(|r| (id, r.clone()))).collect()
    }

    /// Takes the ids that ended other than OK since the last call.
    pub fn take_failures(&self) -> Vec<(u64, Request)> {
        let mut inner = self.lock();
        let ids = std::mem::take(&mut inner.failures);
        ids.into_iter().filter_map(|id| inner.requests.get(&id).map(|r| (id, r.clone()))).collect()
    }

    pub fn get(&self, id: u64) -> Option<Request> {
        self.lock().requests.get(&id).cloned()
    }

    /// Requests issued at or after `since`, by id.
    pub fn issued_since(&self, since: Duration) -> Vec<(u64, Request)> {
        let inner = self.lock();
        inner.requests.iter().filter(|(_, r)| r.issued_at >= since).map(|(id, r)| (*id, r.clone())).collect()
    }

    /// (issued, ok, other outcomes, open).
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let inner = self.lock();
        let ok = inner.requests.values().filter(|r| matches!(r.outcomes.first(), Some((_, Outcome::Ok)))).count();
        let open = inner.open.len();
        (inner.requests.len(), ok, inner.requests.len() - ok - open, open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn lost_duplicate_and_abandoned_requests_are_told_apart() {
        let l = Ledger::default();
        let a = l.issue("driver-0", 0, RequestKind::Unary, S, 10 * S);
        let b = l.issue("driver-0", 0, RequestKind::Unary, S, 10 * S);
        let c = l.issue("driver-1", 0, RequestKind::Hold, S, 10 * S);
        l.complete(a, 2 * S, Outcome::Ok);
        assert!(l.take_duplicates().is_empty());
        l.complete(a, 3 * S, Outcome::Ok);
        assert_eq!(l.take_duplicates().iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![a]);
        assert_eq!(l.abandon("driver-1", 4 * S), vec![c]);
        assert!(l.overdue(11 * S, S).is_empty(), "b's deadline + slack not passed yet");
        assert_eq!(l.overdue(13 * S, S).iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![b]);
    }
}
