//! The `Gitlab-Kas-Api-Request` JWT (HS256) between kas and GitLab.
//!
//! Implemented by hand on hmac + sha2 + base64url so the simulator controls
//! every check and never reads a wall clock: "now" is always a parameter.
//! Checks follow Rails (`Gitlab::Kas.verify_api_request` on ruby-jwt):
//! algorithm HS256, signature, `iss == gitlab-kas`, `aud` contains `gitlab`,
//! and `exp`/`nbf` **when present** (ruby-jwt does not require them), with no
//! leeway: expired when `exp <= now`, immature when `nbf > now`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// `iss` kas puts in requests to GitLab.
pub const KAS_JWT_ISSUER: &str = "gitlab-kas";
/// `aud` GitLab expects.
pub const KAS_JWT_AUDIENCE: &str = "gitlab";
/// kas (v16) sets `exp = now + 30s`.
pub const KAS_JWT_LIFETIME_SECS: i64 = 30;
/// kas (v16) sets `nbf = now - 5s`.
pub const KAS_JWT_NBF_SKEW_SECS: i64 = 5;

type HmacSha256 = Hmac<Sha256>;

/// Why a JWT was refused. Every variant maps to HTTP 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three dot-separated base64url parts, or bad JSON.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// `alg` is not HS256.
    #[error("unsupported algorithm {0:?}")]
    Algorithm(String),
    /// HMAC mismatch (wrong secret or tampered token).
    #[error("signature verification failed")]
    Signature,
    /// `iss` is not `gitlab-kas`.
    #[error("invalid issuer")]
    Issuer,
    /// `aud` does not contain `gitlab`.
    #[error("invalid audience")]
    Audience,
    /// `exp <= now`.
    #[error("signature has expired")]
    Expired,
    /// `nbf > now`.
    #[error("signature nbf has not been reached")]
    Immature,
}

fn mac(secret: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    match HmacSha256::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC-SHA256 takes any key length"),
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs arbitrary claims with HS256. Tests use it to forge bad tokens.
pub fn sign_hs256(secret: &[u8], claims: &serde_json::Value) -> String {
    let header = b64(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = b64(claims.to_string().as_bytes());
    let signing_input = format!("{header}.{payload}");
    let mut m = mac(secret);
    m.update(signing_input.as_bytes());
    let sig = b64(&m.finalize().into_bytes());
    format!("{signing_input}.{sig}")
}

/// The token kas sends at time `now` (Unix seconds): iss `gitlab-kas`,
/// aud `gitlab`, iat `now`, nbf `now - 5`, exp `now + 30`.
pub fn sign_kas_jwt(secret: &[u8], now: i64) -> String {
    sign_hs256(
        secret,
        &serde_json::json!({
            "iss": KAS_JWT_ISSUER,
            "aud": KAS_JWT_AUDIENCE,
            "iat": now,
            "nbf": now - KAS_JWT_NBF_SKEW_SECS,
            "exp": now + KAS_JWT_LIFETIME_SECS,
        }),
    )
}

/// Verifies a kas JWT as Rails does at time `now`.
pub fn verify_kas_jwt(secret: &[u8], token: &str, now: i64) -> Result<(), JwtError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(JwtError::Malformed("expected three segments"));
    };
    let header: serde_json::Value = decode_json(h)?;
    let alg = header.get("alg").and_then(|a| a.as_str()).unwrap_or("");
    if alg != "HS256" {
        return Err(JwtError::Algorithm(alg.to_owned()));
    }
    let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| JwtError::Malformed("signature is not base64url"))?;
    let mut m = mac(secret);
    m.update(h.as_bytes());
    m.update(b".");
    m.update(p.as_bytes());
    m.verify_slice(&sig).map_err(|_| JwtError::Signature)?;

    let claims: serde_json::Value = decode_json(p)?;
    if let Some(exp) = claims.get("exp") {
        let exp = exp.as_i64().ok_or(JwtError::Malformed("exp is not an integer"))?;
        if exp <= now {
            return Err(JwtError::Expired);
        }
    }
    if let Some(nbf) = claims.get("nbf") {
        let nbf = nbf.as_i64().ok_or(JwtError::Malformed("nbf is not an integer"))?;
        if nbf > now {
            return Err(JwtError::Immature);
        }
    }
    if claims.get("iss").and_then(|i| i.as_str()) != Some(KAS_JWT_ISSUER) {
        return Err(JwtError::Issuer);
    }
    let aud_ok = match claims.get("aud") {
        Some(serde_json::Value::String(a)) => a == KAS_JWT_AUDIENCE,
        Some(serde_json::Value::Array(a)) => a.iter().any(|v| v == KAS_JWT_AUDIENCE),
        _ => false,
    };
    if !aud_ok {
        return Err(JwtError::Audience);
    }
    Ok(())
}

fn decode_json(segment: &str) -> Result<serde_json::Value, JwtError> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).map_err(|_| JwtError::Malformed("segment is not base64url"))?;
    serde_json::from_slice(&bytes).map_err(|_| JwtError::Malformed("segment is not JSON"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn kas_token_verifies_within_its_window_only() {
        let t = sign_kas_jwt(SECRET, 1000);
        assert_eq!(verify_kas_jwt(SECRET, &t, 995), Ok(()));
        assert_eq!(verify_kas_jwt(SECRET, &t, 1029), Ok(()));
        assert_eq!(verify_kas_jwt(SECRET, &t, 994), Err(JwtError::Immature));
        assert_eq!(verify_kas_jwt(SECRET, &t, 1030), Err(JwtError::Expired));
    }

    #[test]
    fn refusals() {
        let t = sign_kas_jwt(SECRET, 1000);
        assert_eq!(verify_kas_jwt(b"other", &t, 1000), Err(JwtError::Signature));
        let claims = |iss: &str, aud: serde_json::Value| json!({"iss": iss, "aud": aud, "exp": 2000});
        let wrong_iss = sign_hs256(SECRET, &claims("gitlab", json!("gitlab")));
        assert_eq!(verify_kas_jwt(SECRET, &wrong_iss, 1000), Err(JwtError::Issuer));
        let wrong_aud = sign_hs256(SECRET, &claims("gitlab-kas", json!("gitlab-kas")));
        assert_eq!(verify_kas_jwt(SECRET, &wrong_aud, 1000), Err(JwtError::Audience));
        let aud_list = sign_hs256(SECRET, &claims("gitlab-kas", json!(["x", "gitlab"])));
        assert_eq!(verify_kas_jwt(SECRET, &aud_list, 1000), Ok(()));
        // Tampered payload keeps the old signature.
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged = b64(br#"{"iss":"gitlab-kas","aud":"gitlab","exp":99999}"#);
        parts[1] = &forged;
        assert_eq!(verify_kas_jwt(SECRET, &parts.join("."), 1000), Err(JwtError::Signature));
        // alg=none is refused before any signature work.
        let none = format!("{}.{}.", b64(br#"{"alg":"none"}"#), b64(b"{}"));
        assert_eq!(verify_kas_jwt(SECRET, &none, 1000), Err(JwtError::Algorithm("none".into())));
        assert!(matches!(verify_kas_jwt(SECRET, "a.b", 1000), Err(JwtError::Malformed(_))));
        assert!(matches!(verify_kas_jwt(SECRET, "", 1000), Err(JwtError::Malformed(_))));
    }
}
