//! `metav1.Status` errors, written the way the real API server writes them.
//!
//! Clients (client-go, kubectl, agentk) branch on `reason` and `code` and
//! surface `message` to people, so these are reproduced field by field and in
//! the real field order (Go encodes struct fields in declaration order).

use bytes::Bytes;
use http::{Response, StatusCode, header};
use serde::Serialize;

use crate::BoxBody;
use crate::body::full;
use crate::resources::ResourceType;

/// One `details.causes[]` entry of an `Invalid` status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Cause {
    pub reason: &'static str,
    pub message: String,
    pub field: String,
}

/// `metav1.StatusDetails`; every field is `omitempty` upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Details {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub group: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<Cause>,
}

/// A failed request, as a `Status` object with an HTTP code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub(crate) struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Box<Details>>,
}

/// `schema.GroupResource.String()`: `resource` or `resource.group`.
pub(crate) fn qualified(resource: &str, group: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

fn details(resource: &str, group: &str, name: &str) -> Option<Box<Details>> {
    Some(Box::new(Details {
        name: name.to_string(),
        group: group.to_string(),
        kind: resource.to_string(),
        ..Details::default()
    }))
}

impl ApiError {
    /// 401 as written by the authentication filter.
    pub fn unauthorized() -> Self {
        Self {
            code: 401,
            reason: "Unauthorized",
            message: "Unauthorized".into(),
            details: None,
        }
    }

    /// `apierrors.NewForbidden`.
    pub fn forbidden(resource: &str, group: &str, name: &str, err: &str) -> Self {
        let message = if resource.is_empty() && group.is_empty() {
            format!("forbidden: {err}")
        } else if name.is_empty() {
            format!("{} is forbidden: {err}", qualified(resource, group))
        } else {
            format!(
                "{} {name:?} is forbidden: {err}",
                qualified(resource, group)
            )
        };
        Self {
            code: 403,
            reason: "Forbidden",
            message,
            details: details(resource, group, name),
        }
    }

    /// `apierrors.NewNotFound`.
    pub fn not_found(resource: &str, group: &str, name: &str) -> Self {
        Self {
            code: 404,
            reason: "NotFound",
            message: format!("{} {name:?} not found", qualified(resource, group)),
            details: details(resource, group, name),
        }
    }

    pub fn not_found_rt(rt: &ResourceType, name: &str) -> Self {
        Self::not_found(rt.plural, rt.group, name)
    }

    /// The generic 404 for paths no handler serves.
    pub fn path_not_found() -> Self {
        Self {
            code: 404,
            reason: "NotFound",
            message: "the server could not find the requested resource".into(),
            details: Some(Box::default()),
        }
    }

    /// `apierrors.NewAlreadyExists`.
    pub fn already_exists(rt: &ResourceType, name: &str) -> Self {
        Self {
            code: 409,
            reason: "AlreadyExists",
            message: format!("{} {name:?} already exists", qualified(rt.plural, rt.group)),
            details: details(rt.plural, rt.group, name),
        }
    }

    /// `apierrors.NewConflict` with the storage layer's optimistic-concurrency text.
    pub fn conflict(rt: &ResourceType, name: &str) -> Self {
        Self {
            code: 409,
            reason: "Conflict",
            message: format!(
                "Operation cannot be fulfilled on {} {name:?}: the object has been modified; please apply your changes to the latest version and try again",
                qualified(rt.plural, rt.group)
            ),
            details: details(rt.plural, rt.group, name),
        }
    }

    /// `apierrors.NewBadRequest`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            code: 400,
            reason: "BadRequest",
            message: message.into(),
            details: None,
        }
    }

    /// `apierrors.NewInvalid`: `Kind.group "name" is invalid: field: detail`.
    pub fn invalid(
        kind: &str,
        group: &str,
        name: &str,
        field: &str,
        reason: &'static str,
        detail: String,
    ) -> Self {
        Self {
            code: 422,
            reason: "Invalid",
            message: format!(
                "{} {name:?} is invalid: {field}: {detail}",
                qualified(kind, group)
            ),
            details: Some(Box::new(Details {
                name: name.to_string(),
                group: group.to_string(),
                kind: kind.to_string(),
                causes: vec![Cause {
                    reason,
                    message: detail,
                    field: field.to_string(),
                }],
                ..Details::default()
            })),
        }
    }

    /// `apierrors.NewConflict` with a caller-supplied cause.
    pub fn conflict_because(rt: &ResourceType, name: &str, why: &str) -> Self {
        Self {
            code: 409,
            reason: "Conflict",
            message: format!(
                "Operation cannot be fulfilled on {} {name:?}: {why}",
                qualified(rt.plural, rt.group)
            ),
            details: details(rt.plural, rt.group, name),
        }
    }

    /// go-restful's answer when a route exists but not for this method.
    pub fn method_not_allowed() -> Self {
        Self {
            code: 405,
            reason: "MethodNotAllowed",
            message: "the server does not allow this method on the requested resource".into(),
            details: Some(Box::default()),
        }
    }

    /// 415 for bodies (or patch types) in a media type the endpoint does not accept.
    pub fn unsupported_media_type(accepted: &str) -> Self {
        Self {
            code: 415,
            reason: "UnsupportedMediaType",
            message: format!(
                "the body of the request was in an unknown format - accepted media types include: {accepted}"
            ),
            details: None,
        }
    }

    /// 413 once a body passes the 3 MiB request limit.
    pub fn too_large(limit: usize) -> Self {
        Self {
            code: 413,
            reason: "RequestEntityTooLarge",
            message: format!("Request entity too large: limit is {limit}"),
            details: None,
        }
    }

    /// `apierrors.NewResourceExpired`, used in watch `ERROR` events.
    pub fn expired(message: String) -> Self {
        Self {
            code: 410,
            reason: "Expired",
            message,
            details: None,
        }
    }

    /// The `Status` object as JSON.
    #[cfg(test)]
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(StatusBody::failure(self)).unwrap_or(serde_json::Value::Null)
    }

    /// The `Status` object serialized in upstream field order.
    pub fn to_json_string(&self) -> String {
        serde_json::to_string(&StatusBody::failure(self)).unwrap_or_default()
    }

    /// A complete HTTP response carrying this status.
    pub fn into_response(self) -> Response<BoxBody> {
        let body = serde_json::to_vec(&StatusBody::failure(&self)).unwrap_or_default();
        json_response(
            StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body,
        )
    }
}

