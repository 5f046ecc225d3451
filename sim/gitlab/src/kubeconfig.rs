//! The kubeconfig a CI job gets in `$KUBECONFIG` (Rails
//! `Ci::GenerateKubeconfigService` + `Gitlab::Kubernetes::Kubeconfig::Template`).
//!
//! One cluster `gitlab` pointing at the k8s-proxy URL; per allowed agent (in
//! `allowed_agents` order) a user `agent:<id>` with token
//! `ci:<id>:<job token>` and a context `<agent project full path>:<agent name>`
//! with `namespace` = `default_namespace` when set. No `current-context`:
//! jobs pick one with `kubectl config use-context`. The cluster entry is
//! written even when no agent is allowed.

use serde::Serialize;

use crate::ci_access::CiAccessError;
use crate::model::{AgentId, GitLab};

/// Why no kubeconfig could be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KubeconfigError {
    /// The job token did not resolve, or authorization failed.
    #[error(transparent)]
    CiAccess(#[from] CiAccessError),
    /// YAML serialization failed (should not happen for these types).
    #[error("cannot serialize kubeconfig: {0}")]
    Yaml(String),
}

#[derive(Serialize)]
struct Kubeconfig<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    clusters: Vec<Named<ClusterSpec<'a>>>,
    users: Vec<Named<UserSpec>>,
    contexts: Vec<Named<ContextSpec>>,
}

#[derive(Serialize)]
struct Named<T> {
    name: String,
    #[serde(flatten)]
    spec: T,
}

#[derive(Serialize)]
struct ClusterSpec<'a> {
    cluster: Server<'a>,
}

#[derive(Serialize)]
struct Server<'a> {
    server: &'a str,
}

#[derive(Serialize)]
struct UserSpec {
    user: Token,
}

#[derive(Serialize)]
struct Token {
    token: String,
}

#[derive(Serialize)]
struct ContextSpec {
    context: Context,
}

#[derive(Serialize)]
struct Context {
    cluster: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    user: String,
}

/// One agent as it appears in a kubeconfig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeconfigAgent {
    /// Agent id.
    pub id: AgentId,
    /// `<agent project full path>:<agent name>`.
    pub context_name: String,
    /// `default_namespace` of the winning entry, if non-empty.
    pub namespace: Option<String>,
}

/// Renders the kubeconfig for `agents` as YAML.
pub fn render_kubeconfig(
    k8s_proxy_url: &str,
    job_token: &str,
    agents: &[KubeconfigAgent],
) -> Result<String, KubeconfigError> {
    let cfg = Kubeconfig {
        api_version: "v1",
        kind: "Config",
        clusters: vec![Named {
            name: "gitlab".to_owned(),
            spec: ClusterSpec { cluster: Server { server: k8s_proxy_url } },
        }],
        users: agents
            .iter()
            .map(|a| Named {
                name: format!("agent:{}", a.id),
                spec: UserSpec { user: Token { token: format!("ci:{}:{job_token}", a.id) } },
            })
            .collect(),
        contexts: agents
            .iter()
            .map(|a| Named {
                name: a.context_name.clone(),
                spec: ContextSpec {
                    context: Context {
                        cluster: "gitlab",
                        namespace: a.namespace.clone(),
                        user: format!("agent:{}", a.id),
                    },
                },
            })
            .collect(),
    };
    serde_yaml_ng::to_string(&cfg).map_err(|e| KubeconfigError::Yaml(e.to_string()))
}

impl GitLab {
    /// The kubeconfig a running job with `job_token` would get.
    pub fn ci_kubeconfig(&self, job_token: &str) -> Result<String, KubeconfigError> {
        let agents = {
            let st = self.lock();
            let allowed = st.allowed_agents(job_token)?;
            let mut agents = Vec::with_capacity(allowed.allowed_agents.len());
            for a in allowed.allowed_agents {
                let id = AgentId(a.id);
                let agent = st.agent(id).map_err(CiAccessError::from)?;
                let path = st.project_full_path(agent.project).map_err(CiAccessError::from)?;
                let ns = a.configuration.default_namespace;
                agents.push(KubeconfigAgent {
                    id,
                    context_name: format!("{path}:{}", agent.name),
                    namespace: (!ns.is_empty()).then_some(ns),
                });
            }
            agents
        };
        render_kubeconfig(&self.settings().k8s_proxy_url, job_token, &agents)
    }
}
