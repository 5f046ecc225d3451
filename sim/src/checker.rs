//! Invariant checkers, run by the world after every `check_every` steps. The first breach stops the
//! run with the virtual time, the hosts involved and what was seen.
//!
//! - **stream cap**: per agent, open tunnel streams ≤ 500 — both as agentk's pool counts them and
//!   as the kas registries (summed over replicas) count them. The kas view includes half-open
//!   streams until a keepalive ends them, so a full pool behind a cut link can briefly show more.
//! - **requests**: every request issued gets exactly one outcome: none completed twice, none still
//!   open past its deadline plus slack (lost).
//! - **fault-free success** (opt-in, `expect_no_failures`): while no fault has been applied, every
//!   request succeeds — connection rotation (max age, grace) must be invisible to callers.
//! - **connection age**: no kas agent-listener connection outlives max age + grace, and no proxied
//!   connection outlives the proxy's lifetime (plus slack: one second and two ticks).
//! - **token leak**: no agent token appears in any trace line (world events or captured `tracing`).

use std::fmt;
use std::time::Duration;

use kasim_core::tunnel::registry::AgentId;

use crate::agent_host::AgentSlot;
use crate::conn::ConnTable;
use crate::kas_host::KasSlot;
use crate::ledger::Ledger;
use crate::trace::Trace;

/// The documented maximum of logical streams per agent.
pub const MAX_STREAMS_PER_AGENT: usize = 500;

/// A breached invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub at: Duration,
    pub checker: &'static str,
    pub hosts: Vec<String>,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at {} ms [{}] on {}: {}", self.at.as_millis(), self.checker, self.hosts.join(","), self.detail)
    }
}

/// An agent as the checkers see it.
pub struct AgentProbe {
    pub name: String,
    pub id: AgentId,
    pub slot: AgentSlot,
    pub token: String,
}

/// Stream counts of one agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamCounts {
    /// agentk's pool total; 0 while the host is down.
    pub pool_total: usize,
    pub pool_idle: usize,
    /// Σ over kas replicas of registered tunnel streams.
    pub kas_connected: usize,
    pub kas_idle: usize,
}

/// Reads one agent's counts from its agentk and every kas.
pub fn stream_counts(agent: &AgentProbe, kas: &[(String, KasSlot)]) -> StreamCounts {
    let pool = agent.slot.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|a| a.stats()).unwrap_or_default();
    let mut c = StreamCounts { pool_total: pool.total(), pool_idle: pool.idle, ..Default::default() };
    for (_, slot) in kas {
        if let Some(k) = slot.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            let s = k.registry().stats(agent.id);
            c.kas_connected += s.connected;
            c.kas_idle += s.idle;
        }
    }
    c
}

/// The checkers and their incremental state.
#[derive(Debug)]
pub struct Checkers {
    pub max_streams: usize,
    /// Extra time allowed past a deadline or lifetime.
    pub slack: Duration,
    scanned_lines: usize,
}

impl Checkers {
    pub fn new(tick: Duration) -> Self {
        Self { max_streams: MAX_STREAMS_PER_AGENT, slack: Duration::from_secs(1) + 2 * tick, scanned_lines: 0 }
    }

    /// Per agent, open streams ≤ the cap, from both sides.
    pub fn stream_cap(&self, now: Duration, agents: &[AgentProbe], kas: &[(String, KasSlot)]) -> Result<(), Violation> {
        for a in agents {
            let c = stream_counts(a, kas);
            if c.pool_total > self.max_streams {
                return Err(Violation {
                    at: now,
                    checker: "stream cap",
                    hosts: vec![a.name.clone()],
                    detail: format!("agentk pool holds {} tunnels, cap {}", c.pool_total, self.max_streams),
                });
            }
            if c.kas_connected > self.max_streams {
                let hosts = kas
                    .iter()
                    .filter(|(_, s)| {
                        s.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .as_ref()
                            .is_some_and(|k| k.registry().stats(a.id).connected > 0)
                    })
                    .map(|(n, _)| n.clone())
                    .chain([a.name.clone()])
                    .collect();
                return Err(Violation {
                    at: now,
                    checker: "stream cap",
                    hosts,
                    detail: format!(
                        "kas registries hold {} tunnel streams of agent {}, cap {}",
                        c.kas_connected, a.id, self.max_streams
                    ),
                });
            }
        }
        Ok(())
    }

