//! `GET /api/v4/internal/kubernetes/agent_info`: what kas learns about an
//! agent from its token. Gitaly parts are fixed but plausible, since kas only
//! forwards them to Gitaly, which this simulator does not model.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::model::{GitLab, ModelError};

/// `gitaly_info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GitalyInfo {
    /// Gitaly address.
    pub address: String,
    /// Gitaly token.
    pub token: String,
    /// Feature flags forwarded to Gitaly.
    pub features: std::collections::BTreeMap<String, String>,
}

/// `gitaly_repository`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GitalyRepository {
    /// Storage shard.
    pub storage_name: String,
    /// Hashed-storage path, derived from the project id like Rails does.
    pub relative_path: String,
    /// `project-<id>`.
    pub gl_repository: String,
    /// Project full path.
    pub gl_project_path: String,
}

/// The `agent_info` JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentInfo {
    /// Project holding the agent (and its config).
    pub project_id: i64,
    /// Agent id.
    pub agent_id: i64,
    /// Agent name.
    pub agent_name: String,
    /// Where Gitaly is.
    pub gitaly_info: GitalyInfo,
    /// The config project's repository.
    pub gitaly_repository: GitalyRepository,
    /// Branch kas reads the config from.
    pub default_branch: String,
}

impl GitLab {
    /// `agent_info` for an **active** agent token; revoked or unknown tokens
    /// give [`ModelError::UnknownToken`].
    pub fn agent_info(&self, agent_token: &str) -> Result<AgentInfo, ModelError> {
        let st = self.lock();
        let agent_id = st.active_agent_token(agent_token)?;
        let agent = st.agent(agent_id)?;
        let project = st.project(agent.project)?;
        let hash: String =
            Sha256::digest(agent.project.0.to_string().as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
        Ok(AgentInfo {
            project_id: agent.project.0,
            agent_id: agent_id.0,
            agent_name: agent.name.clone(),
            gitaly_info: GitalyInfo {
                address: "unix:/home/git/gitlab/tmp/sockets/private/gitaly.socket".to_owned(),
                token: String::new(),
                features: Default::default(),
            },
            gitaly_repository: GitalyRepository {
                storage_name: "default".to_owned(),
                relative_path: format!("@hashed/{}/{}/{hash}.git", &hash[0..2], &hash[2..4]),
                gl_repository: format!("project-{}", agent.project.0),
                gl_project_path: st.project_full_path(agent.project)?,
            },
            default_branch: project.default_branch.clone(),
        })
    }
}
