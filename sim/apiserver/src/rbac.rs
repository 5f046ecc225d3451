//! The RBAC authorizer (`plugin/pkg/auth/authorizer/rbac`), preceded by the
//! `system:masters` privileged-group authorizer, as kube-apiserver wires them.
//!
//! ## Differences from a real API server
//! * Only RBAC is modelled; kind's `Node` authorizer never has an opinion
//!   for the identities the harness uses, so it is left out.
//! * Roles and bindings are read from the store on every decision (no
//!   informer lag).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::authn::UserInfo;
use crate::request_info::RequestAttributes;
use crate::resources::{CLUSTERROLEBINDINGS, CLUSTERROLES, ROLEBINDINGS, ROLES, ResourceType};
use crate::selector::LabelSelector;
use crate::store::Store;

/// Who fills the aggregated ClusterRoles (`admin`, `edit`, `view`, …).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AggregationMode {
    /// As on kind: the clusterrole-aggregation controller of
    /// kube-controller-manager fills aggregated roles from the ClusterRoles
    /// their `aggregationRule` selects.
    #[default]
    Kind,
    /// As a bare kube-apiserver without kube-controller-manager: aggregated
    /// roles keep the (empty) rules they were stored with.
    BareApiserver,
}

/// Group whose members are allowed everything, before RBAC is consulted.
pub const SYSTEM_MASTERS: &str = "system:masters";

fn null_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

/// `rbacv1.PolicyRule`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PolicyRule {
    #[serde(default, deserialize_with = "null_vec")]
    pub verbs: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub api_groups: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub resources: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub resource_names: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_vec",
        rename = "nonResourceURLs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub non_resource_urls: Vec<String>,
}

/// `rbacv1.Subject`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Subject {
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub namespace: String,
}

/// `rbacv1.RoleRef`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RoleRef {
    pub kind: String,
    pub name: String,
}

#[derive(Debug, Deserialize)]
struct RoleObj {
    #[serde(default)]
    rules: Option<Vec<PolicyRule>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BindingObj {
    #[serde(default)]
    metadata: Meta,
    role_ref: RoleRef,
    #[serde(default)]
    subjects: Option<Vec<Subject>>,
}

#[derive(Debug, Default, Deserialize)]
struct Meta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
}

/// Why an RBAC object could not be decoded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RbacError {
    #[error("{0}")]
    Decode(#[from] serde_json::Error),
    #[error("unsupported role reference kind: {0:?}")]
    RoleRefKind(String),
}

/// Checks that an RBAC object has the shape the typed API requires.
pub(crate) fn validate_object(rt: &ResourceType, obj: &Value) -> Result<(), RbacError> {
    if rt == &ROLES || rt == &CLUSTERROLES {
        serde_json::from_value::<RoleObj>(obj.clone())?;
    } else if rt == &ROLEBINDINGS || rt == &CLUSTERROLEBINDINGS {
        let b: BindingObj = serde_json::from_value(obj.clone())?;
        let ok =
            b.role_ref.kind == "ClusterRole" || (b.role_ref.kind == "Role" && rt == &ROLEBINDINGS);
        if !ok {
            return Err(RbacError::RoleRefKind(b.role_ref.kind));
        }
    }
    Ok(())
}

fn has(list: &[String], want: &str) -> bool {
    list.iter().any(|v| v == "*" || v == want)
}

/// `rbacv1helpers.ResourceMatches`.
fn resource_matches(rule: &PolicyRule, combined: &str, sub: &str) -> bool {
    rule.resources.iter().any(|r| {
        r == "*"
            || r == combined
            || (!sub.is_empty()
                && r.len() == sub.len() + 2
                && r.starts_with("*/")
                && r.ends_with(sub))
    })
}

/// `rbacv1helpers.NonResourceURLMatches`.
fn non_resource_matches(rule: &PolicyRule, path: &str) -> bool {
    rule.non_resource_urls
        .iter()
        .any(|u| u == "*" || u == path || u.strip_suffix('*').is_some_and(|p| path.starts_with(p)))
}

/// `RuleAllows`.
pub(crate) fn rule_allows(attrs: &RequestAttributes, rule: &PolicyRule) -> bool {
    if !has(&rule.verbs, &attrs.verb) {
        return false;
    }
    if !attrs.resource_request {
        return non_resource_matches(rule, &attrs.path);
    }
    let combined = if attrs.subresource.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}/{}", attrs.resource, attrs.subresource)
    };
    has(&rule.api_groups, &attrs.api_group)
        && resource_matches(rule, &combined, &attrs.subresource)
        && (rule.resource_names.is_empty() || rule.resource_names.contains(&attrs.name))
}

