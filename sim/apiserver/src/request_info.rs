//! Authorization attributes derived from a request, following the real
//! `RequestInfoFactory` (`k8s.io/apiserver/pkg/endpoints/request`).
//!
//! Authorization happens on these attributes *before* routing, exactly as
//! upstream: a forbidden user gets 403 even for a path that does not exist.

use std::collections::BTreeMap;

/// What the authorizer decides on (`authorizer.Attributes`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestAttributes {
    /// `get`, `list`, `watch`, `create`, … or the lower-case HTTP method
    /// for non-resource requests; `impersonate` for impersonation checks.
    pub verb: String,
    /// Whether this is a resource (as opposed to a non-resource URL) request.
    pub resource_request: bool,
    /// The request path (percent-decoded).
    pub path: String,
    /// API group; empty for the core group.
    pub api_group: String,
    /// API version, e.g. `v1`.
    pub api_version: String,
    /// Namespace; empty for cluster-scoped requests.
    pub namespace: String,
    /// Resource, e.g. `pods`.
    pub resource: String,
    /// Subresource, e.g. `exec`.
    pub subresource: String,
    /// Object name; empty for collections.
    pub name: String,
    /// Path parts from the resource on (`pods/name/subresource/...`).
    pub(crate) parts: Vec<String>,
}

/// Decoded query parameters; the first value of a repeated key wins.
pub(crate) type Query = BTreeMap<String, String>;

/// Percent-decodes `s` (`+` stays literal unless `plus_is_space`).
pub(crate) fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn parse_query(q: Option<&str>) -> Query {
    let mut out = Query::new();
    for pair in q.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.entry(percent_decode(k, true))
            .or_insert_with(|| percent_decode(v, true));
    }
    out
}

/// `strconv.ParseBool`, as Go's parameter codec uses for `watch`.
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Whether the query asks for a watch.
pub(crate) fn wants_watch(query: &Query) -> bool {
    query
        .get("watch")
        .map(|w| parse_bool(w).unwrap_or(!matches!(w.to_lowercase().as_str(), "false" | "0")))
        .unwrap_or(false)
}

const SPECIAL_VERBS: [&str; 2] = ["proxy", "watch"];
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

/// Derives the attributes for `method` on `raw_path`.
pub(crate) fn resolve(method: &http::Method, raw_path: &str, query: &Query) -> RequestAttributes {
    let path = percent_decode(raw_path, false);
    let mut info = RequestAttributes {
        path: path.clone(),
        verb: method.as_str().to_lowercase(),
        ..Default::default()
    };
    let trimmed = path.trim_matches('/');
    let mut parts: Vec<&str> = if trimmed.is_empty() {
        Vec::new()
    } else {
        trimmed.split('/').collect()
    };
    if parts.len() < 3 || !matches!(parts[0], "api" | "apis") {
        return info;
    }
    let prefix = parts.remove(0);
    if prefix == "apis" {
        if parts.len() < 3 {
            return info;
        }
        info.api_group = parts.remove(0).to_string();
    }
    info.resource_request = true;
    info.api_version = parts.remove(0).to_string();

    if SPECIAL_VERBS.contains(&parts[0]) {
        if parts.len() < 2 {
            // Upstream fails request-info resolution here; treat as a
            // non-resource request on the raw path so authz still applies.
            info.resource_request = false;
            info.api_group.clear();
            info.api_version.clear();
            return info;
        }
        info.verb = parts.remove(0).to_string();
    } else {
        info.verb = match *method {
            http::Method::POST => "create",
            http::Method::GET | http::Method::HEAD => "get",
            http::Method::PUT => "update",
            http::Method::PATCH => "patch",
            http::Method::DELETE => "delete",
            _ => "",
        }
        .to_string();
    }

    if parts.first() == Some(&"namespaces") && parts.len() > 1 {
        info.namespace = parts[1].to_string();
        if parts.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&parts[2]) {
            parts.drain(..2);
        }
    }
    if parts.len() >= 3 {
        info.subresource = parts[2].to_string();
    }
    if parts.len() >= 2 {
        info.name = parts[1].to_string();
    }
    if !parts.is_empty() {
        info.resource = parts[0].to_string();
    }
    info.parts = parts.iter().map(|s| s.to_string()).collect();

    if info.name.is_empty() && info.verb == "get" {
        info.verb = if wants_watch(query) { "watch" } else { "list" }.to_string();
        if let Some(name) = query
            .get("fieldSelector")
            .and_then(|fs| exact_name(fs))
            .filter(|n| valid_path_segment(n))
        {
            info.name = name;
        }
    }
    if info.name.is_empty() && info.verb == "delete" {
        info.verb = "deletecollection".into();
    }
    info
}

