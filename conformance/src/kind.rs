//! A throwaway kind cluster per Kubernetes version, from `kind-configs/<version>.yaml` (node images
//! pinned by digest, so a run is reproducible). Created with the `kind` CLI and deleted afterwards
//! unless `keep` is set (for debugging a failed run).

use std::path::{Path, PathBuf};
use std::process::Command;

use kube::config::Kubeconfig;

use crate::access::ClusterAccess;
use crate::backend::{BackendError, BoxFuture, ClusterBackend};

/// The repository's kind configurations, one per supported Kubernetes version.
pub fn configs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../kind-configs")
}

/// `Ok` when the `kind` CLI runs; else the one-line skip reason.
pub fn kind_available() -> Result<String, BackendError> {
    match Command::new("kind").arg("version").output() {
        Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).trim().to_owned()),
        Ok(o) => Err(BackendError::Unavailable(format!(
            "kind version failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ))),
        Err(e) => Err(BackendError::Unavailable(format!("no kind CLI on PATH ({e})"))),
    }
}

/// A kind cluster this process created.
#[derive(Debug)]
pub struct KindCluster {
    name: String,
    version: String,
    keep: bool,
    access: ClusterAccess,
    deleted: bool,
}

/// Runs a command, naming it and its stderr on failure.
fn run(cmd: &mut Command) -> Result<String, BackendError> {
    let command = format!("{cmd:?}");
    let out = cmd.output().map_err(|source| BackendError::Io { what: command.clone(), source })?;
    if !out.status.success() {
        return Err(BackendError::Command {
            command,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl KindCluster {
    /// Creates cluster `name` for Kubernetes `version` (e.g. `1.32`, matching `kind-configs/1.32.yaml`).
    /// Blocking CLI calls run on the blocking pool.
    pub async fn create(version: &str, name: &str, keep: bool) -> Result<Self, BackendError> {
        kind_available()?;
        let config = configs_dir().join(format!("{version}.yaml"));
        if !config.exists() {
            return Err(BackendError::Unavailable(format!(
                "no kind configuration for Kubernetes {version} ({})",
                config.display()
            )));
        }
        let (name, version) = (name.to_owned(), version.to_owned());
        let n = name.clone();
        let yaml = tokio::task::spawn_blocking(move || -> Result<String, BackendError> {
            run(Command::new("kind")
                .args(["create", "cluster", "--name", &n, "--wait", "120s", "--config"])
                .arg(&config))?;
            run(Command::new("kind").args(["get", "kubeconfig", "--name", &n]))
        })
        .await
        .map_err(|e| BackendError::Unavailable(format!("kind create task: {e}")))??;
        let kubeconfig = Kubeconfig::from_yaml(&yaml).map_err(crate::access::AccessError::from)?;
        Ok(Self { name, version, keep, access: ClusterAccess { kubeconfig, context: None }, deleted: false })
    }

    /// Loads a locally built image into the nodes (no registry needed).
    pub fn load_image(&self, image: &str) -> Result<(), BackendError> {
        run(Command::new("kind").args(["load", "docker-image", image, "--name", &self.name])).map(|_| ())
    }

    fn delete(&mut self) -> Result<(), BackendError> {
        if self.deleted || self.keep {
            return Ok(());
        }
        self.deleted = true;
        run(Command::new("kind").args(["delete", "cluster", "--name", &self.name])).map(|_| ())
    }
}

impl ClusterBackend for KindCluster {
    fn describe(&self) -> String {
        format!("kind cluster {} (Kubernetes {}{})", self.name, self.version, if self.keep { ", kept" } else { "" })
    }

    fn access(&self) -> &ClusterAccess {
        &self.access
    }

    fn teardown(mut self: Box<Self>) -> BoxFuture<'static, Result<(), BackendError>> {
        Box::pin(async move {
            tokio::task::spawn_blocking(move || self.delete())
                .await
                .map_err(|e| BackendError::Unavailable(format!("kind delete task: {e}")))?
        })
    }
}

/// A cluster is never leaked because a test panicked before `teardown`.
impl Drop for KindCluster {
    fn drop(&mut self) {
        if let Err(e) = self.delete() {
            eprintln!("kasim-conformance: {e}");
        }
    }
}
