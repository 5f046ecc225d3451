//! Finding the cluster to run against, and saying exactly why there is none.
//!
//! Real-cluster tests must skip with a one-line reason when no cluster is reachable, so discovery
//! returns that reason instead of failing.

use std::path::{Path, PathBuf};

/// Where a kubeconfig came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub kubeconfig: PathBuf,
}

/// Why no cluster can be used; `Display` is the one-line skip reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoCluster {
    #[error("no cluster: KUBECONFIG is unset and {0} does not exist")]
    NoKubeconfig(String),
    #[error("no cluster: KUBECONFIG names {0}, which does not exist")]
    Missing(String),
}

/// Picks the kubeconfig as kubectl does: the first existing entry of `KUBECONFIG` (path-list), else
/// `$HOME/.kube/config`.
pub fn discover(kubeconfig_env: Option<&str>, home: Option<&Path>) -> Result<Target, NoCluster> {
    if let Some(list) = kubeconfig_env.filter(|s| !s.is_empty()) {
        let paths: Vec<&str> = list.split(':').filter(|p| !p.is_empty()).collect();
        return paths
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .map(|kubeconfig| Target { kubeconfig })
            .ok_or_else(|| NoCluster::Missing(paths.join(":")));
    }
    let default = home.map_or_else(|| PathBuf::from("~/.kube/config"), |h| h.join(".kube/config"));
    if default.exists() {
        Ok(Target { kubeconfig: default })
    } else {
        Err(NoCluster::NoKubeconfig(default.display().to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_follows_kubectl_and_explains_absence() {
        let dir = std::env::temp_dir().join(format!("kasim-target-{}", std::process::id()));
        std::fs::create_dir_all(dir.join(".kube")).unwrap();
        let cfg = dir.join(".kube/config");
        let _ = std::fs::remove_file(&cfg);
        assert_eq!(
            discover(None, Some(&dir)).unwrap_err().to_string(),
            format!("no cluster: KUBECONFIG is unset and {} does not exist", cfg.display())
        );
        assert_eq!(
            discover(Some("/nope/a:/nope/b"), Some(&dir)).unwrap_err(),
            NoCluster::Missing("/nope/a:/nope/b".into())
        );
        std::fs::write(&cfg, "apiVersion: v1\n").unwrap();
        assert_eq!(discover(None, Some(&dir)).unwrap().kubeconfig, cfg);
        let list = format!("/nope/a:{}", cfg.display());
        assert_eq!(discover(Some(&list), None).unwrap().kubeconfig, cfg);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
