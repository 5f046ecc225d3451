//! Non-resource endpoints: `/version`, discovery and health checks.
//!
//! ## Differences from a real API server
//! * Only legacy (unaggregated) discovery is served; a client asking for
//!   aggregated discovery (`application/json;g=apidiscovery.k8s.io;v=v2`)
//!   gets the legacy documents with `Content-Type: application/json`, which
//!   client-go detects and falls back from.
//! * Discovery lists only the modelled groups and resources (no
//!   subresources), and `/openapi` is not served.
//! * `serverAddressByClientCIDRs` reports the request's `Host` (or
//!   `127.0.0.1:6443`).

use http::{HeaderMap, Method, Response, StatusCode, header};
use serde_json::{Value, json};

use crate::BoxBody;
use crate::body::full;
use crate::resources::{self, ResourceType};
use crate::rest::ok_json;
use crate::status::{ApiError, json_response};
use crate::version::KubeVersion;

/// A non-stored resource served by a group (the review APIs).
struct VirtualResource {
    group: &'static str,
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
}

const VIRTUAL: [VirtualResource; 3] = [
    VirtualResource {
        group: "authentication.k8s.io",
        plural: "selfsubjectreviews",
        singular: "selfsubjectreview",
        kind: "SelfSubjectReview",
    },
    VirtualResource {
        group: "authorization.k8s.io",
        plural: "selfsubjectaccessreviews",
        singular: "selfsubjectaccessreview",
        kind: "SelfSubjectAccessReview",
    },
    VirtualResource {
        group: "authorization.k8s.io",
        plural: "subjectaccessreviews",
        singular: "subjectaccessreview",
        kind: "SubjectAccessReview",
    },
];

/// Served API groups, in `/apis` order.
const GROUPS: [&str; 4] = [
    "rbac.authorization.k8s.io",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "coordination.k8s.io",
];

fn stored(rt: &ResourceType) -> Value {
    let mut v = json!({
        "name": rt.plural,
        "singularName": rt.singular,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": rt.verbs(),
    });
    if !rt.short_names.is_empty()
        && let Some(m) = v.as_object_mut()
    {
        m.insert("shortNames".into(), json!(rt.short_names));
    }
    v
}

fn resource_list(group: &str) -> Option<Value> {
    let mut resources: Vec<Value> = resources::ALL
        .iter()
        .filter(|r| r.group == group)
        .map(|r| stored(r))
        .collect();
    resources.extend(VIRTUAL.iter().filter(|v| v.group == group).map(|v| {
        json!({"name": v.plural, "singularName": v.singular, "namespaced": false, "kind": v.kind, "verbs": ["create"]})
    }));
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        "v1".to_string()
    } else {
        format!("{group}/v1")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

fn api_group(name: &str) -> Value {
    let gv = json!({"groupVersion": format!("{name}/v1"), "version": "v1"});
    json!({"name": name, "versions": [gv.clone()], "preferredVersion": gv})
}

fn text(body: &'static str) -> Response<BoxBody> {
    let mut r = Response::new(full(body.into()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut().insert(
        "x-content-type-options",
        header::HeaderValue::from_static("nosniff"),
    );
    r
}

/// Serves an authorized non-resource request.
pub(crate) fn serve(
    version: KubeVersion,
    method: &Method,
    headers: &HeaderMap,
    path: &str,
) -> Result<Response<BoxBody>, ApiError> {
    let trimmed = path.trim_end_matches('/');
    let parts: Vec<&str> = trimmed.split('/').filter(|p| !p.is_empty()).collect();
    let known = matches!(
        parts.as_slice(),
        ["version"] | ["healthz"] | ["readyz"] | ["livez"] | ["api"] | ["apis"] | ["api", "v1"]
    ) || matches!(parts.as_slice(), ["apis", g] | ["apis", g, "v1"] if GROUPS.contains(g));
    if !known {
        return Err(ApiError::path_not_found());
    }
    if method != Method::GET && method != Method::HEAD {
        return Err(ApiError::method_not_allowed());
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1:6443");
    let doc = match parts.as_slice() {
        ["version"] => {
            let body = serde_json::to_vec(&version.info()).unwrap_or_default();
            return Ok(json_response(StatusCode::OK, body));
        }
        ["healthz"] | ["readyz"] | ["livez"] => return Ok(text("ok")),
        ["api"] => json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
        }),
        ["api", "v1"] => resource_list("").unwrap_or(Value::Null),
        ["apis"] => json!({
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": GROUPS.iter().map(|g| api_group(g)).collect::<Vec<_>>(),
        }),
        ["apis", g] => {
            let mut v = api_group(g);
            if let Some(m) = v.as_object_mut() {
                m.insert("kind".into(), "APIGroup".into());
                m.insert("apiVersion".into(), "v1".into());
            }
            v
        }
        ["apis", g, "v1"] => resource_list(g).ok_or_else(ApiError::path_not_found)?,
        _ => return Err(ApiError::path_not_found()),
    };
    Ok(ok_json(StatusCode::OK, &doc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_lists_cover_modelled_resources() {
        let core = resource_list("").unwrap();
        let names: Vec<&str> = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "configmaps",
                "namespaces",
                "pods",
                "secrets",
                "serviceaccounts"
            ]
        );
        let authn = resource_list("authentication.k8s.io").unwrap();
        assert_eq!(authn["resources"][0]["kind"], "SelfSubjectReview");
        assert!(resource_list("apps").is_none());
    }

    #[test]
    fn unknown_paths_404_and_wrong_methods_405() {
        let h = HeaderMap::new();
        let v = KubeVersion::V1_32;
        assert_eq!(serve(v, &Method::GET, &h, "/nope").unwrap_err().code, 404);
        assert_eq!(
            serve(v, &Method::GET, &h, "/apis/apps").unwrap_err().code,
            404
        );
        assert_eq!(
            serve(v, &Method::POST, &h, "/version").unwrap_err().code,
            405
        );
        assert_eq!(
            serve(v, &Method::GET, &h, "/version").unwrap().status(),
            200
        );
    }
}
