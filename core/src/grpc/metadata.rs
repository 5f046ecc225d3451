//! Mapping between HTTP/2 header maps and the tunnel's `map<string, prototool.Values>`.
//!
//! Reserved gRPC/HTTP headers (pseudo headers, `content-type`, `te`, `grpc-*` status and encoding
//! keys) are transport concerns of each hop and never travel inside the tunnel. Binary (`-bin`)
//! values travel in their base64 text form, because proto3 `string` must be UTF-8; upstream Go puts
//! the decoded bytes there. This only matters for binary metadata, which no agent module uses.

use std::collections::HashMap;

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::proto::prototool::Values;

/// Tunnel metadata as carried on the wire.
pub type Meta = HashMap<String, Values>;

/// Headers owned by the gRPC/HTTP transport of one hop.
fn is_reserved(name: &str) -> bool {
    matches!(
        name,
        "content-type"
            | "te"
            | "host"
            | "connection"
            | "user-agent"
            | "content-length"
            | "grpc-status"
            | "grpc-message"
            | "grpc-status-details-bin"
            | "grpc-encoding"
            | "grpc-accept-encoding"
            | "grpc-timeout"
    ) || name.starts_with(':')
}

/// Why tunnel metadata could not become HTTP headers.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("invalid metadata key {0:?}")]
    Key(String),
    #[error("invalid value for metadata key {0:?}")]
    Value(String),
}

/// Converts headers to tunnel metadata, dropping reserved keys and keeping value order per key.
pub fn from_headers(headers: &HeaderMap) -> Meta {
    let mut meta = Meta::new();
    for (name, value) in headers {
        let name = name.as_str();
        if is_reserved(name) {
            continue;
        }
        let Ok(v) = value.to_str() else { continue };
        meta.entry(name.to_owned()).or_default().value.push(v.to_owned());
    }
    meta
}

/// Appends tunnel metadata to `headers`, validating keys and values from the peer.
/// Keys are applied in sorted order so the result never depends on HashMap iteration.
pub fn append_to_headers(meta: &Meta, headers: &mut HeaderMap) -> Result<(), MetadataError> {
    let mut keys: Vec<&String> = meta.keys().collect();
    keys.sort();
    for key in keys {
        let lower = key.to_ascii_lowercase();
        if is_reserved(&lower) {
            continue;
        }
        let name = HeaderName::from_bytes(lower.as_bytes()).map_err(|_| MetadataError::Key(key.clone()))?;
        for v in &meta[key].value {
            let value = HeaderValue::from_str(v).map_err(|_| MetadataError::Value(key.clone()))?;
            headers.append(name.clone(), value);
        }
    }
    Ok(())
}

/// Builds metadata from `(key, value)` pairs (test and routing helper).
pub fn meta_from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Meta {
    let mut meta = Meta::new();
    for (k, v) in pairs {
        meta.entry(k.to_owned()).or_default().value.push(v.to_owned());
    }
    meta
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_headers_stay_on_their_hop_and_order_is_kept() {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("application/grpc"));
        h.insert("grpc-timeout", HeaderValue::from_static("1S"));
        h.append("x-a", HeaderValue::from_static("1"));
        h.append("x-a", HeaderValue::from_static("2"));
        let meta = from_headers(&h);
        assert_eq!(meta.len(), 1);
        assert_eq!(meta["x-a"].value, vec!["1", "2"]);
        let mut back = HeaderMap::new();
        append_to_headers(&meta, &mut back).unwrap();
        let vals: Vec<_> = back.get_all("x-a").iter().map(|v| v.to_str().unwrap()).collect();
        assert_eq!(vals, vec!["1", "2"]);
    }

    #[test]
    fn bad_keys_and_values_from_a_peer_are_errors() {
        let meta = meta_from_pairs([("bad key", "v")]);
        assert!(matches!(append_to_headers(&meta, &mut HeaderMap::new()), Err(MetadataError::Key(_))));
        let meta = meta_from_pairs([("k", "a\nb")]);
        assert!(matches!(append_to_headers(&meta, &mut HeaderMap::new()), Err(MetadataError::Value(_))));
    }
}
