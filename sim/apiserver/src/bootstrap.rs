//! The bootstrap objects a fresh cluster has: the default namespaces and
//! the parts of the upstream bootstrap RBAC policy
//! (`plugin/pkg/auth/authorizer/rbac/bootstrappolicy`) that matter to the
//! endpoints modelled here.
//!
//! ## Differences from a real API server
//! Only a subset of the bootstrap ClusterRoles is created: `cluster-admin`,
//! `admin`, `edit`, `view`, their `system:aggregate-to-*` contributors
//! (core, apps and batch rules), `system:basic-user`, `system:discovery`
//! and `system:public-info-viewer`, with their bindings. No ServiceAccounts
//! (not even `default`) exist unless created.

use serde_json::{Value, json};

use crate::resources::{CLUSTERROLEBINDINGS, CLUSTERROLES, NAMESPACES, ResourceType};

const READ: [&str; 3] = ["get", "list", "watch"];
const WRITE: [&str; 5] = ["create", "delete", "deletecollection", "patch", "update"];

fn labels(extra: &[(&str, &str)]) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("kubernetes.io/bootstrapping".into(), "rbac-defaults".into());
    for (k, v) in extra {
        m.insert((*k).into(), (*v).into());
    }
    Value::Object(m)
}

fn cluster_role(name: &str, extra_labels: &[(&str, &str)], rules: Value) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {
            "name": name,
            "labels": labels(extra_labels),
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
        },
        "rules": rules,
    })
}

fn aggregated(name: &str, extra_labels: &[(&str, &str)], to: &str) -> Value {
    let mut r = cluster_role(name, extra_labels, json!([]));
    if let Some(m) = r.as_object_mut() {
        m.insert(
            "aggregationRule".into(),
            json!({"clusterRoleSelectors": [{"matchLabels": {format!("rbac.authorization.k8s.io/aggregate-to-{to}"): "true"}}]}),
        );
    }
    r
}

fn binding(name: &str, role: &str, groups: &[&str]) -> Value {
    let subjects: Vec<Value> = groups
        .iter()
        .map(|g| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g}))
        .collect();
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {
            "name": name,
            "labels": labels(&[]),
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
        },
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": subjects,
    })
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

/// Bootstrap objects in creation order.
pub(crate) fn objects() -> Vec<(&'static ResourceType, Value)> {
    let mut out: Vec<(&'static ResourceType, Value)> = Vec::new();
    for ns in ["default", "kube-node-lease", "kube-public", "kube-system"] {
        out.push((
            &NAMESPACES,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        ));
    }
    let view_core = [
        "configmaps",
        "endpoints",
        "persistentvolumeclaims",
        "persistentvolumeclaims/status",
        "pods",
        "replicationcontrollers",
        "replicationcontrollers/scale",
        "serviceaccounts",
        "services",
        "services/status",
    ];
    let view_core_status = [
        "bindings",
        "events",
        "limitranges",
        "namespaces/status",
        "pods/log",
        "pods/status",
        "replicationcontrollers/status",
        "resourcequotas",
        "resourcequotas/status",
    ];
    let apps = [
        "controllerrevisions",
        "daemonsets",
        "daemonsets/status",
        "deployments",
        "deployments/scale",
        "deployments/status",
        "replicasets",
        "replicasets/scale",
        "replicasets/status",
        "statefulsets",
        "statefulsets/scale",
        "statefulsets/status",
    ];
    let apps_write = [
        "daemonsets",
        "deployments",
        "deployments/rollback",
        "deployments/scale",
        "replicasets",
        "replicasets/scale",
        "statefulsets",
        "statefulsets/scale",
    ];
    let roles = [
        cluster_role(
            "cluster-admin",
            &[],
            json!([
                rule(&["*"], &["*"], &["*"]),
                {"nonResourceURLs": ["*"], "verbs": ["*"]},
            ]),
        ),
        aggregated("admin", &[], "admin"),
        aggregated(
            "edit",
            &[("rbac.authorization.k8s.io/aggregate-to-admin", "true")],
            "edit",
        ),
        aggregated(
            "view",
            &[("rbac.authorization.k8s.io/aggregate-to-edit", "true")],
            "view",
        ),
        cluster_role(
            "system:aggregate-to-admin",
            &[("rbac.authorization.k8s.io/aggregate-to-admin", "true")],
            json!([
                rule(
                    &["authorization.k8s.io"],
                    &["localsubjectaccessreviews"],
                    &["create"]
                ),
                rule(
                    &["rbac.authorization.k8s.io"],
                    &["rolebindings", "roles"],
                    &[
                        "create",
                        "delete",
                        "deletecollection",
                        "get",
                        "list",
                        "patch",
                        "update",
                        "watch"
                    ],
                ),
            ]),
        ),
        cluster_role(
            "system:aggregate-to-edit",
            &[("rbac.authorization.k8s.io/aggregate-to-edit", "true")],
            json!([
                rule(
                    &[""],
                    &[
                        "pods/attach",
                        "pods/exec",
                        "pods/portforward",
                        "pods/proxy",
                        "secrets",
                        "services/proxy"
                    ],
                    &READ
                ),
                rule(&[""], &["serviceaccounts"], &["impersonate"]),
                rule(
                    &[""],
                    &[
                        "pods",
                        "pods/attach",
                        "pods/exec",
                        "pods/portforward",
                        "pods/proxy"
                    ],
                    &WRITE
                ),
                rule(&[""], &["pods/eviction"], &["create"]),
                rule(
                    &[""],
                    &[
                        "configmaps",
                        "events",
                        "persistentvolumeclaims",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "secrets",
                        "serviceaccounts",
                        "services",
                        "services/proxy"
                    ],
                    &WRITE,
                ),
                rule(&[""], &["serviceaccounts/token"], &["create"]),
                rule(&["apps"], &apps_write, &WRITE),
                rule(&["batch"], &["cronjobs", "jobs"], &WRITE),
            ]),
        ),
        cluster_role(
            "system:aggregate-to-view",
            &[("rbac.authorization.k8s.io/aggregate-to-view", "true")],
            json!([
                rule(&[""], &view_core, &READ),
                rule(&[""], &view_core_status, &READ),
                rule(&[""], &["namespaces"], &READ),
                rule(&["apps"], &apps, &READ),
                rule(
                    &["batch"],
                    &["cronjobs", "cronjobs/status", "jobs", "jobs/status"],
                    &READ
                ),
            ]),
        ),
        cluster_role(
            "system:basic-user",
            &[],
            json!([
                rule(
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                    &["create"]
                ),
                rule(
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                    &["create"]
                ),
            ]),
        ),
        cluster_role(
            "system:discovery",
            &[],
            json!([{
                "nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez",
                                    "/openapi", "/openapi/*", "/readyz", "/version", "/version/"],
                "verbs": ["get"],
            }]),
        ),
        cluster_role(
            "system:public-info-viewer",
            &[],
            json!([{
                "nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"],
                "verbs": ["get"],
            }]),
        ),
    ];
    out.extend(roles.into_iter().map(|r| (&CLUSTERROLES, r)));
    let bindings = [
        binding("cluster-admin", "cluster-admin", &["system:masters"]),
        binding(
            "system:basic-user",
            "system:basic-user",
            &["system:authenticated"],
        ),
        binding(
            "system:discovery",
            "system:discovery",
            &["system:authenticated"],
        ),
        binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            &["system:authenticated", "system:unauthenticated"],
        ),
    ];
    out.extend(bindings.into_iter().map(|b| (&CLUSTERROLEBINDINGS, b)));
    out
}
