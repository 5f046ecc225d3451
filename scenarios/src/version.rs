//! The Kubernetes versions kasim runs scenarios on: the support window of the GitLab agent, 1.31–1.33
//! (seed page 001). Asking for a version outside the window is an error unless explicitly allowed.

use std::fmt;
use std::str::FromStr;

/// The supported window, oldest first. Scenarios default to all of them.
pub const SUPPORTED: [KubeVersion; 3] =
    [KubeVersion { minor: 31 }, KubeVersion { minor: 32 }, KubeVersion { minor: 33 }];

/// A Kubernetes `1.<minor>` version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KubeVersion {
    pub minor: u32,
}

/// Why a version string was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VersionError {
    #[error("invalid Kubernetes version {0:?}: want 1.<minor>, e.g. 1.32")]
    Syntax(String),
    #[error(
        "Kubernetes {0} is outside the GitLab agent's supported window 1.31–1.33; set allow_unsupported_versions: true to run it anyway"
    )]
    Unsupported(KubeVersion),
}

impl KubeVersion {
    pub fn is_supported(self) -> bool {
        SUPPORTED.contains(&self)
    }

    /// Parses and checks the support window unless `allow_unsupported`.
    pub fn parse_checked(s: &str, allow_unsupported: bool) -> Result<Self, VersionError> {
        let v: Self = s.parse()?;
        if !allow_unsupported && !v.is_supported() {
            return Err(VersionError::Unsupported(v));
        }
        Ok(v)
    }
}

impl FromStr for KubeVersion {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, VersionError> {
        let err = || VersionError::Syntax(s.to_owned());
        let t = s.strip_prefix('v').unwrap_or(s);
        let (major, minor) = t.split_once('.').ok_or_else(err)?;
        if major != "1" || minor.is_empty() || !minor.bytes().all(|b| b.is_ascii_digit()) || minor.len() > 3 {
            return Err(err());
        }
        Ok(Self { minor: minor.parse().map_err(|_| err())? })
    }
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "1.{}", self.minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_is_enforced_unless_allowed() {
        for ok in ["1.31", "1.32", "v1.33"] {
            assert!(KubeVersion::parse_checked(ok, false).unwrap().is_supported());
        }
        assert_eq!(
            KubeVersion::parse_checked("1.30", false).unwrap_err().to_string(),
            "Kubernetes 1.30 is outside the GitLab agent's supported window 1.31–1.33; set allow_unsupported_versions: true to run it anyway"
        );
        assert!(matches!(KubeVersion::parse_checked("1.34", false), Err(VersionError::Unsupported(_))));
        assert_eq!(KubeVersion::parse_checked("1.34", true).unwrap().to_string(), "1.34");
        for bad in ["", "1", "2.31", "1.", "1.x", "1.31.2", "one"] {
            assert!(matches!(bad.parse::<KubeVersion>(), Err(VersionError::Syntax(_))), "{bad}");
        }
    }
}
