//! The impersonation filter (`k8s.io/apiserver/pkg/endpoints/filters/impersonation.go`).
//!
//! Every requested field is checked with verb `impersonate`, in upstream's
//! order: the user (or service account), each group, each extra value,
//! then the UID. The first denial ends the request with 403.
//!
//! ## Differences from a real API server
//! * Group, extra or UID headers without `Impersonate-User` are answered
//!   with a 400 `BadRequest` Status; upstream writes a plain-text 500
//!   (`responsewriters.InternalError`).
//! * `Impersonate-Extra-*` headers are processed in key order (upstream
//!   iterates a Go map, so its order is random).

use std::collections::BTreeMap;

use http::HeaderMap;

use crate::authn::{ALL_AUTHENTICATED, ALL_UNAUTHENTICATED, ANONYMOUS, UserInfo};
use crate::request_info::{RequestAttributes, percent_decode};
use crate::resources;

const USER: &str = "impersonate-user";
const UID: &str = "impersonate-uid";
const GROUP: &str = "impersonate-group";
const EXTRA_PREFIX: &str = "impersonate-extra-";

/// Why impersonation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ImpersonationError {
    /// Groups/extra/uid were requested without a user.
    #[error("requested {0} without impersonating a user")]
    NoUser(String),
    /// A header value was not valid text.
    #[error("invalid impersonation header {0:?}")]
    InvalidHeader(String),
    /// The requestor may not impersonate this attribute.
    #[error("forbidden")]
    Forbidden {
        attrs: Box<RequestAttributes>,
        reason: String,
    },
}

fn values<'a>(headers: &'a HeaderMap, name: &str) -> Result<Vec<&'a str>, ImpersonationError> {
    headers
        .get_all(name)
        .iter()
        .map(|v| {
            v.to_str()
                .map_err(|_| ImpersonationError::InvalidHeader(name.to_string()))
        })
        .collect()
}

/// `serviceaccount.SplitUsername`: `(namespace, name)` for a valid SA user name.
pub(crate) fn split_sa_username(u: &str) -> Option<(&str, &str)> {
    let rest = u.strip_prefix("system:serviceaccount:")?;
    let (ns, name) = rest.split_once(':')?;
    if name.contains(':')
        || resources::dns_label(ns).is_err()
        || resources::dns_subdomain(name).is_err()
    {
        return None;
    }
    Some((ns, name))
}

fn attrs(group: &str, resource: &str, sub: &str, ns: &str, name: &str) -> RequestAttributes {
    RequestAttributes {
        verb: "impersonate".into(),
        resource_request: true,
        api_group: group.into(),
        api_version: "v1".into(),
        resource: resource.into(),
        subresource: sub.into(),
        namespace: ns.into(),
        name: name.into(),
        ..Default::default()
    }
}

