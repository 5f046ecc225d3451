//! Faults the runner can apply between steps.
//!
//! turmoil's TCP has no retransmission, which decides which fault models what:
//! - `hold`/`release` is the transient outage: messages wait and are delivered on release, live
//!   connections survive (unless a keepalive gives up first).
//! - `partition`/`repair` (also one-way) drops messages for good: a live connection loses bytes and
//!   HTTP/2 stalls until a keepalive or deadline ends it. Combining one-way partitions with holds on
//!   the same link is not supported by turmoil.
//! - `crash` stops a host's software (its connections close); `bounce` restarts it (a crashed host
//!   too); `kas_restart` bounces `kas-<replica>`.
//! - `latency` fixes a link's message latency; `proxy_cut` drops every live proxied connection.
//! - `swizzle` is expanded by the [`crate::schedule`] compiler into seeded holds and releases.

use std::fmt;

use serde::Deserialize;

use crate::topology::SimDuration;

/// A link between two hosts, by name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Link {
    pub a: String,
    pub b: String,
}

impl Link {
    pub fn new(a: &str, b: &str) -> Self {
        Self { a: a.to_owned(), b: b.to_owned() }
    }
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}<->{}", self.a, self.b)
    }
}

/// A directed link.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OneWay {
    pub from: String,
    pub to: String,
}

/// A swizzle-clog: clog `count` seeded-random links one by one, `interval` apart, then unclog
/// them in seeded-random order, `interval` apart (FoundationDB's swizzle-clogging).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Swizzle {
    pub count: usize,
    pub interval: SimDuration,
    /// Candidate links; default: every link of the topology.
    #[serde(default)]
    pub links: Option<Vec<Link>>,
}

/// One fault, internally tagged: `{ kind: hold, a: agentk-0, b: proxy }`, `{ kind: proxy_cut }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    Hold(Link),
    Release(Link),
    Partition(Link),
    Repair(Link),
    PartitionOneway(OneWay),
    RepairOneway(OneWay),
    Crash {
        host: String,
    },
    Bounce {
        host: String,
    },
    KasRestart {
        replica: usize,
    },
    Latency {
        a: String,
        b: String,
        latency: SimDuration,
    },
    ProxyCut,
    Swizzle(Swizzle),
    /// Undo every fault in force (the liveness phase does this too).
    Heal,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Hold(l) => write!(f, "hold {l}"),
            Self::Release(l) => write!(f, "release {l}"),
            Self::Partition(l) => write!(f, "partition {l}"),
            Self::Repair(l) => write!(f, "repair {l}"),
            Self::PartitionOneway(o) => write!(f, "partition {}->{}", o.from, o.to),
            Self::RepairOneway(o) => write!(f, "repair {}->{}", o.from, o.to),
            Self::Crash { host } => write!(f, "crash {host}"),
            Self::Bounce { host } => write!(f, "bounce {host}"),
            Self::KasRestart { replica } => write!(f, "restart kas-{replica}"),
            Self::Latency { a, b, latency } => write!(f, "latency {a}<->{b} {latency}"),
            Self::ProxyCut => f.write_str("proxy cut"),
            Self::Swizzle(s) => write!(f, "swizzle {} links every {}", s.count, s.interval),
            Self::Heal => f.write_str("heal"),
        }
    }
}

/// Why a fault cannot be applied.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FaultError {
    #[error("unknown host {0:?}")]
    UnknownHost(String),
    #[error("a link needs two different hosts, got {0:?} twice")]
    SelfLink(String),
    #[error("kas replica {replica} does not exist ({replicas} replicas)")]
    NoSuchReplica { replica: usize, replicas: usize },
    #[error("swizzle must be expanded by the schedule compiler before it is applied")]
    Unexpanded,
    #[error("swizzle: count {count} exceeds the {links} candidate links")]
    SwizzleCount { count: usize, links: usize },
}
