//! The TokenRequest API (`POST /api/v1/namespaces/<ns>/serviceaccounts/<name>/token`), as
//! `kubectl create token` uses it, and authentication with the tokens it issues.
//!
//! A token authenticates as `system:serviceaccount:<ns>:<name>` with the groups
//! `system:serviceaccounts` and `system:serviceaccounts:<ns>`, and the
//! `authentication.kubernetes.io/credential-id` extra (`JTI=<id>`) that 1.30+ servers add for bound
//! service-account tokens. Deleting the service account (or recreating it: a new uid) revokes
//! every token issued for it, as the real token authenticator's uid check does.
//!
//! ## Differences from a real API server
//! * Tokens are opaque deterministic strings, not signed JWTs; `spec.audiences` is echoed but not
//!   enforced; `boundObjectRef` is refused with 422 (nothing to bind to here).
//! * Tokens do not expire: `status.expirationTimestamp` is reported but not enforced (the model has
//!   no wall clock to enforce it against, and runs are shorter than the 10-minute minimum).

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use serde_json::{Value, json};

use crate::BoxBody;
use crate::authn::UserInfo;
use crate::request_info::RequestAttributes;
use crate::resources::SERVICEACCOUNTS;
use crate::rest;
use crate::status::ApiError;
use crate::store::Store;

/// Default `spec.expirationSeconds`, as the real API server (one hour).
const DEFAULT_EXPIRATION_SECS: i64 = 3600;
/// The API server refuses shorter lifetimes.
const MIN_EXPIRATION_SECS: i64 = 600;

/// One issued token: whose it is, and the uid the service account had then.
#[derive(Debug, Clone)]
pub(crate) struct IssuedToken {
    namespace: String,
    name: String,
    uid: String,
    jti: String,
}

/// Tokens issued so far, by token.
#[derive(Debug, Default)]
pub(crate) struct Issued {
    tokens: BTreeMap<String, IssuedToken>,
    counter: u64,
}

/// Whether `a` addresses the TokenRequest subresource.
pub(crate) fn is_token_request(a: &RequestAttributes) -> bool {
    a.resource_request
        && a.api_group.is_empty()
        && a.api_version == "v1"
        && a.resource == "serviceaccounts"
        && a.subresource == "token"
        && !a.namespace.is_empty()
        && !a.name.is_empty()
}

/// Serves a TokenRequest (after authorization of `create serviceaccounts/token`).
pub(crate) fn serve(
    store: &mut Store,
    a: &RequestAttributes,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response<BoxBody>, ApiError> {
    if a.verb != "create" {
        return Err(ApiError::method_not_allowed());
    }
    let sa = store.get(&SERVICEACCOUNTS, &a.namespace, &a.name).map_err(ApiError::from)?;
    let uid = sa["metadata"]["uid"].as_str().unwrap_or_default().to_owned();
    let doc = if body.is_empty() { json!({}) } else { rest::decode_body(headers, body)? };
    let spec = &doc["spec"];
    let invalid = |field: &str, detail: String| {
        ApiError::invalid("TokenRequest", "authentication.k8s.io", &a.name, field, "FieldValueInvalid", detail)
    };
    let expiration = match &spec["expirationSeconds"] {
        Value::Null => DEFAULT_EXPIRATION_SECS,
        v => v
            .as_i64()
            .ok_or_else(|| invalid("spec.expirationSeconds", format!("Invalid value: {v}: must be an integer")))?,
    };
    if expiration < MIN_EXPIRATION_SECS {
        return Err(invalid(
            "spec.expirationSeconds",
            format!("Invalid value: {expiration}: may not specify a duration less than 10 minutes"),
        ));
    }
    if !spec["boundObjectRef"].is_null() {
        return Err(invalid(
            "spec.boundObjectRef",
            "Unsupported value: the model cannot bind tokens to objects".into(),
        ));
    }
    let audiences = match &spec["audiences"] {
        Value::Array(a) if !a.is_empty() => Value::Array(a.clone()),
        _ => json!(["https://kubernetes.default.svc"]),
    };
    let now = store.now();
    let expires = store.timestamp_after(expiration.unsigned_abs());
    let issued = store.issued_tokens();
    issued.counter += 1;
    let n = issued.counter;
    let jti = format!("6b617369-746f-4b00-8000-{n:012x}");
    let token = format!("kasim-sa-token.{n}.{}", uid.replace('-', ""));
    issued.tokens.insert(token.clone(), IssuedToken { namespace: a.namespace.clone(), name: a.name.clone(), uid, jti });
    let out = json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": a.name, "namespace": a.namespace, "creationTimestamp": now},
        "spec": {"audiences": audiences, "expirationSeconds": expiration, "boundObjectRef": null},
        "status": {"token": token, "expirationTimestamp": expires},
    });
    Ok(rest::ok_json(StatusCode::CREATED, &out))
}

/// The service account a token issued here belongs to, if the account still exists with the uid
/// it had when the token was issued. `system:authenticated` is appended by the caller.
pub(crate) fn authenticate(store: &mut Store, token: &str) -> Option<UserInfo> {
    let t = store.issued_tokens().tokens.get(token)?.clone();
    let sa = store.get(&SERVICEACCOUNTS, &t.namespace, &t.name).ok()?;
    if sa["metadata"]["uid"].as_str() != Some(t.uid.as_str()) {
        return None;
    }
    Some(UserInfo {
        username: format!("system:serviceaccount:{}:{}", t.namespace, t.name),
        uid: t.uid.clone(),
        groups: vec!["system:serviceaccounts".into(), format!("system:serviceaccounts:{}", t.namespace)],
        extra: BTreeMap::from([("authentication.kubernetes.io/credential-id".into(), vec![format!("JTI={}", t.jti)])]),
    })
}