/// Applies the impersonation headers. `Ok(None)` when there are none;
/// `authorize` answers `(allowed, reason)` for the requesting user.
pub(crate) fn impersonate(
    headers: &HeaderMap,
    mut authorize: impl FnMut(&RequestAttributes) -> (bool, String),
) -> Result<Option<UserInfo>, ImpersonationError> {
    let user = values(headers, USER)?
        .first()
        .map(|s| s.to_string())
        .unwrap_or_default();
    let groups_req: Vec<String> = values(headers, GROUP)?
        .iter()
        .map(|s| s.to_string())
        .collect();
    let uid = values(headers, UID)?
        .first()
        .map(|s| s.to_string())
        .unwrap_or_default();
    let mut extra_req: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for name in headers.keys() {
        let lower = name.as_str().to_ascii_lowercase();
        if let Some(key) = lower.strip_prefix(EXTRA_PREFIX) {
            let key = percent_decode(key, false);
            let vals = values(headers, name.as_str())?;
            extra_req
                .entry(key)
                .or_default()
                .extend(vals.iter().map(|v| v.to_string()));
        }
    }
    if user.is_empty() {
        if groups_req.is_empty() && extra_req.is_empty() && uid.is_empty() {
            return Ok(None);
        }
        let mut what = Vec::new();
        what.extend(groups_req.iter().map(|g| format!("group {g:?}")));
        what.extend(extra_req.keys().map(|k| format!("extra {k:?}")));
        if !uid.is_empty() {
            what.push(format!("uid {uid:?}"));
        }
        return Err(ImpersonationError::NoUser(what.join(", ")));
    }

    let mut check = |a: RequestAttributes| -> Result<(), ImpersonationError> {
        let (ok, reason) = authorize(&a);
        if ok {
            Ok(())
        } else {
            Err(ImpersonationError::Forbidden {
                attrs: Box::new(a),
                reason,
            })
        }
    };

    let mut groups: Vec<String> = Vec::new();
    if let Some((ns, name)) = split_sa_username(&user) {
        check(attrs("", "serviceaccounts", "", ns, name))?;
        if groups_req.is_empty() {
            groups = vec![
                "system:serviceaccounts".to_string(),
                format!("system:serviceaccounts:{ns}"),
            ];
        }
    } else {
        check(attrs("", "users", "", "", &user))?;
    }
    for g in &groups_req {
        check(attrs("", "groups", "", "", g))?;
        groups.push(g.clone());
    }
    for (key, vals) in &extra_req {
        for v in vals {
            check(attrs("authentication.k8s.io", "userextras", key, "", v))?;
        }
    }
    if !uid.is_empty() {
        check(attrs("authentication.k8s.io", "uids", "", "", &uid))?;
    }

    if user != ANONYMOUS {
        if !groups
            .iter()
            .any(|g| g == ALL_AUTHENTICATED || g == ALL_UNAUTHENTICATED)
        {
            groups.push(ALL_AUTHENTICATED.into());
        }
    } else if !groups.iter().any(|g| g == ALL_UNAUTHENTICATED) {
        groups.push(ALL_UNAUTHENTICATED.into());
    }
    Ok(Some(UserInfo {
        username: user,
        uid,
        groups,
        extra: extra_req,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        m
    }

    #[test]
    fn builds_effective_user_and_checks_everything_in_order() {
        let headers = h(&[
            ("Impersonate-User", "gitlab:user:1"),
            ("Impersonate-Group", "gitlab:ci_job"),
            ("Impersonate-Group", "gitlab:project:2"),
            ("Impersonate-Extra-agent.gitlab.com%2fid", "7"),
            ("Impersonate-Extra-agent.gitlab.com%2fid", "8"),
            ("Impersonate-Uid", "u-1"),
        ]);
        let mut seen = Vec::new();
        let u = impersonate(&headers, |a| {
            seen.push(format!(
                "{}/{}/{}/{}",
                a.api_group, a.resource, a.subresource, a.name
            ));
            (true, String::new())
        })
        .unwrap()
        .unwrap();
        assert_eq!(
            seen,
            [
                "/users//gitlab:user:1",
                "/groups//gitlab:ci_job",
                "/groups//gitlab:project:2",
                "authentication.k8s.io/userextras/agent.gitlab.com/id/7",
                "authentication.k8s.io/userextras/agent.gitlab.com/id/8",
                "authentication.k8s.io/uids//u-1",
            ]
        );
        assert_eq!(u.username, "gitlab:user:1");
        assert_eq!(u.uid, "u-1");
        assert_eq!(
            u.groups,
            ["gitlab:ci_job", "gitlab:project:2", ALL_AUTHENTICATED]
        );
        assert_eq!(u.extra["agent.gitlab.com/id"], ["7", "8"]);
    }

    #[test]
    fn service_accounts_get_their_groups_and_namespace() {
        let headers = h(&[("Impersonate-User", "system:serviceaccount:ns:sa")]);
        let mut seen = None;
        let u = impersonate(&headers, |a| {
            seen = Some((a.resource.clone(), a.namespace.clone(), a.name.clone()));
            (true, String::new())
        })
        .unwrap()
        .unwrap();
        assert_eq!(
            seen,
            Some(("serviceaccounts".into(), "ns".into(), "sa".into()))
        );
        assert_eq!(
            u.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:ns",
                ALL_AUTHENTICATED
            ]
        );
    }

    #[test]
    fn anonymous_and_explicit_groups() {
        let anon = impersonate(&h(&[("Impersonate-User", ANONYMOUS)]), |_| {
            (true, String::new())
        })
        .unwrap()
        .unwrap();
        assert_eq!(anon.groups, [ALL_UNAUTHENTICATED]);
        let explicit = impersonate(
            &h(&[
                ("Impersonate-User", "u"),
                ("Impersonate-Group", ALL_AUTHENTICATED),
            ]),
            |_| (true, String::new()),
        )
        .unwrap()
        .unwrap();
        assert_eq!(explicit.groups, [ALL_AUTHENTICATED]);
    }

    #[test]
    fn errors() {
        assert_eq!(
            impersonate(&HeaderMap::new(), |_| (false, String::new())),
            Ok(None)
        );
        assert!(matches!(
            impersonate(&h(&[("Impersonate-Group", "g")]), |_| (true, String::new())),
            Err(ImpersonationError::NoUser(_))
        ));
        let err = impersonate(
            &h(&[("Impersonate-User", "u"), ("Impersonate-Group", "g")]),
            |a| (a.resource == "users", String::new()),
        )
        .unwrap_err();
        let ImpersonationError::Forbidden { attrs, .. } = err else {
            panic!("expected forbidden")
        };
        assert_eq!(attrs.resource, "groups");
        assert_eq!(split_sa_username("system:serviceaccount:a:b:c"), None);
        assert_eq!(split_sa_username("system:serviceaccount:A:b"), None);
    }
}
