//! A scenario's namespaces on a cluster: a cluster run owns exactly one namespace (`kasim-…`,
//! created and deleted by the run), so the scenario's namespace and agentk's own (`gitlab-agent`
//! in the simulator) both become it.
//!
//! The map goes forward over what kasim sends (fixtures, agent configs, request paths, bodies and
//! headers) and backward over what comes back (status messages, bodies, identities), so reports
//! speak the scenario's vocabulary and `kasim diff` can compare a cluster run with a simulated
//! one. The run namespace carries a random suffix, which makes the backward replacement exact.
//!
//! Cluster-scoped fixture objects (ClusterRoles and ClusterRoleBindings) get the run namespace as
//! a name suffix, with every `roleRef` to them rewritten, so concurrent runs never collide and
//! cleanup deletes exactly this run's objects. RBAC denial messages never name roles, so this is
//! invisible to expectations.

use std::collections::BTreeSet;

use serde_json::Value;

/// agentk's namespace in the simulator (`kasim_sim::fixtures::AGENTK_SERVICE_ACCOUNT`).
const SIM_AGENT_NAMESPACE: &str = "gitlab-agent";

/// Why a scenario's cluster fixtures cannot be mapped onto one run namespace.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    #[error(
        "cluster.objects declares namespaces {0:?}; a cluster run has one namespace, so a scenario may declare at most one"
    )]
    TooManyNamespaces(Vec<String>),
    #[error("cluster.objects[{0}]: {1}")]
    Object(usize, String),
}

/// The mapping of one run.
#[derive(Debug, Clone)]
pub struct NamespaceMap {
    run: String,
    scenario: String,
}

impl NamespaceMap {
    /// `objects`: the scenario's `cluster.objects`; its one `Namespace` (if any) is the scenario
    /// namespace, else `default`.
    pub fn new(objects: &[Value], run: &str) -> Result<Self, MapError> {
        let declared: BTreeSet<String> = objects
            .iter()
            .filter(|o| o["kind"] == "Namespace" && o["apiVersion"] == "v1")
            .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_owned))
            .filter(|n| n != SIM_AGENT_NAMESPACE)
            .collect();
        if declared.len() > 1 {
            return Err(MapError::TooManyNamespaces(declared.into_iter().collect()));
        }
        let scenario = declared.into_iter().next().unwrap_or_else(|| "default".into());
        Ok(Self { run: run.to_owned(), scenario })
    }

    pub fn run_namespace(&self) -> &str {
        &self.run
    }

    pub fn scenario_namespace(&self) -> &str {
        &self.scenario
    }

    fn is_scenario_ns(&self, s: &str) -> bool {
        s == self.scenario || s == SIM_AGENT_NAMESPACE
    }

    /// A string kasim sends: a whole namespace name, a service-account user or group, and
    /// `/namespaces/<ns>` path segments.
    pub fn forward(&self, s: &str) -> String {
        if self.is_scenario_ns(s) {
            return self.run.clone();
        }
        let mut out = s.to_owned();
        for ns in [SIM_AGENT_NAMESPACE, self.scenario.as_str()] {
            out = out
                .replace(&format!("system:serviceaccount:{ns}:"), &format!("system:serviceaccount:{}:", self.run))
                .replace(&format!("system:serviceaccounts:{ns}"), &format!("system:serviceaccounts:{}", self.run));
            out = replace_segment(&out, &format!("/namespaces/{ns}"), &format!("/namespaces/{}", self.run));
        }
        out
    }

    /// Every string in `v` through [`Self::forward`].
    pub fn forward_value(&self, v: &mut Value) {
        walk(v, &|s| self.forward(s));
    }

    /// A string that came back: service-account names go back to agentk's simulated namespace,
    /// every other mention of the run namespace to the scenario's.
    pub fn back(&self, s: &str) -> String {
        if !s.contains(&self.run) {
            return s.to_owned();
        }
        s.replace(
            &format!("system:serviceaccount:{}:", self.run),
            &format!("system:serviceaccount:{SIM_AGENT_NAMESPACE}:"),
        )
        .replace(
            &format!("system:serviceaccounts:{}", self.run),
            &format!("system:serviceaccounts:{SIM_AGENT_NAMESPACE}"),
        )
        .replace(&self.run, &self.scenario)
    }

    /// The fixture objects to apply: `Namespace` objects dropped (the run namespace stands in),
    /// namespaces mapped, cluster-scoped RBAC renamed with the run suffix.
    pub fn fixtures(&self, objects: &[Value]) -> Result<Vec<Value>, MapError> {
        let renamed: BTreeSet<String> = objects
            .iter()
            .filter(|o| o["kind"] == "ClusterRole")
            .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_owned))
            .collect();
        let mut out = vec![];
        for (i, o) in objects.iter().enumerate() {
            if !o.is_object() {
                return Err(MapError::Object(i, "not a mapping".into()));
            }
            if o["kind"] == "Namespace" && o["apiVersion"] == "v1" {
                continue;
            }
            let mut o = o.clone();
            self.forward_value(&mut o);
            if matches!(o["kind"].as_str(), Some("ClusterRole" | "ClusterRoleBinding")) {
                let name =
                    o["metadata"]["name"].as_str().ok_or_else(|| MapError::Object(i, "no metadata.name".into()))?;
                o["metadata"]["name"] = Value::String(self.cluster_name(name));
            }
            if o["roleRef"]["kind"] == "ClusterRole"
                && let Some(r) = o["roleRef"]["name"].as_str().filter(|r| renamed.contains(*r))
            {
                o["roleRef"]["name"] = Value::String(self.cluster_name(r));
            }
            out.push(o);
        }
        Ok(out)
    }

    fn cluster_name(&self, name: &str) -> String {
        format!("{name}-{}", self.run)
    }
}

