//! A fault schedule: faults at virtual times, applied by the runner between `Sim::step` calls.
//!
//! In a scenario file:
//! ```yaml
//! - { at: 30s, fault: { kind: hold, a: agentk-0, b: proxy } }
//! - { at: 45s, fault: { kind: release, a: agentk-0, b: proxy } }
//! - { at: 1m, fault: { kind: kas_restart, replica: 0 } }
//! - { at: 2m, fault: { kind: swizzle, count: 3, interval: 5s } }
//! - { at: 3m, fault: { kind: proxy_cut } }
//! ```
//! [`Schedule::compile`] expands swizzles with the seed and sorts entries by time (stable, so
//! entries at the same time keep their file order).

use std::time::Duration;

use serde::Deserialize;

use crate::fault::{Fault, FaultError, Link};
use crate::seed::{Derived, Seed};
use crate::swizzle;
use crate::topology::SimDuration;

/// One scheduled fault.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub at: SimDuration,
    pub fault: Fault,
}

/// Faults in time order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct Schedule {
    pub entries: Vec<Entry>,
}

impl Schedule {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `fault` at `at` (builder style, for tests).
    pub fn at(mut self, at: Duration, fault: Fault) -> Self {
        self.entries.push(Entry { at: SimDuration(at), fault });
        self
    }

    /// Primitive faults by time; swizzles expanded from the seed (choices noted in `derived`).
    pub fn compile(
        &self,
        links: &[Link],
        seed: Seed,
        derived: &mut Derived,
    ) -> Result<Vec<(Duration, Fault)>, FaultError> {
        let mut out = Vec::new();
        for (i, e) in self.entries.iter().enumerate() {
            match &e.fault {
                Fault::Swizzle(s) => {
                    let candidates = s.links.clone().unwrap_or_else(|| links.to_vec());
                    let mut rng = seed.rng(&format!("swizzle/{i}"));
                    let expanded = swizzle::expand(s, e.at.0, &candidates, &mut rng)?;
                    let steps: Vec<String> = expanded.iter().map(|(t, f)| format!("{}ms {f}", t.as_millis())).collect();
                    derived.note(format!("swizzle[{i}]"), steps.join(", "));
                    out.extend(expanded);
                }
                f => out.push((e.at.0, f.clone())),
            }
        }
        out.sort_by_key(|(t, _)| *t);
        Ok(out)
    }

    /// When the last fault fires.
    pub fn end(&self, compiled: &[(Duration, Fault)]) -> Duration {
        compiled.last().map_or(Duration::ZERO, |(t, _)| *t)
    }
}
