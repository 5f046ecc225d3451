//! Authenticating agentk's `authorization: Bearer <agent token>` through GitLab, with kas's cache:
//! answers are kept 5 minutes, errors 1 minute (upstream agent_rpc_api.go). Keys are SHA-256 digests,
//! so the cache never holds a token.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::gitlab::{AgentInfo, GitLabApi, GitLabError};

pub const CACHE_TTL: Duration = Duration::from_secs(5 * 60);
pub const CACHE_ERROR_TTL: Duration = Duration::from_secs(60);

type Entry = (Instant, Result<AgentInfo, GitLabError>);

/// Resolves agent tokens to agents.
#[derive(Debug, Clone)]
pub struct AgentAuth {
    gitlab: Arc<dyn GitLabApi>,
    cache: Arc<Mutex<BTreeMap<[u8; 32], Entry>>>,
}

/// Extracts the token from `authorization: Bearer <token>` metadata.
pub fn bearer_token(meta: &tonic::metadata::MetadataMap) -> Result<String, tonic::Status> {
    let mut values = meta.get_all("authorization").iter();
    let (Some(v), None) = (values.next(), values.next()) else {
        return Err(tonic::Status::unauthenticated("expecting a single authorization metadata entry"));
    };
    let v = v.to_str().map_err(|_| tonic::Status::unauthenticated("invalid authorization metadata"))?;
    let token = v
        .strip_prefix("Bearer ")
        .ok_or_else(|| tonic::Status::unauthenticated("authorization: expecting Bearer token"))?;
    if token.is_empty() {
        return Err(tonic::Status::unauthenticated("authorization: empty token"));
    }
    Ok(token.to_owned())
}

impl AgentAuth {
    pub fn new(gitlab: Arc<dyn GitLabApi>) -> Self {
        Self { gitlab, cache: Arc::default() }
    }

    pub async fn agent_info(&self, token: &str) -> Result<AgentInfo, GitLabError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = Instant::now();
        if let Some((expires, r)) = self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key)
            && *expires > now
        {
            return r.clone();
        }
        let r = self.gitlab.agent_info(token).await;
        let ttl = if r.is_ok() { CACHE_TTL } else { CACHE_ERROR_TTL };
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.retain(|_, (exp, _)| *exp > now);
        cache.insert(key, (Instant::now() + ttl, r.clone()));
        r
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::transport::BoxFuture;

    #[derive(Debug, Default)]
    struct Counting(AtomicUsize);

    impl GitLabApi for Counting {
        fn agent_info(&self, token: &str) -> BoxFuture<'_, Result<AgentInfo, GitLabError>> {
            self.0.fetch_add(1, Ordering::SeqCst);
            let r = if token == "good" {
                Ok(AgentInfo { id: 1, project_id: 2, name: "a".into(), default_branch: "main".into() })
            } else {
                Err(GitLabError::Unauthorized)
            };
            Box::pin(async move { r })
        }

        fn allowed_agents_for_job(
            &self,
            _: &str,
        ) -> BoxFuture<'_, Result<crate::kas::allowed_agents::AllowedAgentsForJob, GitLabError>> {
            Box::pin(async { Err(GitLabError::Unauthorized) })
        }

        fn authorize_proxy_user(
            &self,
            _: i64,
            _: crate::kas::allowed_agents::AccessType,
            _: &str,
            _: &str,
        ) -> BoxFuture<'_, Result<crate::kas::allowed_agents::AuthorizeProxyUser, GitLabError>> {
            Box::pin(async { Err(GitLabError::Unauthorized) })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn answers_are_cached_5m_and_errors_1m() {
        let g = Arc::new(Counting::default());
        let auth = AgentAuth::new(g.clone());
        auth.agent_info("good").await.unwrap();
        auth.agent_info("bad").await.unwrap_err();
        tokio::time::sleep(Duration::from_secs(59)).await;
        auth.agent_info("good").await.unwrap();
        auth.agent_info("bad").await.unwrap_err();
        assert_eq!(g.0.load(Ordering::SeqCst), 2);
        tokio::time::sleep(Duration::from_secs(2)).await;
        auth.agent_info("bad").await.unwrap_err();
        assert_eq!(g.0.load(Ordering::SeqCst), 3, "errors expire after 1 minute");
        tokio::time::sleep(CACHE_TTL).await;
        auth.agent_info("good").await.unwrap();
        assert_eq!(g.0.load(Ordering::SeqCst), 4, "answers expire after 5 minutes");
    }

    #[test]
    fn bearer_parsing() {
        let mut m = tonic::metadata::MetadataMap::new();
        assert!(bearer_token(&m).is_err());
        m.insert("authorization", "Basic x".parse().unwrap());
        assert!(bearer_token(&m).unwrap_err().message().contains("Bearer"));
        m.insert("authorization", "Bearer glagent-abc".parse().unwrap());
        assert_eq!(bearer_token(&m).unwrap(), "glagent-abc");
        m.append("authorization", "Bearer x".parse().unwrap());
        assert!(bearer_token(&m).unwrap_err().message().contains("single"));
    }
}