/// Replaces `from` where it is a whole path segment run (followed by `/`, `?` or the end).
fn replace_segment(s: &str, from: &str, to: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(from) {
        let after = &rest[i + from.len()..];
        out.push_str(&rest[..i]);
        if after.is_empty() || after.starts_with('/') || after.starts_with('?') {
            out.push_str(to);
        } else {
            out.push_str(from);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

fn walk(v: &mut Value, f: &dyn Fn(&str) -> String) {
    match v {
        Value::String(s) => *s = f(s),
        Value::Array(a) => a.iter_mut().for_each(|x| walk(x, f)),
        Value::Object(m) => m.values_mut().for_each(|x| walk(x, f)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const RUN: &str = "kasim-rbac-132-0f3a";

    fn map() -> NamespaceMap {
        NamespaceMap::new(&[json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})], RUN)
            .unwrap()
    }

    #[test]
    fn requests_go_forward_and_answers_come_back() {
        let m = map();
        assert_eq!(m.forward("/api/v1/namespaces/default/pods"), format!("/api/v1/namespaces/{RUN}/pods"));
        assert_eq!(m.forward("/api/v1/namespaces/default"), format!("/api/v1/namespaces/{RUN}"));
        assert_eq!(m.forward("/api/v1/namespaces/default?watch=1"), format!("/api/v1/namespaces/{RUN}?watch=1"));
        // Only whole segments: another namespace that starts the same way is left alone.
        assert_eq!(m.forward("/api/v1/namespaces/default-2/pods"), "/api/v1/namespaces/default-2/pods");
        assert_eq!(m.forward("default"), RUN);
        assert_eq!(m.forward("defaults"), "defaults");
        assert_eq!(
            m.forward("system:serviceaccount:gitlab-agent:agentk"),
            format!("system:serviceaccount:{RUN}:agentk")
        );

        let denied = format!(
            "pods is forbidden: User \"system:serviceaccount:{RUN}:agentk\" cannot list resource \"pods\" in API group \"\" in the namespace \"{RUN}\""
        );
        assert_eq!(
            m.back(&denied),
            "pods is forbidden: User \"system:serviceaccount:gitlab-agent:agentk\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
        );
        assert_eq!(m.back(&format!("system:serviceaccounts:{RUN}")), "system:serviceaccounts:gitlab-agent");
        assert_eq!(m.back("untouched"), "untouched");
    }

    #[test]
    fn fixtures_lose_their_namespace_and_cluster_scoped_rbac_gets_the_run_suffix() {
        let m = map();
        let objects = vec![
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "read"}, "rules": []}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "read"},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "read"},
                   "subjects": [{"kind": "ServiceAccount", "name": "agentk", "namespace": "gitlab-agent"}]}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "rb", "namespace": "default"},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}}),
        ];
        let out = m.fixtures(&objects).unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(out[0]["metadata"]["name"], format!("read-{RUN}"));
        assert_eq!(out[1]["metadata"]["name"], format!("read-{RUN}"));
        assert_eq!(out[1]["roleRef"]["name"], format!("read-{RUN}"));
        assert_eq!(out[1]["subjects"][0]["namespace"], RUN);
        assert_eq!(out[2]["metadata"]["namespace"], RUN);
        // A built-in ClusterRole the scenario did not declare keeps its name.
        assert_eq!(out[2]["roleRef"]["name"], "view");
    }

    #[test]
    fn one_namespace_per_scenario() {
        let ns = |n: &str| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}});
        assert_eq!(NamespaceMap::new(&[], RUN).unwrap().scenario_namespace(), "default");
        assert_eq!(NamespaceMap::new(&[ns("apps"), ns("gitlab-agent")], RUN).unwrap().scenario_namespace(), "apps");
        assert_eq!(
            NamespaceMap::new(&[ns("a"), ns("b")], RUN).unwrap_err(),
            MapError::TooManyNamespaces(vec!["a".into(), "b".into()])
        );
    }
}
