//! Credentials of a k8s-proxy client (upstream kubernetes_api/server/proxy.go).
//!
//! Exactly one `Authorization: Bearer <type>:<agent id>:<secret>` with type `ci` (CI job token) or
//! `pat` (personal access token with scope `k8s_proxy`); otherwise the `_gitlab_kas` cookie with the
//! agent id (header `Gitlab-Agent-Id` or query `gitlab-agent-id`) and a CSRF token (header
//! `X-Csrf-Token` or query `gitlab-csrf-token`). The Authorization header beats the cookie.

use std::collections::BTreeMap;

use http::HeaderMap;

use crate::tunnel::registry::AgentId;

/// Who the client claims to be.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    CiJob { agent_id: AgentId, job_token: String },
    Pat { agent_id: AgentId, token: String },
    Cookie { agent_id: AgentId, cookie: String, csrf_token: String },
}

impl std::fmt::Debug for Credentials {
    // Never print secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::CiJob { agent_id, .. } => write!(f, "CiJob {{ agent_id: {agent_id} }}"),
            Self::Pat { agent_id, .. } => write!(f, "Pat {{ agent_id: {agent_id} }}"),
            Self::Cookie { agent_id, .. } => write!(f, "Cookie {{ agent_id: {agent_id} }}"),
        }
    }
}

impl Credentials {
    pub fn agent_id(&self) -> AgentId {
        match self {
            Self::CiJob { agent_id, .. } | Self::Pat { agent_id, .. } | Self::Cookie { agent_id, .. } => *agent_id,
        }
    }
}

/// Why the client is unauthorized; `Display` is upstream's text without the
/// "GitLab Agent Server: Unauthorized: " prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("Authorization header: expecting a single header, got {0}")]
    MultipleHeaders(usize),
    #[error("Authorization header: expecting Bearer token")]
    NotBearer,
    #[error("Authorization header: invalid value")]
    InvalidValue,
    #[error("Authorization header: failed to parse: strconv.ParseInt: parsing {0:?}: {1}")]
    AgentId(String, &'static str),
    #[error("Authorization header: empty token")]
    EmptyToken,
    #[error("Authorization header: unknown token type")]
    UnknownType,
    #[error("{0}")]
    Cookie(String),
    #[error("no valid credentials provided")]
    None,
}

/// Parses an int64 as Go's strconv.ParseInt does, with its error words.
fn parse_agent_id(s: &str) -> Result<AgentId, AuthError> {
    s.parse::<i64>().map_err(|e| {
        let why = match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => "value out of range",
            _ => "invalid syntax",
        };
        AuthError::AgentId(s.to_owned(), why)
    })
}

/// Extracts credentials from request headers and decoded query parameters.
pub fn credentials(headers: &HeaderMap, query: &BTreeMap<String, Vec<String>>) -> Result<Credentials, AuthError> {
    let authz: Vec<_> = headers.get_all(http::header::AUTHORIZATION).iter().collect();
    if !authz.is_empty() {
        if authz.len() > 1 {
            return Err(AuthError::MultipleHeaders(authz.len()));
        }
        let value = authz[0].to_str().map_err(|_| AuthError::InvalidValue)?;
        let rest = value.strip_prefix("Bearer ").ok_or(AuthError::NotBearer)?;
        let mut parts = rest.splitn(3, ':');
        let (Some(kind), Some(id), Some(secret)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(AuthError::InvalidValue);
        };
        let agent_id = parse_agent_id(id)?;
        if secret.is_empty() {
            return Err(AuthError::EmptyToken);
        }
        return match kind {
            "ci" => Ok(Credentials::CiJob { agent_id, job_token: secret.to_owned() }),
            "pat" => Ok(Credentials::Pat { agent_id, token: secret.to_owned() }),
            _ => Err(AuthError::UnknownType),
        };
    }
    if let Some(cookie) = cookie(headers, "_gitlab_kas") {
        let first = |header: &str, param: &str| {
            headers
                .get(header)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .or_else(|| query.get(param).and_then(|v| v.first().cloned()))
        };
        let id = first("gitlab-agent-id", "gitlab-agent-id").ok_or_else(|| {
            AuthError::Cookie("agent id: missing Gitlab-Agent-Id header or gitlab-agent-id query parameter".into())
        })?;
        let agent_id = id.parse::<i64>().map_err(|_| AuthError::Cookie(format!("agent id: invalid value {id:?}")))?;
        let csrf_token = first("x-csrf-token", "gitlab-csrf-token").ok_or_else(|| {
            AuthError::Cookie("CSRF token: missing X-Csrf-Token header or gitlab-csrf-token query parameter".into())
        })?;
        return Ok(Credentials::Cookie { agent_id, cookie, csrf_token });
    }
    Err(AuthError::None)
}

