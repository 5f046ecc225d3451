//! agentk in the cluster, installed with the gitlab-agent Helm chart (kasim's chart in
//! `conformance/charts/gitlab-agent`, or the upstream chart: the values are the same).
//!
//! The release reuses the run's least-privilege identity instead of the chart's defaults:
//! `serviceAccount.create=false` + `serviceAccount.name=<the run's account>` and `rbac.create=false`
//! (the run already bound `conformance/rbac/agentk.yaml` to that account), so agentk in a pod acts
//! exactly as the in-process agentk does. Everything the chart creates is namespaced, so deleting
//! the run namespace removes the release. The user's `--set` values come last and win.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Why the chart could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum HelmError {
    #[error("no helm CLI on PATH ({0})")]
    Missing(std::io::Error),
    #[error("{command} failed ({status}): {stderr}")]
    Failed { command: String, status: String, stderr: String },
    #[error("helm task: {0}")]
    Task(String),
}

/// One agentk release.
#[derive(Debug, Clone)]
pub struct Release {
    pub name: String,
    pub namespace: String,
    pub chart: PathBuf,
    /// What agentk dials, e.g. `grpc://172.18.0.1:8150`.
    pub kas_address: String,
    pub token: String,
    pub service_account: String,
    /// `key=value`, as `helm --set`.
    pub sets: Vec<String>,
    /// Passed to `helm --wait --timeout`, e.g. `180s`.
    pub timeout: String,
}

impl Release {
    /// The `helm` arguments. The token goes in with `--set-string` so that no character of it is
    /// parsed as a list or a number.
    pub fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = ["upgrade", "--install", &self.name]
            .iter()
            .map(|s| (*s).to_owned())
            .chain([self.chart.display().to_string()])
            .collect();
        a.extend([
            "--namespace".into(),
            self.namespace.clone(),
            "--wait".into(),
            "--timeout".into(),
            self.timeout.clone(),
        ]);
        for (k, v) in [
            ("config.kasAddress", self.kas_address.as_str()),
            ("serviceAccount.create", "false"),
            ("serviceAccount.name", self.service_account.as_str()),
            ("rbac.create", "false"),
        ] {
            a.extend(["--set".into(), format!("{k}={v}")]);
        }
        a.extend(["--set-string".into(), format!("config.token={}", self.token)]);
        for s in &self.sets {
            a.extend(["--set".into(), s.clone()]);
        }
        a
    }

    /// `helm upgrade --install … --wait`: returns once agentk's pod is ready.
    pub async fn install(&self) -> Result<(), HelmError> {
        let args = self.args();
        tokio::task::spawn_blocking(move || run_helm(&args)).await.map_err(|e| HelmError::Task(e.to_string()))?
    }
}

fn run_helm(args: &[String]) -> Result<(), HelmError> {
    let out = Command::new("helm").args(args).output().map_err(HelmError::Missing)?;
    if out.status.success() {
        return Ok(());
    }
    Err(HelmError::Failed {
        command: shown(args),
        status: out.status.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    })
}

/// The command line as errors show it: never the token.
fn shown(args: &[String]) -> String {
    let shown: Vec<&str> =
        args.iter().map(|a| if a.starts_with("config.token=") { "config.token=<redacted>" } else { a }).collect();
    format!("helm {}", shown.join(" "))
}

/// `Ok(version)` when the helm CLI runs.
pub fn helm_available() -> Result<String, HelmError> {
    let out = Command::new("helm").args(["version", "--short"]).output().map_err(HelmError::Missing)?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The gateway of Docker network `network` (kind's is `kind`): the address at which pods in a kind
/// cluster reach a process on the host.
pub fn docker_network_gateway(network: &str) -> Option<String> {
    let out = Command::new("docker")
        .args(["network", "inspect", network, "--format", "{{range .IPAM.Config}}{{.Gateway}} {{end}}"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    // The first IPv4 gateway (kind networks are dual-stack).
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|g| g.parse::<std::net::Ipv4Addr>().is_ok())
        .map(str::to_owned)
}

/// The repository's chart.
pub fn default_chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/gitlab-agent")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_release_uses_the_runs_identity_and_user_values_win() {
        let r = Release {
            name: "kasim-agentk-1".into(),
            namespace: "kasim-x".into(),
            chart: "charts/gitlab-agent".into(),
            kas_address: "grpc://172.18.0.1:8150".into(),
            token: "glagent-abc,def".into(),
            service_account: "agentk".into(),
            sets: vec!["image.tag=release".into(), "rbac.create=true".into()],
            timeout: "180s".into(),
        };
        let a = r.args().join(" ");
        assert_eq!(
            a,
            "upgrade --install kasim-agentk-1 charts/gitlab-agent --namespace kasim-x --wait --timeout 180s \
             --set config.kasAddress=grpc://172.18.0.1:8150 --set serviceAccount.create=false \
             --set serviceAccount.name=agentk --set rbac.create=false --set-string config.token=glagent-abc,def \
             --set image.tag=release --set rbac.create=true"
        );
    }

    #[test]
    fn a_failure_never_shows_the_token() {
        let args: Vec<String> = ["upgrade", "--set-string", "config.token=secret", "--set", "image.tag=x"]
            .iter()
            .map(|s| (*s).into())
            .collect();
        assert_eq!(shown(&args), "helm upgrade --set-string config.token=<redacted> --set image.tag=x");
    }
}
