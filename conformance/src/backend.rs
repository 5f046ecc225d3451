//! The seam between "where does the cluster come from" and "what do we run on it".

use std::future::Future;
use std::pin::Pin;

use crate::access::ClusterAccess;

/// A boxed future, so that backends can be used as `Box<dyn ClusterBackend>`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A cluster a scenario can run on. Backends are created by their own async constructors
/// ([`crate::ExistingCluster::from_env`], [`crate::KindCluster::create`], [`crate::K3sCluster::start`]);
/// the trait is what the runner needs afterwards.
pub trait ClusterBackend: Send + Sync {
    /// One line for logs and reports, e.g. `kind cluster kasim-1-32 (Kubernetes 1.32)`.
    fn describe(&self) -> String;
    /// Admin access; the run creates its own least-privilege identity from it.
    fn access(&self) -> &ClusterAccess;
    /// Releases what the backend created (nothing for an existing cluster). Must be called; the
    /// backends also release on drop where that is possible without a runtime.
    fn teardown(self: Box<Self>) -> BoxFuture<'static, Result<(), BackendError>>;
}

/// Why a backend could not give us a cluster. `Unavailable` is a reason to skip, not to fail.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("{0}")]
    Unavailable(String),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("{command} failed ({status}): {stderr}")]
    Command { command: String, status: String, stderr: String },
    #[error("{0}")]
    Access(#[from] crate::access::AccessError),
    #[error("k3s container: {0}")]
    Container(String),
}
