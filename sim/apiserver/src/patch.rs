//! PATCH bodies: JSON merge patch (RFC 7386) and JSON patch (RFC 6902).
//!
//! ## Differences from a real API server
//! * `application/strategic-merge-patch+json` is applied as a JSON merge
//!   patch: lists are replaced wholesale instead of merged by their patch
//!   merge keys, and `$patch`/`$retainKeys` directives are not interpreted.
//! * Server-side apply (`application/apply-patch+yaml`) is not modelled and
//!   answered with 415.

use serde_json::Value;

/// Patch formats the model accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchType {
    Merge,
    StrategicMerge,
    Json,
}

/// Media types listed in the 415 answer.
pub(crate) const ACCEPTED: &str = "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json";

impl PatchType {
    pub fn from_content_type(ct: &str) -> Option<Self> {
        match ct.split(';').next().unwrap_or("").trim() {
            "application/merge-patch+json" => Some(Self::Merge),
            "application/strategic-merge-patch+json" => Some(Self::StrategicMerge),
            "application/json-patch+json" => Some(Self::Json),
            _ => None,
        }
    }
}

/// Why a patch could not be applied; rendered as 400 (422 for JSON-patch
/// `test` failures upstream is also a 4xx, kept as 400 here).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PatchError {
    #[error("error decoding patch: {0}")]
    Decode(String),
    #[error("the server rejected our request due to an error in our request")]
    Shape,
    #[error("doc is missing path: {0:?}: missing value")]
    MissingPath(String),
    #[error("testing value {0:?} failed: test failed")]
    TestFailed(String),
    #[error("Unexpected kind: {0}")]
    UnknownOp(String),
}

/// RFC 7386.
pub(crate) fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// Splits a JSON pointer into (parent pointer, last token).
fn split(path: &str) -> Option<(String, String)> {
    let idx = path.rfind('/')?;
    Some((path[..idx].to_string(), unescape(&path[idx + 1..])))
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), PatchError> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = split(path).ok_or_else(|| PatchError::MissingPath(path.into()))?;
    match doc.pointer_mut(&parent) {
        Some(Value::Object(m)) => {
            m.insert(last, value);
            Ok(())
        }
        Some(Value::Array(a)) => {
            let i = if last == "-" {
                a.len()
            } else {
                last.parse()
                    .map_err(|_| PatchError::MissingPath(path.into()))?
            };
            if i > a.len() {
                return Err(PatchError::MissingPath(path.into()));
            }
            a.insert(i, value);
            Ok(())
        }
        _ => Err(PatchError::MissingPath(path.into())),
    }
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, PatchError> {
    let (parent, last) = split(path).ok_or_else(|| PatchError::MissingPath(path.into()))?;
    match doc.pointer_mut(&parent) {
        Some(Value::Object(m)) => m
            .remove(&last)
            .ok_or_else(|| PatchError::MissingPath(path.into())),
        Some(Value::Array(a)) => match last.parse::<usize>() {
            Ok(i) if i < a.len() => Ok(a.remove(i)),
            _ => Err(PatchError::MissingPath(path.into())),
        },
        _ => Err(PatchError::MissingPath(path.into())),
    }
}

/// RFC 6902.
pub(crate) fn json_patch(doc: &mut Value, ops: &Value) -> Result<(), PatchError> {
    let ops = ops.as_array().ok_or(PatchError::Shape)?;
    for op in ops {
        let kind = op
            .get("op")
            .and_then(Value::as_str)
            .ok_or(PatchError::Shape)?;
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or(PatchError::Shape)?;
        let value = || op.get("value").cloned().ok_or(PatchError::Shape);
        let from = || {
            op.get("from")
                .and_then(Value::as_str)
                .ok_or(PatchError::Shape)
        };
        match kind {
            "add" => add(doc, path, value()?)?,
            "remove" => {
                remove(doc, path)?;
            }
            "replace" => {
                remove(doc, path)?;
                add(doc, path, value()?)?;
            }
            "test" => {
                if doc.pointer(path) != Some(&value()?) {
                    return Err(PatchError::TestFailed(path.into()));
                }
            }
            "move" => {
                let v = remove(doc, from()?)?;
                add(doc, path, v)?;
            }
            "copy" => {
                let v = doc
                    .pointer(from()?)
                    .cloned()
                    .ok_or_else(|| PatchError::MissingPath(path.into()))?;
                add(doc, path, v)?;
            }
            other => return Err(PatchError::UnknownOp(other.into())),
        }
    }
    Ok(())
}

/// Applies `body` of type `ty` to `doc`.
pub(crate) fn apply(ty: PatchType, doc: &mut Value, body: &[u8]) -> Result<(), PatchError> {
    let patch: Value =
        serde_json::from_slice(body).map_err(|e| PatchError::Decode(e.to_string()))?;
    match ty {
        PatchType::Merge | PatchType::StrategicMerge => {
            if !patch.is_object() {
                return Err(PatchError::Shape);
            }
            merge(doc, &patch);
            Ok(())
        }
        PatchType::Json => json_patch(doc, &patch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_rfc7386_examples() {
        let mut d = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge(&mut d, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(d, json!({"a": "z", "c": {"d": "e"}}));
        let mut d = json!({"a": [1, 2]});
        merge(&mut d, &json!({"a": [3]}));
        assert_eq!(d, json!({"a": [3]}));
    }

    #[test]
    fn json_patch_ops() {
        let mut d = json!({"a": {"b": 1}, "l": [1, 2]});
        json_patch(
            &mut d,
            &json!([
                {"op": "add", "path": "/a/c", "value": 2},
                {"op": "replace", "path": "/a/b", "value": 3},
                {"op": "add", "path": "/l/-", "value": 9},
                {"op": "remove", "path": "/l/0"},
                {"op": "test", "path": "/a/c", "value": 2},
                {"op": "copy", "from": "/a/c", "path": "/x"},
                {"op": "move", "from": "/x", "path": "/y"},
            ]),
        )
        .unwrap();
        assert_eq!(d, json!({"a": {"b": 3, "c": 2}, "l": [2, 9], "y": 2}));
        assert!(json_patch(&mut d, &json!([{"op": "remove", "path": "/nope"}])).is_err());
        assert!(json_patch(&mut d, &json!([{"op": "test", "path": "/y", "value": 1}])).is_err());
        assert!(json_patch(&mut d, &json!({"op": "add"})).is_err());
        assert!(apply(PatchType::Merge, &mut d, b"[1]").is_err());
        assert!(apply(PatchType::Merge, &mut d, b"{").is_err());
    }
}
