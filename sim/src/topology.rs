//! What a simulated world is made of, as a scenario file describes it.
//!
//! Every struct is `Deserialize` with `deny_unknown_fields` (a typo in a scenario must fail loudly,
//! not silently fall back to a default) and every field has a default, so `{}` is a valid topology:
//! one kas, one agent, the L4 proxy, the GitLab stand-in, one API server and one driver, on a 10 ms
//! tick. Durations are Go-style strings (`2h`, `1h30m`, `250ms`), as kas's own config uses.

use std::fmt;
use std::time::Duration;

use kasim_core::agentk::PoolConfig;
use serde::{Deserialize, Deserializer};

/// A Go-style duration in a scenario file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct SimDuration(pub Duration);

impl SimDuration {
    pub const fn secs(s: u64) -> Self {
        Self(Duration::from_secs(s))
    }

    pub const fn millis(ms: u64) -> Self {
        Self(Duration::from_millis(ms))
    }
}

impl<'de> Deserialize<'de> for SimDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        kasim_core::duration::parse(&s).map(Self).map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for SimDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl schemars::JsonSchema for SimDuration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "Go-style duration: 2h, 1h30m, 250ms",
            "pattern": "^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"
        })
    }
}

impl fmt::Display for SimDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&kasim_core::duration::format(self.0))
    }
}

/// The whole world.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Topology {
    /// turmoil's fixed step. 10 ms resolves individual round trips; 100 ms is ten times cheaper
    /// and still finer than every protocol timer (the shortest is the 1 s backoff).
    pub tick: SimDuration,
    /// Per-message latency range of every link (turmoil draws from an exponential distribution
    /// with the seeded rng, so message timing depends on the seed).
    pub latency: LatencyRange,
    pub kas: KasTopology,
    /// One entry per agent (= per cluster).
    pub agents: Vec<AgentTopology>,
    pub proxy: ProxyTopology,
    pub gitlab: GitLabMode,
    /// Start one Kubernetes API server model host per cluster (`apiserver-<i>`).
    pub apiservers: bool,
    pub drivers: Vec<DriverTopology>,
    /// Run the invariant checkers every this many steps (1 = after every step).
    pub check_every: u32,
    /// Until the first fault, every request must succeed: rotation by max age and grace must be
    /// invisible to callers. Only meaningful when the proxy lifetime is at least age + grace.
    pub expect_no_failures: bool,
    pub trace: TraceTopology,
}

impl Default for Topology {
    fn default() -> Self {
        Self {
            tick: SimDuration::millis(10),
            latency: LatencyRange::default(),
            kas: KasTopology::default(),
            agents: vec![AgentTopology::default()],
            proxy: ProxyTopology::default(),
            gitlab: GitLabMode::Http,
            apiservers: true,
            drivers: vec![DriverTopology::default()],
            check_every: 1,
            expect_no_failures: false,
            trace: TraceTopology::default(),
        }
    }
}

/// Message latency bounds for all links.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LatencyRange {
    pub min: SimDuration,
    pub max: SimDuration,
}

impl Default for LatencyRange {
    fn default() -> Self {
        Self { min: SimDuration::millis(1), max: SimDuration::millis(20) }
    }
}

/// The kas replicas (`kas-0` …), sharing one in-memory tunnel tracker.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct KasTopology {
    pub replicas: usize,
    /// Agent listener's maximum connection age (GOAWAY). `0` = no maximum.
    pub max_connection_age: SimDuration,
    /// Grace after the age; default 50 % of the age (GitLab's documented 2 h + 1 h).
    pub grace: Option<SimDuration>,
}

impl Default for KasTopology {
    fn default() -> Self {
        Self { replicas: 1, max_connection_age: SimDuration::secs(2 * 3600), grace: None }
    }
}

impl KasTopology {
    pub fn grace(&self) -> Duration {
        self.grace.map_or(self.max_connection_age.0 / 2, |g| g.0)
    }
}

/// One agent: a real agentk with its pool.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AgentTopology {
    pub pool: PoolTopology,
}

/// agentk's pool limits (upstream defaults).
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PoolTopology {
    pub min_idle: usize,
    pub max_connections: usize,
    pub scale_up_step: usize,
    pub max_idle_time: SimDuration,
}

impl Default for PoolTopology {
    fn default() -> Self {
        let d = PoolConfig::default();
        Self {
            min_idle: d.min_idle,
            max_connections: d.max_connections,
            scale_up_step: d.scale_up_step,
            max_idle_time: SimDuration(d.max_idle_time),
        }
    }
}

impl PoolTopology {
    pub fn to_config(&self) -> PoolConfig {
        PoolConfig {
            min_idle: self.min_idle,
            max_connections: self.max_connections,
            scale_up_step: self.scale_up_step,
            max_idle_time: self.max_idle_time.0,
            ..PoolConfig::default()
        }
    }
}

/// The L4 proxy in front of kas (GitLab.com puts one there; it has its own connection lifetime).
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyTopology {
    /// Every proxied connection is cut at this age. `0` = never.
    pub lifetime: SimDuration,
    pub assignment: Assignment,
}

impl Default for ProxyTopology {
    fn default() -> Self {
        Self { lifetime: SimDuration::secs(2 * 3600), assignment: Assignment::RoundRobin }
    }
}

