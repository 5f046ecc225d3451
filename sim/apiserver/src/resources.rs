//! The table of modelled resource types.

/// Static description of one stored resource type.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ResourceType {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    /// `AllowCreateOnUpdate` of the upstream strategy: PUT creates.
    pub create_on_update: bool,
    /// Whether DELETE answers with the deleted object (else a `Status`).
    pub returns_deleted_object: bool,
    /// Validation of `metadata.name`.
    pub name_rule: NameRule,
}

/// Which upstream name validation a resource uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameRule {
    /// RFC 1123 label (namespaces).
    Label,
    /// RFC 1123 subdomain (most core objects).
    Subdomain,
    /// `path.ValidatePathSegmentName` (RBAC objects).
    PathSegment,
}

impl ResourceType {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn verbs(&self) -> &'static [&'static str] {
        if self.plural == "namespaces" {
            &[
                "create", "delete", "get", "list", "patch", "update", "watch",
            ]
        } else {
            &[
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch",
            ]
        }
    }
}

const RBAC: &str = "rbac.authorization.k8s.io";

pub(crate) static NAMESPACES: ResourceType = ResourceType {
    group: "",
    version: "v1",
    plural: "namespaces",
    singular: "namespace",
    kind: "Namespace",
    namespaced: false,
    short_names: &["ns"],
    create_on_update: false,
    returns_deleted_object: true,
    name_rule: NameRule::Label,
};
pub(crate) static CONFIGMAPS: ResourceType = ResourceType {
    group: "",
    version: "v1",
    plural: "configmaps",
    singular: "configmap",
    kind: "ConfigMap",
    namespaced: true,
    short_names: &["cm"],
    create_on_update: false,
    returns_deleted_object: false,
    name_rule: NameRule::Subdomain,
};
pub(crate) static SECRETS: ResourceType = ResourceType {
    group: "",
    version: "v1",
    plural: "secrets",
    singular: "secret",
    kind: "Secret",
    namespaced: true,
    short_names: &[],
    create_on_update: false,
    returns_deleted_object: false,
    name_rule: NameRule::Subdomain,
};
pub(crate) static SERVICEACCOUNTS: ResourceType = ResourceType {
    group: "",
    version: "v1",
    plural: "serviceaccounts",
    singular: "serviceaccount",
    kind: "ServiceAccount",
    namespaced: true,
    short_names: &["sa"],
    create_on_update: false,
    returns_deleted_object: true,
    name_rule: NameRule::Subdomain,
};
pub(crate) static PODS: ResourceType = ResourceType {
    group: "",
    version: "v1",
    plural: "pods",
    singular: "pod",
    kind: "Pod",
    namespaced: true,
    short_names: &["po"],
    create_on_update: false,
    returns_deleted_object: true,
    name_rule: NameRule::Subdomain,
};
pub(crate) static ROLES: ResourceType = ResourceType {
    group: RBAC,
    version: "v1",
    plural: "roles",
    singular: "role",
    kind: "Role",
    namespaced: true,
    short_names: &[],
    create_on_update: true,
    returns_deleted_object: false,
    name_rule: NameRule::PathSegment,
};
pub(crate) static CLUSTERROLES: ResourceType = ResourceType {
    group: RBAC,
    version: "v1",
    plural: "clusterroles",
    singular: "clusterrole",
    kind: "ClusterRole",
    namespaced: false,
    short_names: &[],
    create_on_update: true,
    returns_deleted_object: false,
    name_rule: NameRule::PathSegment,
};
pub(crate) static ROLEBINDINGS: ResourceType = ResourceType {
    group: RBAC,
    version: "v1",
    plural: "rolebindings",
    singular: "rolebinding",
    kind: "RoleBinding",
    namespaced: true,
    short_names: &[],
    create_on_update: true,
    returns_deleted_object: false,
    name_rule: NameRule::PathSegment,
};
pub(crate) static CLUSTERROLEBINDINGS: ResourceType = ResourceType {
    group: RBAC,
    version: "v1",
    plural: "clusterrolebindings",
    singular: "clusterrolebinding",
    kind: "ClusterRoleBinding",
    namespaced: false,
    short_names: &[],
    create_on_update: true,
    returns_deleted_object: false,
    name_rule: NameRule::PathSegment,
};

pub(crate) static LEASES: ResourceType = ResourceType {
    group: "coordination.k8s.io",
    version: "v1",
    plural: "leases",
    singular: "lease",
    kind: "Lease",
    namespaced: true,
    short_names: &[],
    create_on_update: false,
    returns_deleted_object: false,
    name_rule: NameRule::Subdomain,
};

/// Every stored type, in discovery order.
pub(crate) static ALL: [&ResourceType; 10] = [
    &CONFIGMAPS,
    &NAMESPACES,
    &PODS,
    &SECRETS,
    &SERVICEACCOUNTS,
    &CLUSTERROLEBINDINGS,
    &CLUSTERROLES,
    &ROLEBINDINGS,
    &ROLES,
    &LEASES,
];

/// The type served at `group`/`version`/`plural`.
pub(crate) fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static ResourceType> {
    ALL.iter()
        .copied()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The type of an object by its `apiVersion` and `kind`.
pub(crate) fn by_kind(api_version: &str, kind: &str) -> Option<&'static ResourceType> {
    ALL.iter()
        .copied()
        .find(|r| r.api_version() == api_version && r.kind == kind)
}

/// Validates `name` for `rt`, returning upstream's message on failure.
pub(crate) fn validate_name(rt: &ResourceType, name: &str) -> Result<(), String> {
    match rt.name_rule {
        NameRule::Label => dns_label(name),
        NameRule::Subdomain => dns_subdomain(name),
        NameRule::PathSegment => {
            if name == "." || name == ".." {
                Err(format!("may not be '{name}'"))
            } else if let Some(c) = ['/', '%'].into_iter().find(|c| name.contains(*c)) {
                Err(format!("may not contain '{c}'"))
            } else {
                Ok(())
            }
        }
    }
}

fn label_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// `validation.IsDNS1123Label`.
pub(crate) fn dns_label(s: &str) -> Result<(), String> {
    if label_ok(s) {
        Ok(())
    } else {
        Err("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".into())
    }
}

/// `validation.IsDNS1123Subdomain`.
pub(crate) fn dns_subdomain(s: &str) -> Result<(), String> {
    if s.len() <= 253 && s.split('.').all(label_ok) {
        Ok(())
    } else {
        Err("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(dns_label("a-1").is_ok());
        assert!(dns_label("A").is_err());
        assert!(dns_label("a.b").is_err());
        assert!(dns_subdomain("a.b-c").is_ok());
        assert!(dns_subdomain("a..b").is_err());
        assert!(dns_subdomain("-a").is_err());
        assert!(validate_name(&CLUSTERROLES, "system:view").is_ok());
        assert!(validate_name(&CLUSTERROLES, "a/b").is_err());
        assert_eq!(lookup("", "v1", "pods"), Some(&PODS));
        assert_eq!(
            by_kind("rbac.authorization.k8s.io/v1", "Role"),
            Some(&ROLES)
        );
        assert_eq!(by_kind("v1", "Role"), None);
    }
}
