//! How to reach a cluster: a kubeconfig and a context. Every backend ends up here, so the rest of
//! the crate cannot tell kind, k3s, an existing cluster or the API server model apart.

use kube::config::{KubeConfigOptions, Kubeconfig};

/// Admin access to a cluster.
#[derive(Debug, Clone)]
pub struct ClusterAccess {
    pub kubeconfig: Kubeconfig,
    /// `None`: the kubeconfig's current context.
    pub context: Option<String>,
}

/// Why a kubeconfig could not be turned into a client.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    #[error("kube client: {0}")]
    Client(#[from] kube::Error),
}

impl ClusterAccess {
    /// The client configuration for this access.
    pub async fn config(&self) -> Result<kube::Config, AccessError> {
        let opts = KubeConfigOptions { context: self.context.clone(), ..Default::default() };
        Ok(kube::Config::from_custom_kubeconfig(self.kubeconfig.clone(), &opts).await?)
    }

    /// A client; each call makes a new one, bound to the calling runtime.
    pub async fn client(&self) -> Result<kube::Client, AccessError> {
        Ok(kube::Client::try_from(self.config().await?)?)
    }
}
