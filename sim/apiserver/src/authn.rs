//! Bearer-token authentication.
//!
//! ## Differences from a real API server
//! Static bearer tokens (like `--token-auth-file`) and the opaque tokens the
//! model's TokenRequest API issues (see `token_request`); there are no client
//! certificates, signed service-account JWTs or OIDC. Anonymous
//! requests are rejected with 401, as with `--anonymous-auth=false`, so a
//! missing token never becomes `system:anonymous`.

use std::collections::BTreeMap;

use http::HeaderMap;
use serde::{Deserialize, Serialize};

/// Group every authenticated user is a member of.
pub const ALL_AUTHENTICATED: &str = "system:authenticated";
/// Group of unauthenticated (anonymous) users.
pub const ALL_UNAUTHENTICATED: &str = "system:unauthenticated";
/// Name of the anonymous user.
pub const ANONYMOUS: &str = "system:anonymous";

/// A user as the API server sees it (`user.Info` / `authentication.k8s.io/v1 UserInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// The user name, e.g. `system:serviceaccount:ns:name`.
    #[serde(default)]
    pub username: String,
    /// The user's UID; empty when unknown.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// Groups, in the order the server computed them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Extra attributes; sorted by key so output is deterministic.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

/// Why a request could not be authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AuthnError {
    #[error("no bearer token")]
    Missing,
    #[error("unknown bearer token")]
    Unknown,
}

/// Looks up the bearer token among the static ones, then asks `issued` (tokens
/// from the TokenRequest API); the result has `system:authenticated` appended
/// as the real authenticator union does.
pub(crate) fn authenticate(
    tokens: &BTreeMap<String, UserInfo>,
    headers: &HeaderMap,
    issued: impl FnOnce(&str) -> Option<UserInfo>,
) -> Result<UserInfo, AuthnError> {
    let value = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or(AuthnError::Missing)?;
    let mut parts = value.trim().splitn(2, ' ');
    let scheme = parts.next().unwrap_or_default();
    let token = parts.next().unwrap_or_default().trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(AuthnError::Missing);
    }
    let mut user = tokens.get(token).cloned().or_else(|| issued(token)).ok_or(AuthnError::Unknown)?;
    if !user.groups.iter().any(|g| g == ALL_AUTHENTICATED) {
        user.groups.push(ALL_AUTHENTICATED.to_string());
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, auth.parse().unwrap());
        h
    }

    #[test]
    fn tokens_map_to_users_with_authenticated_group() {
        let mut tokens = BTreeMap::new();
        tokens
            .insert("t".to_string(), UserInfo { username: "u".into(), groups: vec!["g".into()], ..Default::default() });
        let none = |_: &str| None;
        let u = authenticate(&tokens, &headers("Bearer t"), none).unwrap();
        assert_eq!(u.groups, ["g", ALL_AUTHENTICATED]);
        assert_eq!(authenticate(&tokens, &headers("Bearer x"), none), Err(AuthnError::Unknown));
        assert_eq!(authenticate(&tokens, &headers("Basic t"), none), Err(AuthnError::Missing));
        assert_eq!(authenticate(&tokens, &HeaderMap::new(), none), Err(AuthnError::Missing));
        let issued = |t: &str| (t == "x").then(|| UserInfo { username: "sa".into(), ..Default::default() });
        assert_eq!(authenticate(&tokens, &headers("Bearer x"), issued).unwrap().groups, [ALL_AUTHENTICATED]);
    }
}
