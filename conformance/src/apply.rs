//! Fixtures go in with server-side apply, as `kubectl apply --server-side` would, under kasim's
//! field manager. The one fallback: a server that answers apply with **415** (the API server model
//! does; a real one never does) gets create-or-replace instead, and the outcome says so. Any other
//! error is an error.

use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::Scope;
use serde_json::Value;

/// The field manager of everything kasim applies.
pub const FIELD_MANAGER: &str = "kasim-conformance";

/// How an object ended up in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyMode {
    /// Server-side apply.
    ServerSide,
    /// The server answered server-side apply with 415 Unsupported Media Type; the object was
    /// created, or replaced if it existed.
    CreateOrReplaceAfter415,
}

/// What was applied; cluster-scoped objects are remembered for cleanup.
#[derive(Debug, Clone)]
pub struct Applied {
    pub resource: ApiResource,
    pub namespace: Option<String>,
    pub name: String,
    pub mode: ApplyMode,
}

/// Why a fixture could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("fixture YAML: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    #[error("fixture document {index}: {reason}")]
    Invalid { index: usize, reason: String },
    #[error("fixture {kind}/{name}: namespace {found:?} is outside the run namespace {run:?}")]
    ForeignNamespace { kind: String, name: String, found: String, run: String },
    #[error("discovery of {0}: {1}")]
    Discovery(String, Box<kube::Error>),
    #[error("{verb} {kind}/{name}: {source}")]
    Api { verb: &'static str, kind: String, name: String, source: Box<kube::Error> },
}

/// Parses a multi-document YAML stream, skipping empty documents.
pub fn parse_documents(yaml: &str) -> Result<Vec<Value>, serde_yaml_ng::Error> {
    use serde::Deserialize;
    let mut out = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(yaml) {
        let v = Value::deserialize(doc)?;
        if !v.is_null() {
            out.push(v);
        }
    }
    Ok(out)
}

fn gvk_of(index: usize, obj: &Value) -> Result<(GroupVersionKind, String), ApplyError> {
    let invalid = |reason: &str| ApplyError::Invalid { index, reason: reason.to_owned() };
    let api_version = obj["apiVersion"].as_str().ok_or_else(|| invalid("no apiVersion"))?;
    let kind = obj["kind"].as_str().ok_or_else(|| invalid("no kind"))?;
    let name = obj["metadata"]["name"].as_str().ok_or_else(|| invalid("no metadata.name"))?;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    Ok((GroupVersionKind::gvk(group, version, kind), name.to_owned()))
}

/// Applies `objects`; namespaced ones land in `namespace` (an object naming another namespace is
/// refused: a run must not touch what it does not own).
pub async fn apply_all(client: &kube::Client, namespace: &str, objects: &[Value]) -> Result<Vec<Applied>, ApplyError> {
    let mut applied = Vec::new();
    for (index, obj) in objects.iter().enumerate() {
        applied.push(apply_one(client, namespace, index, obj.clone()).await?);
    }
    Ok(applied)
}

async fn apply_one(client: &kube::Client, run_ns: &str, index: usize, mut obj: Value) -> Result<Applied, ApplyError> {
    let (gvk, name) = gvk_of(index, &obj)?;
    let kind = gvk.kind.clone();
    let (resource, caps) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .map_err(|e| ApplyError::Discovery(format!("{}/{}", gvk.api_version(), gvk.kind), Box::new(e)))?;
    let namespace = match caps.scope {
        Scope::Cluster => None,
        Scope::Namespaced => {
            match obj["metadata"]["namespace"].as_str() {
                Some(ns) if ns != run_ns => {
                    return Err(ApplyError::ForeignNamespace {
                        kind,
                        name,
                        found: ns.to_owned(),
                        run: run_ns.to_owned(),
                    });
                }
                _ => {}
            }
            obj["metadata"]["namespace"] = Value::String(run_ns.to_owned());
            Some(run_ns.to_owned())
        }
    };
    let api: Api<DynamicObject> = match &namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let api_err =
        |verb, source| ApplyError::Api { verb, kind: kind.clone(), name: name.clone(), source: Box::new(source) };
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mode = match api.patch(&name, &params, &Patch::Apply(&obj)).await {
        Ok(_) => ApplyMode::ServerSide,
        Err(kube::Error::Api(s)) if s.code == 415 => {
            create_or_replace(&api, &name, obj).await.map_err(|(verb, e)| api_err(verb, e))?;
            ApplyMode::CreateOrReplaceAfter415
        }
        Err(e) => return Err(api_err("apply", e)),
    };
    Ok(Applied { resource, namespace, name, mode })
}

async fn create_or_replace(
    api: &Api<DynamicObject>,
    name: &str,
    obj: Value,
) -> Result<(), (&'static str, kube::Error)> {
    let dynamic: DynamicObject = serde_json::from_value(obj).map_err(|e| ("decode", kube::Error::SerdeError(e)))?;
    let pp = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    match api.create(&pp, &dynamic).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let current = api.get(name).await.map_err(|e| ("get", e))?;
            let mut dynamic = dynamic;
            dynamic.metadata.resource_version = current.metadata.resource_version;
            api.replace(name, &pp, &dynamic).await.map(|_| ()).map_err(|e| ("replace", e))
        }
        Err(e) => Err(("create", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_split_and_checked() {
        let docs = parse_documents("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: r}\n").unwrap();
        assert_eq!(docs.len(), 2);
        let (gvk, name) = gvk_of(1, &docs[1]).unwrap();
        assert_eq!(
            (gvk.group.as_str(), gvk.version.as_str(), gvk.kind.as_str(), name.as_str()),
            ("rbac.authorization.k8s.io", "v1", "Role", "r")
        );
        let err = gvk_of(3, &serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {}})).unwrap_err();
        assert_eq!(err.to_string(), "fixture document 3: no metadata.name");
        assert!(parse_documents("a: [").is_err());
    }
}