/// Whether `subject` names `user`, with upstream's ServiceAccount namespace defaulting.
fn applies_to(user: &UserInfo, s: &Subject, binding_ns: &str) -> bool {
    match s.kind.as_str() {
        "User" => user.username == s.name,
        "Group" => user.groups.contains(&s.name),
        "ServiceAccount" => {
            let ns = if s.namespace.is_empty() {
                binding_ns
            } else {
                &s.namespace
            };
            !ns.is_empty() && user.username == format!("system:serviceaccount:{ns}:{}", s.name)
        }
        _ => false,
    }
}

fn describe_subject(s: &Subject, binding_ns: &str) -> String {
    if s.kind == "ServiceAccount" {
        let ns = if s.namespace.is_empty() {
            binding_ns
        } else {
            &s.namespace
        };
        format!("{} {:?}", s.kind, format!("{}/{ns}", s.name))
    } else {
        format!("{} {:?}", s.kind, s.name)
    }
}

/// An authorization decision with upstream's reason text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decision {
    pub allowed: bool,
    pub reason: String,
}

fn role_rules(store: &Store, r: &RoleRef, ns: &str) -> Result<Vec<PolicyRule>, String> {
    let (rt, ns, singular) = match r.kind.as_str() {
        "ClusterRole" => (&CLUSTERROLES, "", "clusterrole"),
        "Role" => (&ROLES, ns, "role"),
        k => return Err(format!("unsupported role reference kind: {k:?}")),
    };
    let obj = store.get(rt, ns, &r.name).map_err(|_| {
        format!(
            "{singular}.rbac.authorization.k8s.io {:?} not found",
            r.name
        )
    })?;
    let role: RoleObj = serde_json::from_value(obj.clone()).map_err(|e| e.to_string())?;
    Ok(role.rules.unwrap_or_default())
}

/// Authorizes `user` for `attrs` against the RBAC objects in `store`.
pub(crate) fn authorize(store: &Store, user: &UserInfo, attrs: &RequestAttributes) -> Decision {
    if user.groups.iter().any(|g| g == SYSTEM_MASTERS) {
        return Decision {
            allowed: true,
            reason: String::new(),
        };
    }
    let mut errors: Vec<String> = Vec::new();
    let mut check = |binding: &Value, kind: &str| -> Option<String> {
        let b: BindingObj = serde_json::from_value(binding.clone()).ok()?;
        let subjects = b.subjects.unwrap_or_default();
        let subject = subjects
            .iter()
            .find(|s| applies_to(user, s, &b.metadata.namespace))?;
        match role_rules(store, &b.role_ref, &b.metadata.namespace) {
            Err(e) => {
                errors.push(e);
                None
            }
            Ok(rules) => rules.iter().any(|r| rule_allows(attrs, r)).then(|| {
                let name = if kind == "RoleBinding" {
                    format!("{}/{}", b.metadata.name, b.metadata.namespace)
                } else {
                    b.metadata.name.clone()
                };
                format!(
                    "RBAC: allowed by {kind} {name:?} of {} {:?} to {}",
                    b.role_ref.kind,
                    b.role_ref.name,
                    describe_subject(subject, &b.metadata.namespace)
                )
            }),
        }
    };
    for crb in store.list(&CLUSTERROLEBINDINGS, None) {
        if let Some(reason) = check(crb, "ClusterRoleBinding") {
            return Decision {
                allowed: true,
                reason,
            };
        }
    }
    if !attrs.namespace.is_empty() {
        for rb in store.list(&ROLEBINDINGS, Some(&attrs.namespace)) {
            if let Some(reason) = check(rb, "RoleBinding") {
                return Decision {
                    allowed: true,
                    reason,
                };
            }
        }
    }
    let reason = match errors.len() {
        0 => String::new(),
        1 => format!("RBAC: {}", errors[0]),
        _ => format!("RBAC: [{}]", errors.join(", ")),
    };
    Decision {
        allowed: false,
        reason,
    }
}

/// The upstream `forbiddenMessage` for a denied request.
pub(crate) fn forbidden_message(user: &str, a: &RequestAttributes) -> String {
    if !a.resource_request {
        return format!("User {user:?} cannot {} path {:?}", a.verb, a.path);
    }
    let resource = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    if a.namespace.is_empty() {
        format!(
            "User {user:?} cannot {} resource {resource:?} in API group {:?} at the cluster scope",
            a.verb, a.api_group
        )
    } else {
        format!(
            "User {user:?} cannot {} resource {resource:?} in API group {:?} in the namespace {:?}",
            a.verb, a.api_group, a.namespace
        )
    }
}

