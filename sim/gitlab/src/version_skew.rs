//! Agent/GitLab version compatibility, and the warning GitLab's agent list shows.
//!
//! The documented rule (doc/user/clusters/agent/install/_index.md, "Update and version
//! compatibility"): the agent's major.minor should match GitLab's; the previous and the next minor
//! are supported too. With GitLab 18.6: 18.6.x ideal, 18.5.x and 18.7.x supported, anything else
//! not. Patch levels and pre-release suffixes never matter.
//!
//! **Across a major boundary** (GitLab 18.0 with agent 17.11, or GitLab 17.11 with agent 18.0)
//! kasim says *unsupported*. 17.11 → 18.0 are adjacent releases, but the docs speak of minor
//! versions only, and major releases are exactly where GitLab removes deprecated features and
//! breaking protocol changes land, so calling that pair "the previous minor" cannot be justified
//! from the sources. The verdict is [`VersionSkew::MajorMismatch`], kept apart from plain
//! "too old"/"too new" so a scenario can tell the two situations apart.
//!
//! GitLab learns agent versions from kas (upstream: `GetConnectedAgentsByAgentIds`, fed by
//! agentk's `Register` calls). The stand-in is told them with [`GitLab::record_agent_version`].

use std::collections::BTreeMap;

use crate::model::{AgentId, GitLab, ModelError};

/// The GitLab version the stand-in reports unless told otherwise.
pub const DEFAULT_GITLAB_VERSION: &str = "18.6.0";

/// `major.minor.patch`, from `v18.6.0`, `18.6`, `18.6.0-rc1`, `18.6.0-ee`, `v18.6.0+abc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

/// Why a version string was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid version {0:?}: want [v]MAJOR.MINOR[.PATCH][-suffix]")]
pub struct VersionError(pub String);

impl std::str::FromStr for Version {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, VersionError> {
        let err = || VersionError(s.to_owned());
        let core = s.trim().strip_prefix('v').unwrap_or(s.trim());
        let core = core.split(['-', '+']).next().unwrap_or_default();
        let mut parts = core.split('.');
        let mut num = |required: bool| -> Result<u32, VersionError> {
            match parts.next() {
                Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse().map_err(|_| err()),
                None if !required => Ok(0),
                _ => Err(err()),
            }
        };
        let v = Self { major: num(true)?, minor: num(true)?, patch: num(false)? };
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(v)
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// How an agent version relates to GitLab's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSkew {
    /// Same major.minor: the ideal.
    Match,
    /// One minor behind: supported.
    PreviousMinor,
    /// One minor ahead: supported.
    NextMinor,
    /// Two or more minors behind, same major.
    TooOld,
    /// Two or more minors ahead, same major.
    TooNew,
    /// Different major (see the module docs for 17.11 ↔ 18.0).
    MajorMismatch,
}

impl VersionSkew {
    pub fn is_supported(self) -> bool {
        matches!(self, Self::Match | Self::PreviousMinor | Self::NextMinor)
    }
}

/// Applies the documented rule.
pub fn version_skew(gitlab: Version, agent: Version) -> VersionSkew {
    if gitlab.major != agent.major {
        return VersionSkew::MajorMismatch;
    }
    match i64::from(agent.minor) - i64::from(gitlab.minor) {
        0 => VersionSkew::Match,
        -1 => VersionSkew::PreviousMinor,
        1 => VersionSkew::NextMinor,
        d if d < 0 => VersionSkew::TooOld,
        _ => VersionSkew::TooNew,
    }
}

/// The agent list's warning for one agent, or `None` when its version is supported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionWarning {
    pub agent_version: String,
    /// `None` when the agent's version did not parse.
    pub skew: Option<VersionSkew>,
    pub message: String,
}

/// The warning for `agent_version` against `gitlab`, `None` when supported.
pub fn version_warning(gitlab: Version, agent_version: &str) -> Option<VersionWarning> {
    let supported = {
        let lo = if gitlab.minor == 0 { 0 } else { gitlab.minor - 1 };
        format!("{}.{} to {}.{}", gitlab.major, lo, gitlab.major, gitlab.minor + 1)
    };
    let (skew, message) = match agent_version.parse::<Version>() {
        Err(_) => (None, format!("The agent reported version {agent_version:?}, which GitLab cannot compare.")),
        Ok(v) => {
            let skew = version_skew(gitlab, v);
            if skew.is_supported() {
                return None;
            }
            let what = match skew {
                VersionSkew::TooNew => "is newer than",
                VersionSkew::MajorMismatch => "has another major version than",
                _ => "is older than",
            };
            (
                Some(skew),
                format!(
                    "Agent version {agent_version} {what} GitLab {}.{} supports ({supported}). Update the agent to {}.{}.",
                    gitlab.major, gitlab.minor, gitlab.major, gitlab.minor
                ),
            )
        }
    };
    Some(VersionWarning { agent_version: agent_version.to_owned(), skew, message })
}

