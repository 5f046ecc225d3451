//! Scenario-supplied contents of the GitLab model and the clusters' API server models.
//!
//! Without fixtures a world has one group, one project and one agent per cluster, and API servers
//! that only know agentk's service account. With [`Fixtures`] the scenario decides what GitLab holds
//! (groups, projects, users, agents with their config files, CI jobs), which Kubernetes version the
//! API server models imitate and which objects they start with; the world then also serves kas's
//! Kubernetes API proxy and starts the CI client host ([`crate::client`]).

use std::fmt;
use std::sync::Arc;

use kasim_apiserver::KubeVersion;
use kasim_gitlab::{AgentId, GitLab};

/// The service account agentk authenticates as on every API server model.
pub const AGENTK_SERVICE_ACCOUNT: &str = "system:serviceaccount:gitlab-agent:agentk";

/// agentk's RBAC in every simulated cluster: the repository's least-privilege YAML
/// (`conformance/rbac/agentk.yaml`, the same one real clusters get), rendered for namespace
/// `gitlab-agent` and service account `agentk`: impersonation of users, groups, service accounts,
/// uids and exactly the `agent.gitlab.com/*` user extras kas sets. Scenarios' own fixtures only say
/// what CI jobs may do.
pub fn agentk_rbac() -> String {
    let rbac = include_str!("../../conformance/rbac/agentk.yaml")
        .replace("${NAMESPACE}", "gitlab-agent")
        .replace("${SERVICE_ACCOUNT}", "agentk");
    format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: gitlab-agent}}\n---\n{rbac}")
}

/// Populates the GitLab model; returns one agent id per topology agent, in order. Called once,
/// while the world is built, on a model whose `k8s_proxy_url` already points at `kas-0`.
pub type GitLabSetup = Arc<dyn Fn(&GitLab) -> Result<Vec<AgentId>, String> + Send + Sync>;

/// What a scenario puts into GitLab and the clusters.
#[derive(Clone)]
pub struct Fixtures {
    pub kube_version: KubeVersion,
    pub gitlab: GitLabSetup,
    /// Extra multi-document YAML per cluster index (missing = none), applied after [`agentk_rbac`].
    pub cluster_yaml: Vec<String>,
}

impl fmt::Debug for Fixtures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fixtures")
            .field("kube_version", &self.kube_version)
            .field("cluster_yaml", &self.cluster_yaml.len())
            .finish_non_exhaustive()
    }
}