/// The rules the aggregation controller would give `role`, or `None` if it
/// has no `aggregationRule`. Matching roles are visited in name order and
/// rules already present are not repeated, like the controller.
pub(crate) fn aggregated_rules(role: &Value, all: &[Value]) -> Option<Value> {
    let selectors = role
        .pointer("/aggregationRule/clusterRoleSelectors")?
        .as_array()?;
    let selectors: Vec<LabelSelector> = selectors
        .iter()
        .filter_map(|s| LabelSelector::from_api(s).ok())
        .collect();
    let name = role.pointer("/metadata/name");
    let mut rules: Vec<PolicyRule> = Vec::new();
    for other in all {
        if other.pointer("/metadata/name") == name
            || !selectors.iter().any(|s| s.matches_object(other))
        {
            continue;
        }
        let Ok(r) = serde_json::from_value::<RoleObj>(other.clone()) else {
            continue;
        };
        for rule in r.rules.unwrap_or_default() {
            if !rules.contains(&rule) {
                rules.push(rule);
            }
        }
    }
    serde_json::to_value(rules).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::NAMESPACES;
    use serde_json::json;

    fn res(
        verb: &str,
        group: &str,
        resource: &str,
        sub: &str,
        ns: &str,
        name: &str,
    ) -> RequestAttributes {
        RequestAttributes {
            verb: verb.into(),
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

    fn nonres(verb: &str, path: &str) -> RequestAttributes {
        RequestAttributes {
            verb: verb.into(),
            path: path.into(),
            ..Default::default()
        }
    }

    fn rule(v: Value) -> PolicyRule {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn rule_matching_table() {
        let pods_get = rule(json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}));
        let star = rule(json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}));
        let scale = rule(json!({"verbs": ["get"], "apiGroups": ["*"], "resources": ["*/scale"]}));
        let exec =
            rule(json!({"verbs": ["create"], "apiGroups": [""], "resources": ["pods/exec"]}));
        let named = rule(
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"]}),
        );
        let urls = rule(json!({"verbs": ["get"], "nonResourceURLs": ["/version", "/apis/*"]}));
        let cases: Vec<(&PolicyRule, RequestAttributes, bool)> = vec![
            (&pods_get, res("get", "", "pods", "", "d", "p"), true),
            (&pods_get, res("list", "", "pods", "", "d", ""), false),
            (&pods_get, res("get", "apps", "pods", "", "d", "p"), false),
            (&pods_get, res("get", "", "pods", "log", "d", "p"), false),
            (&pods_get, res("get", "", "secrets", "", "d", "p"), false),
            (
                &star,
                res("delete", "rbac.authorization.k8s.io", "roles", "", "d", "r"),
                true,
            ),
            (&star, res("create", "", "pods", "exec", "d", "p"), true),
            (&star, nonres("get", "/version"), false),
            (
                &scale,
                res("get", "apps", "deployments", "scale", "d", "x"),
                true,
            ),
            (
                &scale,
                res("get", "apps", "deployments", "", "d", "x"),
                false,
            ),
            (
                &scale,
                res("get", "apps", "deployments", "status", "d", "x"),
                false,
            ),
            (&exec, res("create", "", "pods", "exec", "d", "p"), true),
            (&exec, res("create", "", "pods", "", "d", "p"), false),
            (&named, res("get", "", "configmaps", "", "d", "a"), true),
            (&named, res("get", "", "configmaps", "", "d", "b"), false),
            (&named, res("list", "", "configmaps", "", "d", ""), false),
            (&urls, nonres("get", "/version"), true),
            (&urls, nonres("get", "/version/"), false),
            (&urls, nonres("get", "/apis/x/v1"), true),
            (&urls, nonres("get", "/apis"), false),
            (&urls, nonres("post", "/version"), false),
            (&urls, res("get", "", "version", "", "", ""), false),
        ];
        for (i, (r, a, want)) in cases.iter().enumerate() {
            assert_eq!(rule_allows(a, r), *want, "case {i}: {a:?}");
        }
    }

    fn store_with(objs: &[(&'static ResourceType, &str, Value)]) -> Store {
        let mut s = Store::new(AggregationMode::BareApiserver, 100);
        for ns in ["a", "b"] {
            s.create(&NAMESPACES, "", json!({"metadata": {"name": ns}}))
                .unwrap();
        }
        for (rt, ns, o) in objs {
            s.create(rt, ns, o.clone()).unwrap();
        }
        s
    }

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            username: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn bindings_scope_and_subjects() {
        let s = store_with(&[
            (
                &CLUSTERROLES,
                "",
                json!({"metadata": {"name": "pod-reader"}, "rules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}]}),
            ),
            (
                &ROLES,
                "a",
                json!({"metadata": {"name": "cm"}, "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"]}]}),
            ),
            (
                &ROLEBINDINGS,
                "a",
                json!({"metadata": {"name": "rb"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "pod-reader"}, "subjects": [{"kind": "ServiceAccount", "name": "agentk"}]}),
            ),
            (
                &ROLEBINDINGS,
                "a",
                json!({"metadata": {"name": "rb2"}, "roleRef": {"kind": "Role", "name": "cm"}, "subjects": [{"kind": "Group", "name": "devs"}]}),
            ),
            (
                &CLUSTERROLEBINDINGS,
                "",
                json!({"metadata": {"name": "crb"}, "roleRef": {"kind": "ClusterRole", "name": "pod-reader"}, "subjects": [{"kind": "User", "name": "alice"}, {"kind": "ServiceAccount", "name": "x", "namespace": "b"}]}),
            ),
        ]);
        let sa = user("system:serviceaccount:a:agentk", &[]);
        let sa_b = user("system:serviceaccount:b:agentk", &[]);
        let alice = user("alice", &[]);
        let dev = user("bob", &["devs"]);
        let sa_x = user("system:serviceaccount:b:x", &[]);
        let cases = [
            (&sa, res("list", "", "pods", "", "a", ""), true),
            (&sa, res("list", "", "pods", "", "b", ""), false),
            (&sa, res("list", "", "pods", "", "", ""), false),
            (&sa_b, res("list", "", "pods", "", "a", ""), false),
            (&alice, res("list", "", "pods", "", "", ""), true),
            (&alice, res("get", "", "pods", "", "b", "p"), true),
            (&alice, res("delete", "", "pods", "", "b", "p"), false),
            (&dev, res("get", "", "configmaps", "", "a", "c"), true),
            (&dev, res("get", "", "configmaps", "", "b", "c"), false),
            (&sa_x, res("get", "", "pods", "", "a", "p"), true),
        ];
        for (i, (u, a, want)) in cases.iter().enumerate() {
            assert_eq!(authorize(&s, u, a).allowed, *want, "case {i}");
        }
        assert_eq!(
            authorize(&s, &sa, &res("list", "", "pods", "", "a", "")).reason,
            r#"RBAC: allowed by RoleBinding "rb/a" of ClusterRole "pod-reader" to ServiceAccount "agentk/a""#
        );
        assert_eq!(
            authorize(&s, &alice, &res("list", "", "pods", "", "", "")).reason,
            r#"RBAC: allowed by ClusterRoleBinding "crb" of ClusterRole "pod-reader" to User "alice""#
        );
        let masters = user("root", &[SYSTEM_MASTERS]);
        assert!(authorize(&s, &masters, &nonres("delete", "/anything")).allowed);
    }

    #[test]
    fn missing_roles_become_the_reason() {
        let s = store_with(&[(
            &CLUSTERROLEBINDINGS,
            "",
            json!({"metadata": {"name": "crb"}, "roleRef": {"kind": "ClusterRole", "name": "gone"}, "subjects": [{"kind": "User", "name": "u"}]}),
        )]);
        let d = authorize(&s, &user("u", &[]), &res("get", "", "pods", "", "a", "p"));
        assert_eq!(
            d,
            Decision {
                allowed: false,
                reason: r#"RBAC: clusterrole.rbac.authorization.k8s.io "gone" not found"#.into()
            }
        );
    }

    #[test]
    fn forbidden_messages() {
        assert_eq!(
            forbidden_message("x", &res("list", "", "pods", "", "default", "")),
            r#"User "x" cannot list resource "pods" in API group "" in the namespace "default""#
        );
        assert_eq!(
            forbidden_message("x", &res("create", "", "pods", "exec", "default", "p")),
            r#"User "x" cannot create resource "pods/exec" in API group "" in the namespace "default""#
        );
        assert_eq!(
            forbidden_message(
                "x",
                &res(
                    "list",
                    "rbac.authorization.k8s.io",
                    "clusterroles",
                    "",
                    "",
                    ""
                )
            ),
            r#"User "x" cannot list resource "clusterroles" in API group "rbac.authorization.k8s.io" at the cluster scope"#
        );
        assert_eq!(
            forbidden_message("x", &nonres("get", "/version")),
            r#"User "x" cannot get path "/version""#
        );
    }

    #[test]
    fn rbac_objects_are_validated() {
        assert!(validate_object(&ROLES, &json!({"rules": [{"verbs": "get"}]})).is_err());
        assert!(
            validate_object(
                &CLUSTERROLEBINDINGS,
                &json!({"roleRef": {"kind": "Role", "name": "x"}})
            )
            .is_err()
        );
        assert!(
            validate_object(
                &ROLEBINDINGS,
                &json!({"roleRef": {"kind": "Role", "name": "x"}})
            )
            .is_ok()
        );
        assert!(validate_object(&ROLEBINDINGS, &json!({})).is_err());
    }
}