/// How the proxy picks a kas replica for a new connection. All choices are deterministic.
/// Internally tagged (`{ kind: index, replica: 1 }`) so it reads the same in YAML and JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Assignment {
    /// kas-0, kas-1, … in turn (the counter survives proxy restarts).
    RoundRobin,
    /// A replica drawn from the seeded generator.
    Seeded,
    /// Always this replica.
    Index { replica: usize },
}

/// How kas learns about agent tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GitLabMode {
    /// kas calls the GitLab stand-in host over simulated HTTP with the JWT secret.
    Http,
    /// kas answers from an in-memory table: no `gitlab` host (one host fewer per step).
    Static,
}

/// A host issuing requests through kas.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DriverTopology {
    /// One unary Testing call every `interval`, to the agents in turn. `0` = none.
    pub interval: SimDuration,
    /// Outcome deadline of a unary call (the driver gives up with `timeout` after it).
    pub request_timeout: SimDuration,
    /// Long `Hold` calls kept in flight at all times (like watches).
    pub holds: usize,
    pub hold_for: SimDuration,
    /// A deliberate bug, for testing the checkers themselves.
    pub bug: Option<DriverBug>,
}

impl Default for DriverTopology {
    fn default() -> Self {
        Self {
            interval: SimDuration::secs(10),
            request_timeout: SimDuration::secs(30),
            holds: 0,
            hold_for: SimDuration::secs(600),
            bug: None,
        }
    }
}

/// Deliberately broken driver behaviour that the request checker must catch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DriverBug {
    /// Forget the outcome of every n-th request.
    LoseEvery { n: u64 },
    /// Report the outcome of every n-th request twice.
    DuplicateEvery { n: u64 },
}

/// What goes into the trace besides world events.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TraceTopology {
    /// Capture `tracing` events of kas/agentk at this level or above (`error`, `warn`, `info`,
    /// `debug`, `trace`); `None` = world events only.
    pub tracing: Option<String>,
    /// Also print each trace line to stdout as it is recorded.
    pub echo: bool,
}

/// Why a topology cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TopologyError {
    #[error("kas.replicas must be at least 1")]
    NoKas,
    #[error("agents must list at least one agent")]
    NoAgents,
    #[error("tick must be between 1ms and 1h, got {0}")]
    Tick(SimDuration),
    #[error("latency.min ({min}) is above latency.max ({max})")]
    Latency { min: SimDuration, max: SimDuration },
    #[error("proxy.assignment: index {index} but only {replicas} kas replicas")]
    AssignmentIndex { index: usize, replicas: usize },
    #[error("agents[{0}].pool: max_connections must be at least 1 and scale_up_step at least 1")]
    Pool(usize),
    #[error("drivers[{0}]: request_timeout must be positive")]
    DriverTimeout(usize),
    #[error("drivers[{0}]: bug period must be at least 1")]
    BugPeriod(usize),
    #[error("check_every must be at least 1")]
    CheckEvery,
    #[error("trace.tracing: unknown level {0:?}")]
    TraceLevel(String),
}

impl Topology {
    /// Checks what serde cannot: counts, ranges and cross-references.
    pub fn validate(&self) -> Result<(), TopologyError> {
        if self.kas.replicas == 0 {
            return Err(TopologyError::NoKas);
        }
        if self.agents.is_empty() {
            return Err(TopologyError::NoAgents);
        }
        if self.tick.0 < Duration::from_millis(1) || self.tick.0 > Duration::from_secs(3600) {
            return Err(TopologyError::Tick(self.tick));
        }
        if self.latency.min > self.latency.max {
            return Err(TopologyError::Latency { min: self.latency.min, max: self.latency.max });
        }
        if let Assignment::Index { replica: index } = self.proxy.assignment
            && index >= self.kas.replicas
        {
            return Err(TopologyError::AssignmentIndex { index, replicas: self.kas.replicas });
        }
        for (i, a) in self.agents.iter().enumerate() {
            if a.pool.max_connections == 0 || a.pool.scale_up_step == 0 {
                return Err(TopologyError::Pool(i));
            }
        }
        for (i, d) in self.drivers.iter().enumerate() {
            if d.request_timeout.0.is_zero() {
                return Err(TopologyError::DriverTimeout(i));
            }
            if matches!(d.bug, Some(DriverBug::LoseEvery { n: 0 } | DriverBug::DuplicateEvery { n: 0 })) {
                return Err(TopologyError::BugPeriod(i));
            }
        }
        if self.check_every == 0 {
            return Err(TopologyError::CheckEvery);
        }
        if let Some(l) = &self.trace.tracing {
            l.parse::<tracing::Level>().map_err(|_| TopologyError::TraceLevel(l.clone()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_document_is_the_default_world() {
        let t: Topology = serde_json::from_str("{}").unwrap();
        assert_eq!(t, Topology::default());
        assert_eq!(t.kas.grace(), Duration::from_secs(3600));
        t.validate().unwrap();
    }

    #[test]
    fn unknown_fields_and_bad_durations_are_rejected() {
        assert!(serde_json::from_str::<Topology>(r#"{"kas":{"replica":2}}"#).is_err());
        assert!(serde_json::from_str::<Topology>(r#"{"tick":"10"}"#).is_err());
        let t: Topology = serde_json::from_str(
            r#"{"tick":"100ms","kas":{"replicas":3},"proxy":{"assignment":{"kind":"index","replica":5}}}"#,
        )
        .unwrap();
        assert_eq!(t.validate(), Err(TopologyError::AssignmentIndex { index: 5, replicas: 3 }));
    }
}