    /// Exactly one outcome per request; with `no_failures`, that outcome is OK.
    pub fn requests(&self, now: Duration, ledger: &Ledger, no_failures: bool) -> Result<(), Violation> {
        let failures = ledger.take_failures();
        if no_failures && let Some((id, r)) = failures.into_iter().next() {
            let outcome = r.outcomes.first().map(|(_, o)| o.to_string()).unwrap_or_default();
            return Err(Violation {
                at: now,
                checker: "fault-free success",
                hosts: vec![r.driver, format!("agent-{}", r.agent)],
                detail: format!(
                    "request {id} ({}) issued at {} ms ended {outcome} although no fault was applied",
                    r.kind,
                    r.issued_at.as_millis()
                ),
            });
        }
        if let Some((id, r)) = ledger.take_duplicates().into_iter().next() {
            let outcomes: Vec<String> =
                r.outcomes.iter().map(|(t, o)| format!("{o} at {} ms", t.as_millis())).collect();
            return Err(Violation {
                at: now,
                checker: "requests",
                hosts: vec![r.driver],
                detail: format!("request {id} got {} outcomes: {}", r.outcomes.len(), outcomes.join("; ")),
            });
        }
        if let Some((id, r)) = ledger.overdue(now, self.slack).into_iter().next() {
            return Err(Violation {
                at: now,
                checker: "requests",
                hosts: vec![r.driver, format!("agent-{}", r.agent)],
                detail: format!(
                    "request {id} ({}) issued at {} ms has no outcome, deadline was {} ms: lost",
                    r.kind,
                    r.issued_at.as_millis(),
                    r.deadline.as_millis()
                ),
            });
        }
        Ok(())
    }

    /// No connection outlives its bound.
    pub fn connection_age(&self, now: Duration, conns: &ConnTable) -> Result<(), Violation> {
        for (id, c) in conns.live() {
            if let Some(max) = c.max_life
                && now > c.opened_at + max + self.slack
            {
                return Err(Violation {
                    at: now,
                    checker: "connection age",
                    hosts: vec![c.host.clone(), c.peer.clone()],
                    detail: format!(
                        "connection {id} opened at {} ms is {} ms old, bound {} ms",
                        c.opened_at.as_millis(),
                        (now - c.opened_at).as_millis(),
                        max.as_millis()
                    ),
                });
            }
        }
        Ok(())
    }

    /// No agent token in the trace (scans only lines added since the last call).
    pub fn token_leak(&mut self, now: Duration, trace: &Trace, agents: &[AgentProbe]) -> Result<(), Violation> {
        let lines = trace.lines_from(self.scanned_lines);
        self.scanned_lines += lines.len();
        for line in &lines {
            for a in agents {
                if !a.token.is_empty() && line.contains(&a.token) {
                    return Err(Violation {
                        at: now,
                        checker: "token leak",
                        hosts: vec![a.name.clone()],
                        // Never repeat the token itself: cut the line where it starts.
                        detail: format!(
                            "a trace line holds {}'s token: {:?}",
                            a.name,
                            line.split(&a.token).next().unwrap_or_default()
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::ConnInfo;
    use crate::trace::SimTime;

    const TOKEN: &str = "glagent-abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwx";

    fn agent() -> AgentProbe {
        AgentProbe { name: "agentk-0".into(), id: 1, slot: AgentSlot::default(), token: TOKEN.into() }
    }

    #[test]
    fn a_token_in_any_trace_line_is_caught_without_repeating_it() {
        let time = SimTime::default();
        let trace = Trace::new(time.clone(), false);
        let mut c = Checkers::new(Duration::from_millis(10));
        trace.record("kas-0", "authorization: Bearer <redacted>");
        c.token_leak(Duration::ZERO, &trace, &[agent()]).unwrap();
        trace.record("kas-0", format_args!("authorization: Bearer {TOKEN}"));
        let v = c.token_leak(Duration::ZERO, &trace, &[agent()]).unwrap_err();
        assert_eq!((v.checker, v.hosts.as_slice()), ("token leak", ["agentk-0".to_owned()].as_slice()));
        assert!(!v.to_string().contains(TOKEN), "{v}");
        c.token_leak(Duration::ZERO, &trace, &[agent()]).unwrap();
    }

    #[test]
    fn a_connection_past_its_bound_is_caught_and_unbounded_ones_are_not() {
        let table = ConnTable::default();
        let c = Checkers::new(Duration::from_millis(100));
        let bounded = |host: &str, max| ConnInfo {
            host: host.into(),
            peer: "proxy".into(),
            opened_at: Duration::from_secs(10),
            max_life: max,
        };
        table.open(bounded("kas-0", Some(Duration::from_secs(90))));
        table.open(bounded("kas-1", None));
        let slack = Duration::from_millis(1200);
        c.connection_age(Duration::from_secs(100) + slack, &table).unwrap();
        let v = c.connection_age(Duration::from_secs(100) + slack + Duration::from_millis(1), &table).unwrap_err();
        assert_eq!(v.hosts, vec!["kas-0", "proxy"]);
        table.forget_host("kas-0");
        c.connection_age(Duration::from_secs(10_000), &table).unwrap();
    }
}
