//! GitLab's answers about who may use which agent: `GET /api/v4/job/allowed_agents` (CI jobs) and
//! `POST /api/v4/internal/kubernetes/authorize_proxy_user` (users). JSON is parsed ignoring unknown
//! fields, as kas does, then validated where kas's protos mark fields required.

use serde::Deserialize;

/// `GET /api/v4/job/allowed_agents`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AllowedAgentsForJob {
    #[serde(default)]
    pub allowed_agents: Vec<AllowedAgent>,
    pub job: IdRef,
    pub pipeline: IdRef,
    pub project: JobProject,
    pub user: JobUser,
    #[serde(default)]
    pub environment: Option<Environment>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct IdRef {
    pub id: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct JobProject {
    pub id: i64,
    #[serde(default)]
    pub groups: Vec<IdRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct JobUser {
    pub id: i64,
    pub username: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Environment {
    pub slug: String,
    pub tier: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AllowedAgent {
    pub id: i64,
    pub config_project: IdRef,
    #[serde(default)]
    pub configuration: Configuration,
}

/// The ci_access entry that authorized the agent (kas reads `default_namespace` and `access_as`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Configuration {
    #[serde(default)]
    pub default_namespace: Option<String>,
    #[serde(default)]
    pub access_as: Option<AccessAs>,
}

/// `access_as` of a ci_access entry: exactly one key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessAs {
    Agent(Empty),
    Impersonate(Impersonate),
    CiJob(Empty),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Empty {}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Impersonate {
    pub username: String,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub uid: String,
    #[serde(default)]
    pub extra: Vec<ExtraKeyVal>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ExtraKeyVal {
    pub key: String,
    #[serde(default)]
    pub val: Vec<String>,
}

/// `POST /api/v4/internal/kubernetes/authorize_proxy_user`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AuthorizeProxyUser {
    pub agent: ProxyAgent,
    pub user: JobUser,
    pub access_as: UserAccessAs,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ProxyAgent {
    pub id: i64,
    pub config_project: IdRef,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserAccessAs {
    Agent(Empty),
    User(UserGrants),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct UserGrants {
    #[serde(default)]
    pub projects: Vec<RoleGrant>,
    #[serde(default)]
    pub groups: Vec<RoleGrant>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RoleGrant {
    pub id: i64,
    #[serde(default)]
    pub roles: Vec<String>,
}

/// How the user authenticated to the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessType {
    SessionCookie,
    PersonalAccessToken,
}

impl AccessType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SessionCookie => "session_cookie",
            Self::PersonalAccessToken => "personal_access_token",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rails_json_ignoring_unknown_fields() {
        let j = r#"{"allowed_agents":[{"id":1,"config_project":{"id":100},"configuration":{"default_namespace":"deploy","access_as":{"ci_job":{}},"environments":["prod"]}},{"id":2,"config_project":{"id":150},"configuration":{}}],"job":{"id":9},"pipeline":{"id":8},"project":{"id":150,"groups":[{"id":23},{"id":25}]},"user":{"id":7,"username":"alice","roles_in_project":["maintainer"]},"environment":{"tier":"production","slug":"prod"}}"#;
        let a: AllowedAgentsForJob = serde_json::from_str(j).unwrap();
        assert_eq!(a.allowed_agents[0].configuration.access_as, Some(AccessAs::CiJob(Empty {})));
        assert_eq!(a.allowed_agents[1].configuration, Configuration::default());
        assert_eq!(a.environment, Some(Environment { slug: "prod".into(), tier: "production".into() }));
        assert!(
            serde_json::from_str::<AllowedAgentsForJob>(r#"{"allowed_agents":[]}"#).is_err(),
            "job etc. are required"
        );
        let u: AuthorizeProxyUser = serde_json::from_str(r#"{"agent":{"id":1,"config_project":{"id":2}},"user":{"id":3,"username":"bob"},"access_as":{"user":{"projects":[{"id":150,"roles":["developer"]}],"groups":[]}}}"#).unwrap();
        assert!(matches!(u.access_as, UserAccessAs::User(g) if g.projects[0].roles == ["developer"]));
    }
}
