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

/// RBAC every cluster starts with: agentk's service account may impersonate users, groups, service
/// accounts, uids and the `agent.gitlab.com/*` extra keys — what `impersonate`, `ci_job` and
/// `ci_user` access need. A real installation grants the same through the agent's Helm chart
/// (`rbac.create: true`); scenarios get it for free so their own fixtures only say what CI jobs may do.
pub const AGENTK_RBAC: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: gitlab-agent}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: gitlab-agent-impersonate}
rules:
- apiGroups: [""]
  resources: [users, groups, serviceaccounts]
  verbs: [impersonate]
- apiGroups: [authentication.k8s.io]
  resources: [uids, userextras/agent.gitlab.com/id, userextras/agent.gitlab.com/config_project_id, userextras/agent.gitlab.com/project_id, userextras/agent.gitlab.com/ci_pipeline_id, userextras/agent.gitlab.com/ci_job_id, userextras/agent.gitlab.com/username, userextras/agent.gitlab.com/environment_slug, userextras/agent.gitlab.com/environment_tier, userextras/agent.gitlab.com/access_type]
  verbs: [impersonate]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: gitlab-agent-impersonate}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: gitlab-agent-impersonate}
subjects:
- {kind: ServiceAccount, name: agentk, namespace: gitlab-agent}
"#;

/// Populates the GitLab model; returns one agent id per topology agent, in order. Called once,
/// while the world is built, on a model whose `k8s_proxy_url` already points at `kas-0`.
pub type GitLabSetup = Arc<dyn Fn(&GitLab) -> Result<Vec<AgentId>, String> + Send + Sync>;

/// What a scenario puts into GitLab and the clusters.
#[derive(Clone)]
pub struct Fixtures {
    pub kube_version: KubeVersion,
    pub gitlab: GitLabSetup,
    /// Extra multi-document YAML per cluster index (missing = none), applied after [`AGENTK_RBAC`].
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
