//! agentk's service-account token for a run.

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use secrecy::SecretString;

/// Where agentk's token comes from.
#[derive(Debug, Clone)]
pub enum TokenSource {
    /// The TokenRequest API (`serviceaccounts/<name>/token`), as kubectl create token does: a
    /// short-lived, audience-bound token and no long-lived Secret left behind.
    TokenRequest { expiration_seconds: i64 },
}

impl Default for TokenSource {
    fn default() -> Self {
        Self::TokenRequest { expiration_seconds: 3600 }
    }
}

/// Why no token was obtained.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("TokenRequest for {namespace}/{service_account} is not supported by this server ({code}: {message})")]
    Unsupported { namespace: String, service_account: String, code: u16, message: String },
    #[error("TokenRequest for {namespace}/{service_account}: {source}")]
    Api { namespace: String, service_account: String, source: Box<kube::Error> },
    #[error("TokenRequest for {namespace}/{service_account}: the answer carries no token")]
    Empty { namespace: String, service_account: String },
}

/// Obtains the token per `source`.
pub async fn obtain(
    client: &kube::Client,
    namespace: &str,
    service_account: &str,
    source: &TokenSource,
) -> Result<SecretString, TokenError> {
    let TokenSource::TokenRequest { expiration_seconds } = *source;
    let (ns, sa) = (namespace.to_owned(), service_account.to_owned());
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let req = TokenRequest {
        spec: TokenRequestSpec { expiration_seconds: Some(expiration_seconds), ..Default::default() },
        ..Default::default()
    };
    match api.create_token_request(service_account, &PostParams::default(), &req).await {
        Ok(r) => match r.status.map(|s| s.token).filter(|t| !t.is_empty()) {
            Some(t) => Ok(SecretString::from(t)),
            None => Err(TokenError::Empty { namespace: ns, service_account: sa }),
        },
        Err(kube::Error::Api(s)) if matches!(s.code, 404 | 405 | 415) => {
            Err(TokenError::Unsupported { namespace: ns, service_account: sa, code: s.code, message: s.message })
        }
        Err(source) => Err(TokenError::Api { namespace: ns, service_account: sa, source: Box::new(source) }),
    }
}
