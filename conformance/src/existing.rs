//! A cluster someone else owns, found through `KUBECONFIG` as kubectl finds it. Nothing is created
//! or deleted at the cluster level: every run stays in its own namespace.

use kube::config::Kubeconfig;

use crate::access::ClusterAccess;
use crate::backend::{BackendError, BoxFuture, ClusterBackend};
use crate::target;

/// The cluster `KUBECONFIG` (or `~/.kube/config`) points at.
#[derive(Debug)]
pub struct ExistingCluster {
    access: ClusterAccess,
    source: String,
}

impl ExistingCluster {
    /// Discovers the kubeconfig like kubectl; `Unavailable` (the one-line skip reason) when there is
    /// none. `context`: `None` is the kubeconfig's current context.
    pub fn from_env(context: Option<String>) -> Result<Self, BackendError> {
        let env = std::env::var("KUBECONFIG").ok();
        let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
        let t =
            target::discover(env.as_deref(), home.as_deref()).map_err(|e| BackendError::Unavailable(e.to_string()))?;
        Self::from_file(&t.kubeconfig, context)
    }

    /// A specific kubeconfig file.
    pub fn from_file(path: &std::path::Path, context: Option<String>) -> Result<Self, BackendError> {
        let kubeconfig = Kubeconfig::read_from(path)
            .map_err(|e| BackendError::Unavailable(format!("no cluster: {}: {e}", path.display())))?;
        if let Some(c) = &context
            && !kubeconfig.contexts.iter().any(|n| &n.name == c)
        {
            return Err(BackendError::Unavailable(format!("no cluster: {} has no context {c:?}", path.display())));
        }
        Ok(Self { access: ClusterAccess { kubeconfig, context }, source: path.display().to_string() })
    }

    /// An in-memory kubeconfig (e.g. one pointing at the API server model on loopback).
    pub fn from_kubeconfig(kubeconfig: Kubeconfig, context: Option<String>, source: &str) -> Self {
        Self { access: ClusterAccess { kubeconfig, context }, source: source.to_owned() }
    }
}

impl ClusterBackend for ExistingCluster {
    fn describe(&self) -> String {
        let ctx = self.access.context.clone().or_else(|| self.access.kubeconfig.current_context.clone());
        format!("existing cluster from {} (context {})", self.source, ctx.as_deref().unwrap_or("<none>"))
    }

    fn access(&self) -> &ClusterAccess {
        &self.access
    }

    fn teardown(self: Box<Self>) -> BoxFuture<'static, Result<(), BackendError>> {
        Box::pin(async { Ok(()) })
    }
}
