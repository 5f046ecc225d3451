//! `user_access`: may a GitLab user reach the cluster through the k8s proxy
//! (`POST /api/v4/internal/kubernetes/authorize_proxy_user`).
//!
//! Order of checks (chosen; Rails' exact order is unconfirmed): credentials
//! first (401, so callers learn nothing about agents without valid
//! credentials), then the agent (404), then access (403).
//! Access: the agent config's `user_access` entries are resolved like
//! `ci_access` ones (first 500 of each kind, lower-cased paths, under the
//! config project's root group). The user must hold Developer or higher in an
//! authorized project or group (direct or inherited); those are listed by id,
//! each with a one-element `roles` list naming the effective role. A group
//! entry counts for users whose role in that group (own or inherited from an
//! ancestor) is Developer+; membership only in a subgroup does not count
//! (chosen; Rails' finder was not available to confirm).

use serde::Serialize;

use crate::ci_access::{AUTHORIZED_ENTITY_LIMIT, IdRef};
use crate::config_file::{Empty, UserAccessAs};
use crate::model::{AgentId, GitLab, Role};

/// How the user authenticated to kas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessType {
    /// `_gitlab_kas` cookie plus CSRF token.
    SessionCookie,
    /// PAT with scope `k8s_proxy`.
    PersonalAccessToken,
}

impl AccessType {
    /// Parses the wire value (`session_cookie` / `personal_access_token`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "session_cookie" => Some(Self::SessionCookie),
            "personal_access_token" => Some(Self::PersonalAccessToken),
            _ => None,
        }
    }
}

/// Refusals, each with its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserAccessError {
    /// Bad cookie/CSRF pair or PAT (HTTP 401).
    #[error("401 Unauthorized")]
    Unauthorized,
    /// No such agent (HTTP 404).
    #[error("404 Agent Not Found")]
    AgentNotFound,
    /// The user is not authorized for this agent (HTTP 403).
    #[error("403 Forbidden")]
    Forbidden,
}

/// `{id, roles}` of an authorized project or group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleGrant {
    /// Project or group id.
    pub id: i64,
    /// Effective role, e.g. `["maintainer"]`.
    pub roles: Vec<String>,
}

/// `access_as.user`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserGrant {
    /// Authorized projects the user may use, by id.
    pub projects: Vec<RoleGrant>,
    /// Authorized groups the user may use, by id.
    pub groups: Vec<RoleGrant>,
}

/// `access_as` of the response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyAccessAs {
    /// `{"agent":{}}`.
    Agent(Empty),
    /// `{"user":{"projects":[...],"groups":[...]}}`.
    User(UserGrant),
}

/// `agent` of the response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProxyAgent {
    /// Agent id.
    pub id: i64,
    /// Project holding the agent's config.
    pub config_project: IdRef,
}

/// `user` of the response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProxyUser {
    /// User id.
    pub id: i64,
    /// Username.
    pub username: String,
}

/// The Rails `authorize_proxy_user` JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthorizeProxyUserResponse {
    /// The agent.
    pub agent: ProxyAgent,
    /// The authenticated user.
    pub user: ProxyUser,
    /// Identity to use.
    pub access_as: ProxyAccessAs,
}

impl GitLab {
    /// Decides whether a user may use `agent` through the k8s proxy.
    pub fn authorize_proxy_user(
        &self,
        agent: AgentId,
        access_type: AccessType,
        access_key: &str,
        csrf_token: &str,
    ) -> Result<AuthorizeProxyUserResponse, UserAccessError> {
        let st = self.lock();
        let user_id = match access_type {
            AccessType::SessionCookie => match st.sessions.get(access_key) {
                Some(s) if !csrf_token.is_empty() && s.csrf_token == csrf_token => s.user,
                _ => return Err(UserAccessError::Unauthorized),
            },
            AccessType::PersonalAccessToken => match st.pats.get(access_key) {
                Some(p) if !p.revoked && p.scopes.iter().any(|s| s == "k8s_proxy") => p.user,
                _ => return Err(UserAccessError::Unauthorized),
            },
        };
        let user = st.user(user_id).map_err(|_| UserAccessError::Unauthorized)?;
        let a = st.agent(agent).map_err(|_| UserAccessError::AgentNotFound)?;
        // An unparsable config grants nothing, like a missing section.
        let ua = st.agent_config(agent).ok().and_then(|c| c.user_access).unwrap_or_default();
        let root = st.root_of_project(a.project).map_err(|_| UserAccessError::AgentNotFound)?;
        let grant = |role: Option<Role>, id: i64| {
            role.filter(|r| *r >= Role::Developer).map(|r| RoleGrant { id, roles: vec![r.name().to_owned()] })
        };
        let mut projects = std::collections::BTreeMap::new();
        for e in ua.projects.iter().take(AUTHORIZED_ENTITY_LIMIT) {
            let Some(p) = st.project_by_path(&e.id) else {
                continue;
            };
            if st.root_of_project(p).ok() != Some(root) {
                continue;
            }
            if let Some(g) = grant(st.project_role(p, user_id), p.0) {
                projects.insert(p, g);
            }
        }
        let mut groups = std::collections::BTreeMap::new();
        for e in ua.groups.iter().take(AUTHORIZED_ENTITY_LIMIT) {
            let Some(g) = st.group_by_path(&e.id) else {
                continue;
            };
            if st.root_of_group(g).ok() != Some(root) {
                continue;
            }
            if let Some(r) = grant(st.group_role(g, user_id), g.0) {
                groups.insert(g, r);
            }
        }
        if projects.is_empty() && groups.is_empty() {
            return Err(UserAccessError::Forbidden);
        }
        let access_as = match ua.access_as {
            Some(UserAccessAs::User) => ProxyAccessAs::User(UserGrant {
                projects: projects.into_values().collect(),
                groups: groups.into_values().collect(),
            }),
            Some(UserAccessAs::Agent) | None => ProxyAccessAs::Agent(Empty {}),
        };
        Ok(AuthorizeProxyUserResponse {
            agent: ProxyAgent { id: agent.0, config_project: IdRef { id: a.project.0 } },
            user: ProxyUser { id: user_id.0, username: user.username.clone() },
            access_as,
        })
    }
}
