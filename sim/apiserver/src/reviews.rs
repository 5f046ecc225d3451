//! The review APIs: SelfSubjectReview, SelfSubjectAccessReview and
//! SubjectAccessReview. They are virtual resources: nothing is stored.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::authn::UserInfo;
use crate::rbac;
use crate::request_info::RequestAttributes;
use crate::status::ApiError;
use crate::store::Store;

/// Which review a request addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Review {
    SelfSubject,
    SelfSubjectAccess,
    SubjectAccess,
}

impl Review {
    /// The review served at these attributes, if any (collection only).
    pub fn of(a: &RequestAttributes) -> Option<Self> {
        if a.api_version != "v1" || a.parts.len() != 1 || !a.namespace.is_empty() {
            return None;
        }
        match (a.api_group.as_str(), a.resource.as_str()) {
            ("authentication.k8s.io", "selfsubjectreviews") => Some(Self::SelfSubject),
            ("authorization.k8s.io", "selfsubjectaccessreviews") => Some(Self::SelfSubjectAccess),
            ("authorization.k8s.io", "subjectaccessreviews") => Some(Self::SubjectAccess),
            _ => None,
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Self::SelfSubject => "SelfSubjectReview",
            Self::SelfSubjectAccess => "SelfSubjectAccessReview",
            Self::SubjectAccess => "SubjectAccessReview",
        }
    }

    fn group(self) -> &'static str {
        match self {
            Self::SelfSubject => "authentication.k8s.io",
            _ => "authorization.k8s.io",
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceAttributes {
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    verb: String,
    #[serde(default)]
    group: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    resource: String,
    #[serde(default)]
    subresource: String,
    #[serde(default)]
    name: String,
}

#[derive(Debug, Default, Deserialize)]
struct NonResourceAttributes {
    #[serde(default)]
    path: String,
    #[serde(default)]
    verb: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    #[serde(default)]
    resource_attributes: Option<ResourceAttributes>,
    #[serde(default)]
    non_resource_attributes: Option<NonResourceAttributes>,
    #[serde(default)]
    user: String,
    #[serde(default)]
    groups: Option<Vec<String>>,
    #[serde(default)]
    uid: String,
    #[serde(default)]
    extra: Option<std::collections::BTreeMap<String, Vec<String>>>,
}

#[derive(Debug, Default, Deserialize)]
struct ReviewBody {
    #[serde(default)]
    spec: Option<Spec>,
}

/// Answers a review for the (effective) `user`; `body` is already decoded.
pub(crate) fn serve(
    review: Review,
    store: &Store,
    user: &UserInfo,
    body: &Value,
) -> Result<Value, ApiError> {
    let kind = review.kind();
    let api_version = format!("{}/v1", review.group());
    if review == Review::SelfSubject {
        return Ok(json!({
            "kind": kind,
            "apiVersion": api_version,
            "metadata": {"creationTimestamp": null},
            "status": {"userInfo": user},
        }));
    }
    let parsed: ReviewBody = serde_json::from_value(body.clone())
        .map_err(|e| ApiError::bad_request(format!("error decoding {kind}: {e}")))?;
    let spec = parsed.spec.unwrap_or_default();
    let invalid = |field: &str, detail: &str| {
        ApiError::invalid(
            kind,
            review.group(),
            "",
            field,
            "FieldValueInvalid",
            detail.to_string(),
        )
    };
    let attrs = match (&spec.resource_attributes, &spec.non_resource_attributes) {
        (Some(r), None) => RequestAttributes {
            verb: r.verb.clone(),
            resource_request: true,
            api_group: r.group.clone(),
            api_version: r.version.clone(),
            namespace: r.namespace.clone(),
            resource: r.resource.clone(),
            subresource: r.subresource.clone(),
            name: r.name.clone(),
            ..Default::default()
        },
        (None, Some(n)) => RequestAttributes {
            verb: n.verb.clone(),
            path: n.path.clone(),
            ..Default::default()
        },
        _ => {
            return Err(invalid(
                "spec.resourceAttributes",
                "Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified",
            ));
        }
    };
    let subject = if review == Review::SubjectAccess {
        let groups = spec.groups.clone().unwrap_or_default();
        if spec.user.is_empty() && groups.is_empty() {
            return Err(invalid(
                "spec.user",
                "Invalid value: \"\": at least one of user or group must be specified",
            ));
        }
        UserInfo {
            username: spec.user.clone(),
            uid: spec.uid.clone(),
            groups,
            extra: spec.extra.clone().unwrap_or_default(),
        }
    } else {
        user.clone()
    };
    let decision = rbac::authorize(store, &subject, &attrs);
    let mut status = json!({"allowed": decision.allowed});
    if !decision.reason.is_empty()
        && let Some(m) = status.as_object_mut()
    {
        m.insert("reason".into(), decision.reason.into());
    }
    let mut out_spec = body.get("spec").cloned().unwrap_or_else(|| json!({}));
    if review == Review::SelfSubjectAccess
        && let Some(m) = out_spec.as_object_mut()
    {
        // Upstream echoes the spec; a self review carries no user fields.
        for f in ["user", "groups", "uid", "extra"] {
            m.remove(f);
        }
    }
    Ok(json!({
        "kind": kind,
        "apiVersion": api_version,
        "metadata": {"creationTimestamp": null},
        "spec": out_spec,
        "status": status,
    }))
}
