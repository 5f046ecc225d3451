//! REST handlers for stored resources: get, list, watch, create, update,
//! patch, delete and deletecollection.
//!
//! ## Differences from a real API server
//! * Request bodies may be JSON or YAML; protobuf is answered with 415.
//! * `limit`/`continue` are ignored: lists always return everything.
//! * List items carry no `kind`/`apiVersion`, like upstream's JSON lists.
//! * DELETE answers with the deleted object for pods, serviceaccounts and
//!   namespaces, and with a `Success` Status otherwise (upstream's
//!   `ReturnDeletedObject` varies per resource in the same spirit);
//!   `gracePeriodSeconds`, `propagationPolicy` and `dryRun` are ignored,
//!   `preconditions` are honoured.
//! * Subresources (`status`, `exec`, `log`, …) are not served: 404 after
//!   authorization; the one exception is `serviceaccounts/token` (see
//!   `token_request`).
//! * `Accept` is not negotiated: responses are always JSON (no protobuf, no
//!   `as=Table`), which clients that also accept JSON handle.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode, header};
use serde_json::{Value, json};

use crate::BoxBody;
use crate::patch::{self, PatchType};
use crate::request_info::{self, Query, RequestAttributes};
use crate::resources::{self, ResourceType};
use crate::selector::{FieldSelector, LabelSelector};
use crate::server::Shared;
use crate::status::{ApiError, json_response, success_delete};
use crate::watch::{self, Filter};

/// A successful JSON response.
pub(crate) fn ok_json(status: StatusCode, v: &Value) -> Response<BoxBody> {
    json_response(status, serde_json::to_vec(v).unwrap_or_default())
}

/// Parses a JSON or YAML body, honouring `Content-Type`.
pub(crate) fn decode_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, ApiError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json");
    let media = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let v: Value = match media.as_str() {
        "" | "application/json" | "*/*" => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}")))?,
        "application/yaml" => serde_yaml_ng::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {e}")))?,
        _ => {
            return Err(ApiError::unsupported_media_type("application/json, application/yaml"));
        }
    };
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "couldn't get version/kind; json parse error: json: cannot unmarshal into Go value of type struct",
        ));
    }
    Ok(v)
}

fn strip_type_meta(mut v: Value) -> Value {
    if let Some(m) = v.as_object_mut() {
        m.remove("kind");
        m.remove("apiVersion");
    }
    v
}

fn list_json(rt: &ResourceType, rv: u64, items: Vec<Value>) -> Value {
    json!({
        "kind": format!("{}List", rt.kind),
        "apiVersion": rt.api_version(),
        "metadata": {"resourceVersion": rv.to_string()},
        "items": items.into_iter().map(strip_type_meta).collect::<Vec<_>>(),
    })
}

fn filter_from(rt: &'static ResourceType, ns: &str, query: &Query) -> Result<Filter, ApiError> {
    let labels = LabelSelector::parse(query.get("labelSelector").map(String::as_str).unwrap_or(""))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let fields = FieldSelector::parse(query.get("fieldSelector").map(String::as_str).unwrap_or(""))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(Filter { rt, namespace: (rt.namespaced && !ns.is_empty()).then(|| ns.to_string()), labels, fields })
}

fn parse_rv(s: &str) -> Result<u64, ApiError> {
    s.parse::<u64>().map_err(|_| ApiError::bad_request(format!("invalid resource version: {s:?}")))
}