/// Versions the stand-in knows.
#[derive(Debug, Default)]
pub(crate) struct VersionState {
    gitlab: Option<Version>,
    agents: BTreeMap<AgentId, String>,
}

impl GitLab {
    /// This instance's version (default [`DEFAULT_GITLAB_VERSION`]).
    pub fn gitlab_version(&self) -> Version {
        self.lock().versions.gitlab.unwrap_or(Version { major: 18, minor: 6, patch: 0 })
    }

    pub fn set_gitlab_version(&self, version: &str) -> Result<(), VersionError> {
        let v = version.parse()?;
        self.lock().versions.gitlab = Some(v);
        Ok(())
    }

    /// Records the version a connected agent reported (what kas tells GitLab).
    pub fn record_agent_version(&self, agent: AgentId, version: &str) -> Result<(), ModelError> {
        let mut st = self.lock();
        st.agent(agent)?;
        st.versions.agents.insert(agent, version.to_owned());
        Ok(())
    }

    /// The agent list's version warning for `agent`: `None` when its version is supported or not
    /// known (no connected agent reported one).
    pub fn agent_version_warning(&self, agent: AgentId) -> Result<Option<VersionWarning>, ModelError> {
        let gitlab = self.gitlab_version();
        let st = self.lock();
        st.agent(agent)?;
        Ok(st.versions.agents.get(&agent).and_then(|v| version_warning(gitlab, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn parsing() {
        assert_eq!(v("v18.6.0"), Version { major: 18, minor: 6, patch: 0 });
        assert_eq!(v("18.6"), Version { major: 18, minor: 6, patch: 0 });
        assert_eq!(v("18.6.2-rc1"), Version { major: 18, minor: 6, patch: 2 });
        assert_eq!(v("v17.11.3+abcdef"), Version { major: 17, minor: 11, patch: 3 });
        for bad in ["", "v", "18", "18.", "18.x", "18.6.0.1", "x18.6", "18..6", "-1.2"] {
            assert!(bad.parse::<Version>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_documented_rule_with_gitlab_18_6() {
        let gl = v("18.6.4");
        let table = [
            ("v18.4.0", VersionSkew::TooOld, false),
            ("v18.5.0", VersionSkew::PreviousMinor, true),
            ("v18.5.9", VersionSkew::PreviousMinor, true),
            ("v18.6.0", VersionSkew::Match, true),
            ("v18.6.7-rc2", VersionSkew::Match, true),
            ("v18.7.0", VersionSkew::NextMinor, true),
            ("v18.8.0", VersionSkew::TooNew, false),
            ("v17.6.0", VersionSkew::MajorMismatch, false),
            ("v19.6.0", VersionSkew::MajorMismatch, false),
        ];
        for (agent, want, supported) in table {
            let got = version_skew(gl, v(agent));
            assert_eq!(got, want, "agent {agent}");
            assert_eq!(got.is_supported(), supported, "agent {agent}");
            assert_eq!(version_warning(gl, agent).is_none(), supported, "agent {agent}");
        }
    }

    #[test]
    fn the_docs_example_and_the_major_boundary() {
        // The docs: GitLab v14.9.4 → agent 14.9.x ideal, 14.8.x and 14.10.x supported.
        let gl = v("14.9.4");
        assert_eq!(version_skew(gl, v("14.8.1")), VersionSkew::PreviousMinor);
        assert_eq!(version_skew(gl, v("14.10.0")), VersionSkew::NextMinor);
        // Not adjacent for kasim: a major boundary.
        assert_eq!(version_skew(v("18.0.0"), v("17.11.0")), VersionSkew::MajorMismatch);
        assert_eq!(version_skew(v("17.11.0"), v("18.0.0")), VersionSkew::MajorMismatch);
        assert_eq!(version_skew(v("18.0.0"), v("18.1.0")), VersionSkew::NextMinor);
    }

    #[test]
    fn warnings() {
        let w = version_warning(v("18.6.0"), "v18.4.1").unwrap();
        assert_eq!(w.skew, Some(VersionSkew::TooOld));
        assert_eq!(
            w.message,
            "Agent version v18.4.1 is older than GitLab 18.6 supports (18.5 to 18.7). Update the agent to 18.6."
        );
        let w = version_warning(v("18.6.0"), "v18.8.0").unwrap();
        assert_eq!(
            w.message,
            "Agent version v18.8.0 is newer than GitLab 18.6 supports (18.5 to 18.7). Update the agent to 18.6."
        );
        let w = version_warning(v("18.0.0"), "v17.11.0").unwrap();
        assert_eq!(
            w.message,
            "Agent version v17.11.0 has another major version than GitLab 18.0 supports (18.0 to 18.1). Update the agent to 18.0."
        );
        let w = version_warning(v("18.6.0"), "dev").unwrap();
        assert_eq!(w.skew, None);
        assert!(version_warning(v("18.6.0"), "v18.7.3").is_none());
    }
}