#[derive(Serialize)]
struct Empty {}

/// Field order matches `metav1.Status`.
#[derive(Serialize)]
struct StatusBody<'a> {
    kind: &'static str,
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    metadata: Empty,
    status: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    message: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a Details>,
    code: u16,
}

impl<'a> StatusBody<'a> {
    fn failure(e: &'a ApiError) -> Self {
        Self {
            kind: "Status",
            api_version: "v1",
            metadata: Empty {},
            status: "Failure",
            message: &e.message,
            reason: e.reason,
            details: e.details.as_deref(),
            code: e.code,
        }
    }
}

/// The `Status` a successful DELETE returns for resources that do not
/// return the deleted object.
pub(crate) fn success_delete(rt: &ResourceType, name: &str, uid: &str) -> serde_json::Value {
    let d = Details {
        name: name.to_string(),
        group: rt.group.to_string(),
        kind: rt.plural.to_string(),
        uid: uid.to_string(),
        ..Details::default()
    };
    let body = StatusBody {
        kind: "Status",
        api_version: "v1",
        metadata: Empty {},
        status: "Success",
        message: "",
        reason: "",
        details: Some(&d),
        code: 0,
    };
    let mut v = serde_json::to_value(body).unwrap_or(serde_json::Value::Null);
    if let Some(m) = v.as_object_mut() {
        // metav1.Status.Code is omitempty.
        m.remove("code");
    }
    v
}

/// A JSON response with the headers the real server sets on API responses.
pub(crate) fn json_response(status: StatusCode, body: Vec<u8>) -> Response<BoxBody> {
    let mut resp = Response::new(full(Bytes::from(body)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache, private"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_texts_match_upstream() {
        let e = ApiError::forbidden(
            "pods",
            "",
            "",
            r#"User "x" cannot list resource "pods" in API group "" in the namespace "default""#,
        );
        assert_eq!(
            serde_json::to_string(&e.to_json()).unwrap(),
            r#"{"apiVersion":"v1","code":403,"details":{"kind":"pods"},"kind":"Status","message":"pods is forbidden: User \"x\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\"","metadata":{},"reason":"Forbidden","status":"Failure"}"#
        );
        let e = ApiError::forbidden("", "", "", r#"User "x" cannot get path "/version""#);
        assert_eq!(
            e.message,
            r#"forbidden: User "x" cannot get path "/version""#
        );
        assert_eq!(e.details, Some(Box::default()));
        let e = ApiError::forbidden("roles", "rbac.authorization.k8s.io", "r", "E");
        assert_eq!(
            e.message,
            r#"roles.rbac.authorization.k8s.io "r" is forbidden: E"#
        );
    }

    #[test]
    fn status_field_order_is_go_struct_order() {
        let resp = ApiError::unauthorized().into_response();
        assert_eq!(resp.status(), 401);
        assert_eq!(
            ApiError::path_not_found().to_json_string(),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"the server could not find the requested resource","reason":"NotFound","details":{},"code":404}"#
        );
        assert_eq!(
            ApiError::unauthorized().to_json_string(),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#
        );
    }
}