/// Serves a resource request that has already been authorized.
pub(crate) fn serve(
    shared: &Arc<Shared>,
    headers: &HeaderMap,
    attrs: &RequestAttributes,
    query: &Query,
    body: &Bytes,
) -> Result<Response<BoxBody>, ApiError> {
    let rt = resources::lookup(&attrs.api_group, &attrs.api_version, &attrs.resource)
        .ok_or_else(ApiError::path_not_found)?;
    let ns = attrs.namespace.as_str();
    let named = attrs.parts.len() == 2;
    if attrs.parts.len() > 2 || attrs.parts.is_empty() {
        return Err(ApiError::path_not_found());
    }
    // A cluster-scoped resource under /namespaces/{ns}/ does not exist;
    // the namespaces resource itself carries its own name as namespace.
    if !rt.namespaced && !ns.is_empty() && rt != &resources::NAMESPACES {
        return Err(ApiError::path_not_found());
    }
    // Named namespaced objects only exist under /namespaces/{ns}/.
    if rt.namespaced && ns.is_empty() && named {
        return Err(ApiError::path_not_found());
    }
    let name = if named { attrs.parts[1].as_str() } else { "" };
    match (attrs.verb.as_str(), named) {
        ("get", true) => {
            let obj = shared.lock().get(rt, ns, name)?.clone();
            Ok(ok_json(StatusCode::OK, &obj))
        }
        ("list", false) => {
            let filter = filter_from(rt, ns, query)?;
            let store = shared.lock();
            let items: Vec<Value> =
                store.list(rt, filter.namespace.as_deref()).filter(|o| filter.matches(o)).cloned().collect();
            Ok(ok_json(StatusCode::OK, &list_json(rt, store.resource_version(), items)))
        }
        ("watch", _) => {
            let mut filter = filter_from(rt, ns, query)?;
            if named {
                filter.fields = FieldSelector::parse(&format!("metadata.name={name}"))
                    .map_err(|e| ApiError::bad_request(e.to_string()))?;
            }
            let initial_events = query
                .get("sendInitialEvents")
                .map(|v| {
                    request_info::parse_bool(v)
                        .ok_or_else(|| ApiError::bad_request(format!("invalid sendInitialEvents: {v:?}")))
                })
                .transpose()?
                .unwrap_or(false);
            let start = match query.get("resourceVersion").map(String::as_str) {
                _ if initial_events => watch::Start::Now { bookmark: true },
                None | Some("") | Some("0") => watch::Start::Now { bookmark: false },
                Some(rv) => watch::Start::After(parse_rv(rv)?),
            };
            // Upstream treats 0 like an absent timeout.
            let timeout = match query.get("timeoutSeconds").map(|t| (t, t.parse::<u64>())) {
                None | Some((_, Ok(0))) => watch::DEFAULT_TIMEOUT,
                Some((_, Ok(secs))) => Duration::from_secs(secs),
                Some((t, Err(_))) => {
                    return Err(ApiError::bad_request(format!("invalid timeoutSeconds: {t:?}")));
                }
            };
            Ok(watch::start(shared.clone(), filter, start, timeout))
        }
        // Namespaced kinds are created under /namespaces/{ns}/ only.
        ("create", false) if !rt.namespaced || !ns.is_empty() => {
            let obj = decode_body(headers, body)?;
            let created = shared.mutate(|s| s.create(rt, ns, obj))?;
            Ok(ok_json(StatusCode::CREATED, &created))
        }
        ("update", true) => {
            let obj = decode_body(headers, body)?;
            let (obj, created) = shared.mutate(|s| s.update(rt, ns, name, obj))?;
            let code = if created { StatusCode::CREATED } else { StatusCode::OK };
            Ok(ok_json(code, &obj))
        }
        ("patch", true) => {
            let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
            let ty =
                PatchType::from_content_type(ct).ok_or_else(|| ApiError::unsupported_media_type(patch::ACCEPTED))?;
            let obj = shared.mutate(|s| {
                let mut doc = s.get(rt, ns, name)?.clone();
                patch::apply(ty, &mut doc, body).map_err(|e| ApiError::bad_request(e.to_string()))?;
                let (obj, _) = s.update(rt, ns, name, doc)?;
                Ok::<_, ApiError>(obj)
            })?;
            Ok(ok_json(StatusCode::OK, &obj))
        }
        ("delete", true) => {
            let opts: Value = if body.is_empty() { Value::Null } else { decode_body(headers, body)? };
            let deleted = shared.mutate(|s| {
                let current = s.get(rt, ns, name)?;
                check_preconditions(rt, name, current, &opts)?;
                Ok::<_, ApiError>(s.delete(rt, ns, name)?)
            })?;
            if rt.returns_deleted_object {
                Ok(ok_json(StatusCode::OK, &deleted))
            } else {
                let uid = deleted.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("");
                Ok(ok_json(StatusCode::OK, &success_delete(rt, name, uid)))
            }
        }
        // As upstream, collections are deleted per namespace only.
        ("deletecollection", false) if rt != &resources::NAMESPACES && (!rt.namespaced || !ns.is_empty()) => {
            let filter = filter_from(rt, ns, query)?;
            let (rv, items) = shared.mutate(|s| {
                let names: Vec<(String, String)> = s
                    .list(rt, filter.namespace.as_deref())
                    .filter(|o| filter.matches(o))
                    .map(|o| {
                        let m = |f: &str| o.pointer(f).and_then(Value::as_str).unwrap_or("").to_string();
                        (m("/metadata/namespace"), m("/metadata/name"))
                    })
                    .collect();
                let items: Vec<Value> = names.iter().filter_map(|(n, o)| s.delete(rt, n, o).ok()).collect();
                (s.resource_version(), items)
            });
            Ok(ok_json(StatusCode::OK, &list_json(rt, rv, items)))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn check_preconditions(rt: &ResourceType, name: &str, current: &Value, opts: &Value) -> Result<(), ApiError> {
    let Some(pre) = opts.get("preconditions") else {
        return Ok(());
    };
    for (field, label) in [("uid", "UID"), ("resourceVersion", "ResourceVersion")] {
        let Some(want) = pre.get(field).and_then(Value::as_str) else {
            continue;
        };
        let have = current.pointer(&format!("/metadata/{field}")).and_then(Value::as_str).unwrap_or("");
        if want != have {
            return Err(ApiError::conflict_because(
                rt,
                name,
                &format!("Precondition failed: {label} in precondition: {want}, {label} in object meta: {have}"),
            ));
        }
    }
    Ok(())
}
