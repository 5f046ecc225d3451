//! kas's client of GitLab's internal API.
//!
//! [`GitLabApi`] is the seam: [`HttpGitLab`] speaks to a real GitLab (or kasim's stand-in served over
//! HTTP), [`StaticGitLab`] answers from memory for tests that need no GitLab at all.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use serde::Deserialize;

use super::allowed_agents::{AccessType, AllowedAgentsForJob, AuthorizeProxyUser};
use crate::clock::SharedClock;
use crate::http_client;
use crate::transport::{BoxFuture, Dialer};
use crate::tunnel::registry::AgentId;

/// What `GET /api/v4/internal/kubernetes/agent_info` says about an agent token.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AgentInfo {
    #[serde(rename = "agent_id")]
    pub id: AgentId,
    pub project_id: i64,
    #[serde(rename = "agent_name")]
    pub name: String,
    #[serde(default)]
    pub default_branch: String,
}

/// GitLab's answer, mapped as kas maps it (401/403/404/other).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GitLabError {
    #[error("GitLab: unauthorized")]
    Unauthorized,
    #[error("GitLab: forbidden")]
    Forbidden,
    #[error("GitLab: not found")]
    NotFound,
    #[error("GitLab: {0}")]
    Unavailable(String),
}

impl GitLabError {
    /// kas's mapping for agent RPCs: 403/401/404/other → PermissionDenied/Unauthenticated/NotFound/Unavailable.
    pub fn to_status(&self) -> tonic::Status {
        match self {
            Self::Unauthorized => tonic::Status::unauthenticated("unauthenticated"),
            Self::Forbidden => tonic::Status::permission_denied("forbidden"),
            Self::NotFound => tonic::Status::not_found("agent not found"),
            Self::Unavailable(m) => tonic::Status::unavailable(format!("GitLab unavailable: {m}")),
        }
    }
}

/// The GitLab API kas needs.
pub trait GitLabApi: Send + Sync + std::fmt::Debug + 'static {
    fn agent_info(&self, agent_token: &str) -> BoxFuture<'_, Result<AgentInfo, GitLabError>>;

    /// `GET /api/v4/job/allowed_agents` with the job token.
    fn allowed_agents_for_job(&self, job_token: &str) -> BoxFuture<'_, Result<AllowedAgentsForJob, GitLabError>>;

    /// `POST /api/v4/internal/kubernetes/authorize_proxy_user`.
    fn authorize_proxy_user(
        &self,
        agent_id: AgentId,
        access_type: AccessType,
        access_key: &str,
        csrf_token: &str,
    ) -> BoxFuture<'_, Result<AuthorizeProxyUser, GitLabError>>;
}

/// Answers from fixed tables (tests that need no GitLab model). Unknown tokens are unauthorized.
#[derive(Debug, Clone, Default)]
pub struct StaticGitLab {
    agents: Arc<BTreeMap<String, AgentInfo>>,
    jobs: Arc<BTreeMap<String, AllowedAgentsForJob>>,
}

impl StaticGitLab {
    pub fn new(agents: impl IntoIterator<Item = (String, AgentInfo)>) -> Self {
        Self { agents: Arc::new(agents.into_iter().collect()), jobs: Arc::default() }
    }

    /// Adds job tokens and GitLab's allowed_agents answer for each.
    pub fn with_jobs(mut self, jobs: impl IntoIterator<Item = (String, AllowedAgentsForJob)>) -> Self {
        self.jobs = Arc::new(jobs.into_iter().collect());
        self
    }
}

impl GitLabApi for StaticGitLab {
    fn agent_info(&self, agent_token: &str) -> BoxFuture<'_, Result<AgentInfo, GitLabError>> {
        let r = self.agents.get(agent_token).cloned().ok_or(GitLabError::Unauthorized);
        Box::pin(async move { r })
    }

    fn allowed_agents_for_job(&self, job_token: &str) -> BoxFuture<'_, Result<AllowedAgentsForJob, GitLabError>> {
        let r = self.jobs.get(job_token).cloned().ok_or(GitLabError::Unauthorized);
        Box::pin(async move { r })
    }

    fn authorize_proxy_user(
        &self,
        _: AgentId,
        _: AccessType,
        _: &str,
        _: &str,
    ) -> BoxFuture<'_, Result<AuthorizeProxyUser, GitLabError>> {
        Box::pin(async { Err(GitLabError::Unauthorized) })
    }
}

