//! The liveness phase (VOPR's): after the fault schedule, heal everything and require the system to
//! converge within a bound.
//!
//! Converged means, for every agent: agentk's pool and the kas registries agree on the number of
//! tunnel streams (no half-open leftovers on the kas side) and both sides have an idle tunnel. Then
//! the first driver probes every agent (agreement alone is not enough: right after a partition
//! heals, agentk and kas may both still count tunnels on a connection that lost bytes for good, and
//! only a call through it shows the loss). A round succeeds when every probe, and every other request
//! issued since the round began, succeeded; a failed round is retried. A successful round must end
//! before `bound` has passed since the heal.

use std::time::Duration;

use serde::Deserialize;

use crate::ledger::{Outcome, RequestKind};
use crate::topology::SimDuration;
use crate::world::{RunError, WORLD, World};

/// Liveness settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Liveness {
    /// Time from the heal until every agent must be connected and every probe answered. The
    /// default covers a keepalive cycle (kas pings every 50 s, gives up after 20 s), the longest
    /// way a half-open connection can linger, plus agentk's 20 s maximum backoff.
    pub bound: SimDuration,
}

impl Default for Liveness {
    fn default() -> Self {
        Self { bound: SimDuration::secs(180) }
    }
}

/// Why the system did not converge.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LivenessError {
    #[error("no driver host to probe the agents with")]
    NoDriver,
    #[error(
        "{agent} not connected {bound} after the heal (pool {pool_total} tunnels, {pool_idle} idle; kas {kas_connected}, {kas_idle} idle)"
    )]
    NotConnected {
        agent: String,
        bound: SimDuration,
        pool_total: usize,
        pool_idle: usize,
        kas_connected: usize,
        kas_idle: usize,
    },
    #[error("request {id} ({kind}) to agent-{agent} after convergence ended {outcome}")]
    RequestFailed { id: u64, kind: String, agent: usize, outcome: String },
    #[error("probes unanswered {bound} after the heal: {open:?}")]
    ProbesOpen { bound: SimDuration, open: Vec<u64> },
}

impl World {
    fn converged(&self) -> Result<(), LivenessError> {
        for (i, a) in self.agents.iter().enumerate() {
            let c = self.stream_counts(i).unwrap_or_default();
            if c.pool_total != c.kas_connected || c.pool_idle == 0 || c.kas_idle == 0 {
                return Err(LivenessError::NotConnected {
                    agent: a.name.clone(),
                    bound: SimDuration::default(),
                    pool_total: c.pool_total,
                    pool_idle: c.pool_idle,
                    kas_connected: c.kas_connected,
                    kas_idle: c.kas_idle,
                });
            }
        }
        Ok(())
    }

    /// Heals the world and requires convergence within `spec.bound`. Returns how long it took.
    ///
    /// A probe round that fails (a call swallowed by a connection neither side has declared dead
    /// yet) is not the end: the world waits for agreement again and probes again, until a whole
    /// round succeeds or the bound passes.
    pub fn liveness(&mut self, spec: &Liveness) -> Result<Duration, RunError> {
        let Some((driver, control)) = self.drivers.first().cloned() else {
            return Err(LivenessError::NoDriver.into());
        };
        self.heal();
        let healed = self.elapsed();
        let deadline = healed + spec.bound.0;
        let mut last_failure = None;
        loop {
            if let Err(mut e) = self.converged() {
                if self.elapsed() >= deadline {
                    if let LivenessError::NotConnected { bound, .. } = &mut e {
                        *bound = spec.bound;
                    }
                    let e = last_failure.unwrap_or(e);
                    self.trace.record(WORLD, format_args!("liveness FAILED: {e}"));
                    return Err(e.into());
                }
                self.step()?;
                continue;
            }
            let round = self.elapsed();
            self.trace.record(
                WORLD,
                format_args!("liveness: views agree {} ms after heal; probing", (round - healed).as_millis()),
            );
            control.probe();
            match self.probe_round(&driver, round, deadline, spec)? {
                Ok(()) => {
                    let took = self.elapsed() - healed;
                    self.trace.record(
                        WORLD,
                        format_args!("liveness: every agent answered {} ms after heal", took.as_millis()),
                    );
                    return Ok(took);
                }
                Err(e) => {
                    self.trace.record(WORLD, format_args!("liveness: {e}; probing again"));
                    last_failure = Some(e);
                }
            }
        }
    }

    /// Steps until every probe of the round since `round` has an outcome. Inner `Err`: the round
    /// failed (or the deadline passed with probes open).
    fn probe_round(
        &mut self,
        driver: &str,
        round: Duration,
        deadline: Duration,
        spec: &Liveness,
    ) -> Result<Result<(), LivenessError>, RunError> {
        loop {
            let since = self.ledger.issued_since(round);
            if let Some((id, r)) =
                since.iter().find(|(_, r)| r.outcomes.first().is_some_and(|(_, o)| *o != Outcome::Ok))
            {
                let outcome = r.outcomes.first().map(|(_, o)| o.to_string()).unwrap_or_default();
                return Ok(Err(LivenessError::RequestFailed {
                    id: *id,
                    kind: r.kind.to_string(),
                    agent: r.agent,
                    outcome,
                }));
            }
            let probes: Vec<_> =
                since.iter().filter(|(_, r)| r.kind == RequestKind::Probe && r.driver == driver).collect();
            let open: Vec<u64> = probes.iter().filter(|(_, r)| r.outcomes.is_empty()).map(|(id, _)| *id).collect();
            if probes.len() >= self.agents.len() && open.is_empty() {
                return Ok(Ok(()));
            }
            if self.elapsed() >= deadline {
                let e = LivenessError::ProbesOpen { bound: spec.bound, open };
                self.trace.record(WORLD, format_args!("liveness FAILED: {e}"));
                return Err(e.into());
            }
            self.step()?;
        }
    }
}