/// The URL-unescaped value of cookie `name`.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| urlencoding::decode(v).map(|c| c.into_owned()).unwrap_or_else(|_| v.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        m
    }

    #[test]
    fn authorization_header_forms_and_exact_errors() {
        let q = BTreeMap::new();
        let ok = credentials(&h(&[("authorization", "Bearer ci:5:job-token")]), &q).unwrap();
        assert_eq!(ok, Credentials::CiJob { agent_id: 5, job_token: "job-token".into() });
        let ok = credentials(&h(&[("authorization", "Bearer pat:5:glpat-x:y")]), &q).unwrap();
        assert_eq!(ok, Credentials::Pat { agent_id: 5, token: "glpat-x:y".into() }, "the secret may contain ':'");
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("authorization", "Bearer ci:5:a"), ("authorization", "Bearer ci:5:b")],
                "Authorization header: expecting a single header, got 2",
            ),
            (&[("authorization", "Basic abc")], "Authorization header: expecting Bearer token"),
            (&[("authorization", "Bearer ci:5")], "Authorization header: invalid value"),
            (
                &[("authorization", "Bearer ci:x:tok")],
                "Authorization header: failed to parse: strconv.ParseInt: parsing \"x\": invalid syntax",
            ),
            (
                &[("authorization", "Bearer ci:99999999999999999999:tok")],
                "Authorization header: failed to parse: strconv.ParseInt: parsing \"99999999999999999999\": value out of range",
            ),
            (&[("authorization", "Bearer ci:5:")], "Authorization header: empty token"),
            (&[("authorization", "Bearer job:5:tok")], "Authorization header: unknown token type"),
            (&[], "no valid credentials provided"),
        ];
        for (headers, want) in cases {
            assert_eq!(credentials(&h(headers), &q).unwrap_err().to_string(), *want);
        }
    }

    #[test]
    fn cookie_with_agent_id_and_csrf_from_headers_or_query() {
        let mut q = BTreeMap::new();
        let c = credentials(
            &h(&[("cookie", "a=b; _gitlab_kas=s%2F1"), ("gitlab-agent-id", "3"), ("x-csrf-token", "t")]),
            &q,
        )
        .unwrap();
        assert_eq!(c, Credentials::Cookie { agent_id: 3, cookie: "s/1".into(), csrf_token: "t".into() });
        q.insert("gitlab-agent-id".into(), vec!["4".into()]);
        q.insert("gitlab-csrf-token".into(), vec!["u".into()]);
        let c = credentials(&h(&[("cookie", "_gitlab_kas=s")]), &q).unwrap();
        assert_eq!(c.agent_id(), 4);
        let only_cookie = credentials(&h(&[("cookie", "_gitlab_kas=s")]), &BTreeMap::new()).unwrap_err();
        assert!(only_cookie.to_string().contains("gitlab-agent-id"));
        let both =
            credentials(&h(&[("cookie", "_gitlab_kas=s"), ("authorization", "Bearer ci:1:x")]), &BTreeMap::new())
                .unwrap();
        assert!(matches!(both, Credentials::CiJob { .. }), "Authorization beats the cookie");
        assert!(!format!("{both:?}").contains('x'), "Debug never prints secrets");
    }
}
