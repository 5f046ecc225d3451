//! HTTP headers on the tunnel: `map<string, prototool.Values>` keyed by Go's canonical header names
//! (a real agentk looks headers up with Go's `http.Header.Get`, which expects them), hop-by-hop
//! removal as a proxy must do (RFC 9110 §7.6.1), and `Via`.

use std::collections::HashMap;

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::proto::prototool::Values;

/// Headers as carried by prototool.HttpRequest/HttpResponse.
pub type HeaderValues = HashMap<String, Values>;

/// `content-type` → `Content-Type`, as Go's `textproto.CanonicalMIMEHeaderKey`.
pub fn canonical(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() });
        upper = c == '-';
    }
    out
}

/// Is this header an HTTP/1 connection-level one that a proxy must not forward?
pub fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "proxy-connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// Is this request an HTTP/1.1 upgrade (exec, attach, port-forward)?
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(http::header::UPGRADE)
        && headers
            .get_all(http::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Removes hop-by-hop headers and those named in `Connection`. For upgrades, `Upgrade` is kept and
/// `Connection: upgrade` set, so the next hop upgrades too.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let upgrade = is_upgrade(headers);
    let upgrade_value = headers.get(http::header::UPGRADE).cloned();
    let listed: Vec<String> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|t| t.trim().to_ascii_lowercase()))
        .filter(|t| !t.is_empty())
        .collect();
    for name in listed {
        headers.remove(name.as_str());
    }
    let hop: Vec<HeaderName> = headers.keys().filter(|k| is_hop_by_hop(k.as_str())).cloned().collect();
    for k in hop {
        headers.remove(k);
    }
    if upgrade && let Some(u) = upgrade_value {
        headers.insert(http::header::UPGRADE, u);
        headers.insert(http::header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Converts a header map to tunnel form, values in order per key.
pub fn to_values(headers: &HeaderMap) -> HeaderValues {
    let mut out = HeaderValues::new();
    for (k, v) in headers {
        if let Ok(v) = v.to_str() {
            out.entry(canonical(k.as_str())).or_default().value.push(v.to_owned());
        }
    }
    out
}

/// Why tunnel headers could not become an HTTP header map.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("invalid header name {0:?}")]
    Name(String),
    #[error("invalid value for header {0:?}")]
    Value(String),
}

/// Converts tunnel headers back, in sorted key order (never hash order).
pub fn from_values(values: &HeaderValues) -> Result<HeaderMap, HeaderError> {
    let mut keys: Vec<&String> = values.keys().collect();
    keys.sort();
    let mut out = HeaderMap::new();
    for k in keys {
        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| HeaderError::Name(k.clone()))?;
        for v in &values[k].value {
            out.append(name.clone(), HeaderValue::from_str(v).map_err(|_| HeaderError::Value(k.clone()))?);
        }
    }
    Ok(out)
}

/// Appends a `Via` entry.
pub fn append_via(headers: &mut HeaderMap, via: &str) {
    if let Ok(v) = HeaderValue::from_str(via) {
        headers.append(http::header::VIA, v);
    }
}

/// Query parameters in tunnel form (`map<string, Values>`), order kept per key.
pub fn query_to_values(query: Option<&str>) -> HeaderValues {
    let mut out = HeaderValues::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = urlencoding::decode(&k.replace('+', " ")).map(|c| c.into_owned()).unwrap_or_else(|_| k.to_owned());
        let v = urlencoding::decode(&v.replace('+', " ")).map(|c| c.into_owned()).unwrap_or_else(|_| v.to_owned());
        out.entry(k).or_default().value.push(v);
    }
    out
}

/// Renders tunnel query parameters, keys sorted (Go's `url.Values.Encode` sorts keys too).
pub fn values_to_query(values: &HeaderValues) -> String {
    let mut keys: Vec<&String> = values.keys().collect();
    keys.sort();
    let mut parts = Vec::new();
    for k in keys {
        for v in &values[k].value {
            parts.push(format!("{}={}", urlencoding::encode(k), urlencoding::encode(v)));
        }
    }
    parts.join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_names_like_go() {
        assert_eq!(canonical("content-type"), "Content-Type");
        assert_eq!(canonical("impersonate-extra-agent.gitlab.com%2fid"), "Impersonate-Extra-Agent.gitlab.com%2fid");
        assert_eq!(canonical("x-csrf-token"), "X-Csrf-Token");
    }

    #[test]
    fn hop_by_hop_headers_are_removed_but_upgrades_survive() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("keep-alive, X-Secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("accept", HeaderValue::from_static("application/json"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("accept"));
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("Upgrade"));
        h.insert("upgrade", HeaderValue::from_static("SPDY/3.1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.get("upgrade").unwrap(), "SPDY/3.1");
        assert_eq!(h.get("connection").unwrap(), "upgrade");
    }

    #[test]
    fn queries_round_trip() {
        let v = query_to_values(Some("watch=true&labelSelector=a%3Db&x=1&x=2"));
        assert_eq!(v["labelSelector"].value, ["a=b"]);
        assert_eq!(values_to_query(&v), "labelSelector=a%3Db&watch=true&x=1&x=2");
    }
}