/// `metadata.name=x` (or `==`) as the only requirement of a field selector.
fn exact_name(fs: &str) -> Option<String> {
    let fs = fs.trim();
    if fs.contains(',') {
        // Upstream accepts any selector that *requires* the name, but a
        // conjunction is rare enough to leave unmodelled.
        return None;
    }
    let (k, v) = fs.split_once("==").or_else(|| fs.split_once('='))?;
    (k.trim() == "metadata.name" && !k.ends_with('!')).then(|| v.trim().to_string())
}

/// `path.IsValidPathSegmentName`.
pub(crate) fn valid_path_segment(n: &str) -> bool {
    !n.is_empty() && n != "." && n != ".." && !n.contains('/') && !n.contains('%')
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    fn r(m: Method, p: &str) -> RequestAttributes {
        let (path, q) = p.split_once('?').unwrap_or((p, ""));
        resolve(&m, path, &parse_query(Some(q)))
    }

    #[test]
    fn verbs_follow_upstream_request_info() {
        let cases = [
            (
                Method::GET,
                "/api/v1/namespaces/default/pods",
                "list",
                "default",
                "pods",
                "",
                "",
            ),
            (
                Method::GET,
                "/api/v1/namespaces/default/pods?watch=true",
                "watch",
                "default",
                "pods",
                "",
                "",
            ),
            (
                Method::GET,
                "/api/v1/namespaces/default/pods?watch=1",
                "watch",
                "default",
                "pods",
                "",
                "",
            ),
            (
                Method::GET,
                "/api/v1/namespaces/default/pods?watch=false",
                "list",
                "default",
                "pods",
                "",
                "",
            ),
            (
                Method::GET,
                "/api/v1/watch/namespaces/default/pods",
                "watch",
                "default",
                "pods",
                "",
                "",
            ),
            (
                Method::GET,
                "/api/v1/namespaces/default/pods/p",
                "get",
                "default",
                "pods",
                "p",
                "",
            ),
            (
                Method::POST,
                "/api/v1/namespaces/default/pods/p/exec",
                "create",
                "default",
                "pods",
                "p",
                "exec",
            ),
            (
                Method::PUT,
                "/api/v1/namespaces/default/pods/p",
                "update",
                "default",
                "pods",
                "p",
                "",
            ),
            (
                Method::PATCH,
                "/api/v1/namespaces/default/pods/p",
                "patch",
                "default",
                "pods",
                "p",
                "",
            ),
            (
                Method::DELETE,
                "/api/v1/namespaces/default/pods/p",
                "delete",
                "default",
                "pods",
                "p",
                "",
            ),
            (
                Method::DELETE,
                "/api/v1/namespaces/default/pods",
                "deletecollection",
                "default",
                "pods",
                "",
                "",
            ),
            (
                Method::GET,
                "/api/v1/namespaces/x",
                "get",
                "x",
                "namespaces",
                "x",
                "",
            ),
            (
                Method::GET,
                "/api/v1/namespaces",
                "list",
                "",
                "namespaces",
                "",
                "",
            ),
            (
                Method::PUT,
                "/api/v1/namespaces/x/finalize",
                "update",
                "x",
                "namespaces",
                "x",
                "finalize",
            ),
            (
                Method::GET,
                "/apis/rbac.authorization.k8s.io/v1/clusterroles/admin",
                "get",
                "",
                "clusterroles",
                "admin",
                "",
            ),
            (
                Method::GET,
                "/api/v1/namespaces/default/configmaps?fieldSelector=metadata.name%3Dc",
                "list",
                "default",
                "configmaps",
                "c",
                "",
            ),
        ];
        for (m, p, verb, ns, res, name, sub) in cases {
            let a = r(m, p);
            assert!(a.resource_request, "{p}");
            assert_eq!(
                (
                    a.verb.as_str(),
                    a.namespace.as_str(),
                    a.resource.as_str(),
                    a.name.as_str(),
                    a.subresource.as_str()
                ),
                (verb, ns, res, name, sub),
                "{p}"
            );
        }
    }

    #[test]
    fn short_paths_are_non_resource() {
        for p in [
            "/version",
            "/api",
            "/api/v1",
            "/apis",
            "/apis/rbac.authorization.k8s.io/v1",
            "/healthz",
            "/",
        ] {
            let a = r(Method::GET, p);
            assert!(!a.resource_request, "{p}");
            assert_eq!(a.verb, "get");
            assert_eq!(a.path, p);
        }
    }

    #[test]
    fn decoding_is_total() {
        assert_eq!(percent_decode("a%2Fb%zz%", false), "a/b%zz%");
        assert_eq!(percent_decode("a+b", true), "a b");
        assert_eq!(parse_query(Some("a=1&a=2&b")).get("a").unwrap(), "1");
    }
}
