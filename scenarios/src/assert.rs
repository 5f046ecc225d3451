//! `assert` steps: reads the world (agentk's pool, kas registries, the ledger, connections, the
//! checkers) and reports every mismatch.

use std::time::Duration;

use kasim_sim::ledger::Outcome;
use kasim_sim::topology::SimDuration;
use kasim_sim::world::RunError;

use crate::runner::Live;
use crate::spec::{Assert, DurationRange, Range};

/// `min..=max`, `== eq`.
pub fn range(r: &Range) -> String {
    match (r.eq, r.min, r.max) {
        (Some(e), _, _) => format!("== {e}"),
        (None, Some(a), Some(b)) => format!("{a}..={b}"),
        (None, Some(a), None) => format!(">= {a}"),
        (None, None, Some(b)) => format!("<= {b}"),
        (None, None, None) => "anything".into(),
    }
}

pub fn dur_range(r: &DurationRange) -> String {
    match (r.min, r.max) {
        (Some(a), Some(b)) => format!("{a}..={b}"),
        (Some(a), None) => format!(">= {a}"),
        (None, Some(b)) => format!("<= {b}"),
        (None, None) => "anything".into(),
    }
}

fn within(r: &Range, v: u64) -> bool {
    r.eq.is_none_or(|e| v == e) && r.min.is_none_or(|m| v >= m) && r.max.is_none_or(|m| v <= m)
}

fn num(p: &mut Vec<String>, what: &str, r: Option<&Range>, v: usize) {
    let v = v as u64;
    if let Some(r) = r
        && !within(r, v)
    {
        p.push(format!("{what}: expected {}, got {v}", range(r)));
    }
}

/// Checks `a` now; returns the mismatches. A checker breach is an error (it stops the run).
pub(crate) fn check(live: &mut Live, a: &Assert) -> Result<Vec<String>, RunError> {
    let mut p = vec![];
    let agent = live.agent_index(a.agent.as_deref());
    let counts = live.world.stream_counts(agent).unwrap_or_default();
    let pool = live.world.pool_stats(agent).unwrap_or_default();
    num(&mut p, "streams", a.streams.as_ref(), counts.pool_total);
    num(&mut p, "kas_streams", a.kas_streams.as_ref(), counts.kas_connected);
    num(&mut p, "peak_streams", a.peak_streams.as_ref(), pool.max_total);
    num(&mut p, "scale_ups", a.scale_ups.as_ref(), pool.scale_ups.len());
    num(&mut p, "idle_closed", a.idle_closed.as_ref(), pool.idle_closed);
    if let Some(r) = &a.scale_up_step {
        if pool.scale_ups.is_empty() {
            p.push("scale_up_step: the pool never scaled up".into());
        }
        if let Some((i, s)) = pool.scale_ups.iter().enumerate().find(|(_, s)| !within(r, **s as u64)) {
            p.push(format!("scale_up_step: expected {}, scale-up #{i} started {s} tunnels", range(r)));
        }
    }
    if let Some(rc) = &a.requests {
        let now = live.world.elapsed();
        let ledger = live.world.ledger();
        let (issued, ok, other, open) = ledger.counts();
        let lost = ledger.overdue(now, Duration::from_secs(1)).len();
        num(&mut p, "requests.issued", rc.issued.as_ref(), issued);
        num(&mut p, "requests.ok", rc.ok.as_ref(), ok);
        num(&mut p, "requests.failed", rc.failed.as_ref(), other);
        num(&mut p, "requests.open", rc.open.as_ref(), open);
        num(&mut p, "requests.lost", rc.lost.as_ref(), lost);
    }
    if let Some(f) = &a.failures {
        let n = live
            .world
            .ledger()
            .issued_since(Duration::ZERO)
            .iter()
            .filter(|(_, r)| {
                r.outcomes.iter().any(|(_, o)| matches!(o, Outcome::Failed(m) if m.contains(f.message.as_str())))
            })
            .count();
        num(&mut p, &format!("failures with {:?}", f.message), Some(&f.count), n);
    }
    if let Some(r) = &a.queue_wait {
        let got = live.world.client().map_or(Duration::ZERO, |c| c.max_queue_wait());
        if r.min.is_some_and(|m| got < m.0) || r.max.is_some_and(|m| got > m.0) {
            p.push(format!("queue_wait: expected {}, got {}", dur_range(r), SimDuration(got)));
        }
    }
    if let Some(c) = &a.connections {
        let opened = live.world.connections().opened("kas-");
        num(&mut p, "connections.kas_opened", c.kas_opened.as_ref(), usize::try_from(opened).unwrap_or(usize::MAX));
        if let Some(r) = &c.max_age {
            let got = live.max_conn_age;
            if r.min.is_some_and(|m| got < m.0) || r.max.is_some_and(|m| got > m.0) {
                p.push(format!("connections.max_age: expected {}, got {}", dur_range(r), SimDuration(got)));
            }
        }
    }
    if a.checkers {
        live.world.check()?;
    }
    Ok(p)
}
