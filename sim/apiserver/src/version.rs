//! The modelled Kubernetes versions and everything that differs between them.
//!
//! All version-dependent behaviour lives in [`VERSIONS`], one row per
//! version, so a reader can see at a glance what changes between releases.
//! For the endpoints this crate models, the observable differences are only
//! in `/version`:
//!
//! * the patch release reported in `gitVersion` (the kind node image
//!   releases we model against);
//! * from 1.33 on, `/version` also reports the emulation and minimum
//!   compatibility versions (KEP-4330, "compatibility versions").
//!
//! Everything else modelled here (impersonation, RBAC, SelfSubjectReview
//! GA since 1.28, SelfSubjectAccessReview, error texts) is identical in
//! 1.31, 1.32 and 1.33.
//!
//! ## Differences from a real API server
//! `gitCommit` and `buildDate` are fixed placeholders, and `goVersion` the
//! Go minor line of that release, rather than the values of a real build;
//! clients do not interpret them.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// A Kubernetes minor version the model can impersonate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KubeVersion {
    /// Kubernetes 1.31.
    V1_31,
    /// Kubernetes 1.32.
    V1_32,
    /// Kubernetes 1.33.
    V1_33,
}

/// A version string that is not one of the modelled versions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// Not `1.31`, `1.32` or `1.33` (an optional leading `v` is accepted).
    #[error("unsupported Kubernetes version {0:?}: modelled versions are 1.31, 1.32, 1.33")]
    Unsupported(String),
}

/// One row of the version table.
struct VersionRow {
    version: KubeVersion,
    minor: &'static str,
    git_version: &'static str,
    go_version: &'static str,
    /// Whether `/version` carries emulation/min-compatibility fields.
    reports_emulation: bool,
}

const VERSIONS: &[VersionRow] = &[
    VersionRow {
        version: KubeVersion::V1_31,
        minor: "31",
        git_version: "v1.31.9",
        go_version: "go1.23.8",
        reports_emulation: false,
    },
    VersionRow {
        version: KubeVersion::V1_32,
        minor: "32",
        git_version: "v1.32.5",
        go_version: "go1.23.8",
        reports_emulation: false,
    },
    VersionRow {
        version: KubeVersion::V1_33,
        minor: "33",
        git_version: "v1.33.1",
        go_version: "go1.24.2",
        reports_emulation: true,
    },
];

impl KubeVersion {
    /// Every modelled version, oldest first.
    pub const ALL: [KubeVersion; 3] = [Self::V1_31, Self::V1_32, Self::V1_33];

    fn row(self) -> &'static VersionRow {
        // The table has one row per variant; fall back to the first row
        // rather than panic should that ever be violated.
        VERSIONS
            .iter()
            .find(|r| r.version == self)
            .unwrap_or(&VERSIONS[0])
    }

    /// The full `gitVersion`, e.g. `v1.32.5`.
    pub fn git_version(self) -> &'static str {
        self.row().git_version
    }

    /// The `/version` document.
    pub(crate) fn info(self) -> VersionInfo {
        let r = self.row();
        let prev = r
            .minor
            .parse::<u32>()
            .unwrap_or(1)
            .saturating_sub(1)
            .to_string();
        let emulation = |v: String| r.reports_emulation.then_some(v);
        VersionInfo {
            major: "1",
            minor: r.minor,
            emulation_major: emulation("1".into()),
            emulation_minor: emulation(r.minor.into()),
            min_compatibility_major: emulation("1".into()),
            min_compatibility_minor: emulation(prev),
            git_version: r.git_version,
            git_commit: "0000000000000000000000000000000000000000",
            git_tree_state: "clean",
            build_date: "2025-01-01T00:00:00Z",
            go_version: r.go_version,
            compiler: "gc",
            platform: "linux/amd64",
        }
    }
}

/// `version.Info`, fields in upstream (Go struct) order.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VersionInfo {
    major: &'static str,
    minor: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    emulation_major: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    emulation_minor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    min_compatibility_major: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    min_compatibility_minor: Option<String>,
    git_version: &'static str,
    git_commit: &'static str,
    git_tree_state: &'static str,
    build_date: &'static str,
    go_version: &'static str,
    compiler: &'static str,
    platform: &'static str,
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "1.{}", self.row().minor)
    }
}

impl FromStr for KubeVersion {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().trim_start_matches('v');
        VERSIONS
            .iter()
            .find(|r| t == format!("1.{}", r.minor))
            .map(|r| r.version)
            .ok_or_else(|| VersionError::Unsupported(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_round_trip() {
        for v in KubeVersion::ALL {
            assert_eq!(v.to_string().parse::<KubeVersion>(), Ok(v));
        }
        assert_eq!("v1.32".parse::<KubeVersion>(), Ok(KubeVersion::V1_32));
        for bad in ["1.30", "1.34", "", "1.3", "one", "1.31.1"] {
            assert!(bad.parse::<KubeVersion>().is_err(), "{bad}");
        }
    }

    #[test]
    fn version_info_differs_per_version() {
        let i = serde_json::to_value(KubeVersion::V1_31.info()).unwrap();
        assert_eq!(i["gitVersion"], "v1.31.9");
        assert_eq!(i["minor"], "31");
        assert_eq!(i["platform"], "linux/amd64");
        assert!(i.get("emulationMinor").is_none());
        let text = serde_json::to_string(&KubeVersion::V1_33.info()).unwrap();
        assert!(
            text.starts_with(r#"{"major":"1","minor":"33","emulationMajor":"1","emulationMinor":"33","minCompatibilityMajor":"1","minCompatibilityMinor":"32","gitVersion":"v1.33.1","#),
            "{text}"
        );
        let i: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(i["gitVersion"], "v1.33.1");
        assert_eq!(i["emulationMinor"], "33");
        assert_eq!(i["minCompatibilityMinor"], "32");
    }
}