/// Speaks to GitLab over HTTP, signing each request with the shared kas secret.
#[derive(Debug, Clone)]
pub struct HttpGitLab {
    dialer_authority: String,
    dialer: Dialer,
    secret: Arc<Vec<u8>>,
    clock: SharedClock,
}

impl HttpGitLab {
    /// `authority` is `host:port` of GitLab; `dialer` may be TLS.
    pub fn new(dialer: Dialer, authority: &str, secret: Vec<u8>, clock: SharedClock) -> Self {
        Self { dialer_authority: authority.to_owned(), dialer, secret: Arc::new(secret), clock }
    }
}

impl HttpGitLab {
    /// Sends a request to GitLab (with the kas JWT unless `jwt` is false) and maps the status as kas
    /// does: 401/403/404 pass through, everything else is "unavailable".
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        req: http::request::Builder,
        body: Bytes,
        jwt: bool,
    ) -> Result<T, GitLabError> {
        let mut req = req.header(http::header::HOST, &self.dialer_authority);
        if jwt {
            req = req.header(
                "Gitlab-Kas-Api-Request",
                crate::jwt::sign_kas_request(&self.secret, self.clock.unix_seconds()),
            );
        }
        let req = req.body(Full::new(body)).map_err(|e| GitLabError::Unavailable(e.to_string()))?;
        let path = req.uri().path().to_owned();
        let resp = http_client::send(&self.dialer, &self.dialer_authority, req)
            .await
            .map_err(|e| GitLabError::Unavailable(e.to_string()))?;
        match resp.status.as_u16() {
            200 => serde_json::from_slice(&resp.body)
                .map_err(|e| GitLabError::Unavailable(format!("{path}: invalid JSON: {e}"))),
            401 => Err(GitLabError::Unauthorized),
            403 => Err(GitLabError::Forbidden),
            404 => Err(GitLabError::NotFound),
            s => Err(GitLabError::Unavailable(format!("{path}: HTTP {s}"))),
        }
    }
}

impl GitLabApi for HttpGitLab {
    fn agent_info(&self, agent_token: &str) -> BoxFuture<'_, Result<AgentInfo, GitLabError>> {
        let req = http::Request::get("/api/v4/internal/kubernetes/agent_info")
            .header(http::header::AUTHORIZATION, format!("Bearer {agent_token}"));
        Box::pin(self.call(req, Bytes::new(), true))
    }

    fn allowed_agents_for_job(&self, job_token: &str) -> BoxFuture<'_, Result<AllowedAgentsForJob, GitLabError>> {
        let req = http::Request::get("/api/v4/job/allowed_agents").header("Job-Token", job_token);
        Box::pin(self.call(req, Bytes::new(), false))
    }

    fn authorize_proxy_user(
        &self,
        agent_id: AgentId,
        access_type: AccessType,
        access_key: &str,
        csrf_token: &str,
    ) -> BoxFuture<'_, Result<AuthorizeProxyUser, GitLabError>> {
        let body = serde_json::json!({
            "agent_id": agent_id,
            "access_type": access_type.as_str(),
            "access_key": access_key,
            "csrf_token": csrf_token,
        });
        let req = http::Request::post("/api/v4/internal/kubernetes/authorize_proxy_user")
            .header(http::header::CONTENT_TYPE, "application/json");
        Box::pin(self.call(req, Bytes::from(body.to_string()), true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_info_ignores_unknown_fields() {
        let j = r#"{"project_id":150,"agent_id":7,"agent_name":"prod","gitaly_info":{"address":"x"},"default_branch":"main"}"#;
        let a: AgentInfo = serde_json::from_str(j).unwrap();
        assert_eq!(a, AgentInfo { id: 7, project_id: 150, name: "prod".into(), default_branch: "main".into() });
    }

    #[test]
    fn status_mapping() {
        assert_eq!(GitLabError::Unauthorized.to_status().code(), tonic::Code::Unauthenticated);
        assert_eq!(GitLabError::Forbidden.to_status().code(), tonic::Code::PermissionDenied);
        assert_eq!(GitLabError::NotFound.to_status().code(), tonic::Code::NotFound);
        assert_eq!(GitLabError::Unavailable("x".into()).to_status().code(), tonic::Code::Unavailable);
    }
}
