//! CORS for browser clients (the GitLab UI): only GitLab's own external URL may be an `Origin`.

use http::{HeaderMap, HeaderValue};

/// Methods announced on preflight, verbatim from upstream.
pub const ALLOWED_METHODS: &str = "GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH";
/// Preflight cache lifetime, seconds.
pub const MAX_AGE: &str = "86400";

/// What to do about a request's `Origin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// No `Origin` header: not a browser CORS request.
    None,
    /// The allowed origin, echoed back.
    Allowed(HeaderValue),
    /// Any other origin: bare 403.
    Denied,
}

pub fn check(headers: &HeaderMap, external_url: Option<&str>) -> Origin {
    let Some(origin) = headers.get(http::header::ORIGIN) else { return Origin::None };
    match external_url {
        Some(url) if origin.as_bytes() == url.trim_end_matches('/').as_bytes() => Origin::Allowed(origin.clone()),
        _ => Origin::Denied,
    }
}

/// Adds the CORS response headers for an allowed origin, merging `Vary`.
pub fn decorate(headers: &mut HeaderMap, origin: &HeaderValue) {
    headers.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    headers.insert(http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    merge_vary(headers, "Origin");
}

/// Adds `token` to `Vary` unless already listed.
pub fn merge_vary(headers: &mut HeaderMap, token: &str) {
    let present = headers
        .get_all(http::header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token));
    if !present && let Ok(v) = HeaderValue::from_str(token) {
        headers.append(http::header::VARY, v);
    }
}

/// The local answer to a preflight `OPTIONS`.
pub fn preflight(request: &HeaderMap, origin: &HeaderValue) -> HeaderMap {
    let mut h = HeaderMap::new();
    decorate(&mut h, origin);
    if let Some(req_headers) = request.get(http::header::ACCESS_CONTROL_REQUEST_HEADERS) {
        h.insert(http::header::ACCESS_CONTROL_ALLOW_HEADERS, req_headers.clone());
    }
    h.insert(http::header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(ALLOWED_METHODS));
    h.insert(http::header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(MAX_AGE));
    h
}

/// Drops the upstream's own CORS headers: kas decides CORS.
pub fn strip_upstream(headers: &mut HeaderMap) {
    let names: Vec<_> = headers.keys().filter(|k| k.as_str().starts_with("access-control-")).cloned().collect();
    for n in names {
        headers.remove(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_rules() {
        let mut h = HeaderMap::new();
        assert_eq!(check(&h, Some("https://gitlab.example")), Origin::None);
        h.insert(http::header::ORIGIN, HeaderValue::from_static("https://gitlab.example"));
        assert!(matches!(check(&h, Some("https://gitlab.example/")), Origin::Allowed(_)));
        assert_eq!(check(&h, Some("https://other.example")), Origin::Denied);
        assert_eq!(check(&h, None), Origin::Denied);
    }

    #[test]
    fn preflight_and_vary_merge() {
        let mut req = HeaderMap::new();
        req.insert(
            http::header::ACCESS_CONTROL_REQUEST_HEADERS,
            HeaderValue::from_static("x-csrf-token, content-type"),
        );
        let o = HeaderValue::from_static("https://gitlab.example");
        let h = preflight(&req, &o);
        assert_eq!(h["access-control-allow-headers"], "x-csrf-token, content-type");
        assert_eq!(h["access-control-allow-methods"], ALLOWED_METHODS);
        assert_eq!(h["access-control-max-age"], "86400");
        assert_eq!(h["vary"], "Origin");
        let mut resp = HeaderMap::new();
        resp.insert(http::header::VARY, HeaderValue::from_static("Accept-Encoding, origin"));
        resp.insert("access-control-allow-origin", HeaderValue::from_static("*"));
        strip_upstream(&mut resp);
        decorate(&mut resp, &o);
        assert_eq!(resp.get_all(http::header::VARY).iter().count(), 1, "already listed");
        assert_eq!(resp["access-control-allow-origin"], "https://gitlab.example");
    }
}
