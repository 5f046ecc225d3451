//! agentk's least-privilege identity, from `conformance/rbac/agentk.yaml` (reviewed as a file, not
//! generated ad hoc), rendered for one run.

use serde_json::Value;

/// The reviewed template.
pub const AGENTK_RBAC_TEMPLATE: &str = include_str!("../rbac/agentk.yaml");

/// Why the template could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RbacError {
    #[error("{what} {value:?} is not a valid Kubernetes name (lowercase alphanumerics and '-', at most 63)")]
    BadName { what: &'static str, value: String },
    #[error("conformance/rbac/agentk.yaml: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    #[error("conformance/rbac/agentk.yaml: unreplaced placeholder in {0}")]
    Placeholder(String),
}

/// DNS-1123 label: what namespaces and the names we substitute must be.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The objects of the template for `namespace` and `service_account`, in apply order.
pub fn render(namespace: &str, service_account: &str) -> Result<Vec<Value>, RbacError> {
    for (what, value) in [("namespace", namespace), ("service account", service_account)] {
        if !is_dns_label(value) {
            return Err(RbacError::BadName { what, value: value.to_owned() });
        }
    }
    let text = AGENTK_RBAC_TEMPLATE.replace("${NAMESPACE}", namespace).replace("${SERVICE_ACCOUNT}", service_account);
    let docs = crate::apply::parse_documents(&text)?;
    for d in &docs {
        let s = d.to_string();
        if s.contains("${") {
            return Err(RbacError::Placeholder(s));
        }
    }
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_impersonation_only_and_refuses_bad_names() {
        let docs = render("kasim-run-1", "agentk").unwrap();
        let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["ServiceAccount", "ClusterRole", "ClusterRoleBinding"]);
        assert_eq!(docs[0]["metadata"]["namespace"], "kasim-run-1");
        assert_eq!(docs[1]["metadata"]["name"], "kasim-agentk-impersonate-kasim-run-1");
        // Least privilege: every rule is impersonate and nothing else, no wildcards.
        for rule in docs[1]["rules"].as_array().unwrap() {
            assert_eq!(rule["verbs"], serde_json::json!(["impersonate"]));
            assert!(!rule.to_string().contains('*'), "{rule}");
        }
        let core: Vec<&str> =
            docs[1]["rules"][0]["resources"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(core, ["users", "groups", "serviceaccounts"]);
        let authn = docs[1]["rules"][1]["resources"].as_array().unwrap();
        assert!(authn.iter().any(|r| r == "uids"));
        assert!(authn.iter().any(|r| r == "userextras/agent.gitlab.com/ci_job_id"));
        assert_eq!(docs[2]["subjects"][0]["namespace"], "kasim-run-1");
        for bad in ["", "Run", "a_b", "-a", &"x".repeat(64)] {
            assert!(matches!(render(bad, "agentk"), Err(RbacError::BadName { .. })), "{bad}");
        }
        assert!(render("ok", "x}y").is_err());
    }
}
