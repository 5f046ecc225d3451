//! HS256 JSON Web Tokens for kas → GitLab (`Gitlab-Kas-Api-Request`): iss `gitlab-kas`, aud `gitlab`,
//! valid from 5 s before to 30 s after issue, as upstream v16 signs them.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Signs the kas → GitLab request token at `now_unix` seconds.
pub fn sign_kas_request(secret: &[u8], now_unix: i64) -> String {
    let claims = serde_json::json!({
        "iss": "gitlab-kas",
        "aud": "gitlab",
        "iat": now_unix,
        "nbf": now_unix - 5,
        "exp": now_unix + 30,
    });
    sign_hs256(secret, &claims)
}

/// Signs arbitrary claims with HS256.
pub fn sign_hs256(secret: &[u8], claims: &serde_json::Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{payload}");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(signing_input.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{sig}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answer() {
        // Verified independently: HMAC-SHA256 over the exact header.payload bytes.
        let t = sign_hs256(b"secret", &serde_json::json!({"a":1}));
        let parts: Vec<&str> = t.split('.').collect();
        assert_eq!(parts[0], "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9");
        assert_eq!(parts[1], "eyJhIjoxfQ");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"secret").unwrap();
        mac.update(format!("{}.{}", parts[0], parts[1]).as_bytes());
        assert_eq!(URL_SAFE_NO_PAD.decode(parts[2]).unwrap(), mac.finalize().into_bytes().to_vec());
        let other = sign_hs256(b"other", &serde_json::json!({"a":1}));
        assert_ne!(t, other);
    }

    #[test]
    fn kas_claims() {
        let t = sign_kas_request(b"k", 1000);
        let payload = t.split('.').nth(1).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert_eq!(v, serde_json::json!({"iss":"gitlab-kas","aud":"gitlab","iat":1000,"nbf":995,"exp":1030}));
    }
}
