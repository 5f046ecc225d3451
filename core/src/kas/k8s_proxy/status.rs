//! kas's error responses: Kubernetes `Status` objects, as kubectl and client-go expect them, with the
//! message prefixed "GitLab Agent Server: <status text>: ". Content negotiation: always JSON
//! (kasim does not produce protobuf Status bodies; documented difference).

use bytes::Bytes;
use http::{HeaderValue, StatusCode};

/// Kubernetes' `StatusReason` for an HTTP code, as apimachinery maps them.
pub fn reason(code: StatusCode) -> &'static str {
    match code.as_u16() {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Gone",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "",
    }
}

/// The full message for `code` and `detail`.
pub fn message(code: StatusCode, detail: &str) -> String {
    format!("GitLab Agent Server: {}: {detail}", code.canonical_reason().unwrap_or("Error"))
}

/// A `Status` response. 401s carry `Gitlab-Unauthorized: true` so clients can tell kas's refusals
/// from the cluster's.
pub fn response<B: From<Bytes>>(code: StatusCode, detail: &str) -> http::Response<B> {
    let body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message(code, detail),
        "reason": reason(code),
        "code": code.as_u16(),
    });
    let mut resp = http::Response::new(B::from(Bytes::from(body.to_string())));
    *resp.status_mut() = code;
    resp.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if code == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert("gitlab-unauthorized", HeaderValue::from_static("true"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_body_and_unauthorized_marker() {
        let r: http::Response<Bytes> = response(StatusCode::UNAUTHORIZED, "no valid credentials provided");
        assert_eq!(r.headers()["gitlab-unauthorized"], "true");
        let v: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                "message":"GitLab Agent Server: Unauthorized: no valid credentials provided","reason":"Unauthorized","code":401})
        );
        let r: http::Response<Bytes> = response(StatusCode::FORBIDDEN, "agentId is not allowed");
        assert!(!r.headers().contains_key("gitlab-unauthorized"));
    }
}
