//! A receptive agentk: instead of dialling kas, agentk listens and kas dials it (GitLab 17.4+, for
//! clusters GitLab can reach but that cannot reach GitLab).
//!
//! # Protocol (kasim's choice; upstream details are unconfirmed)
//! GitLab documents the outside of the feature — a `grpc://` or `grpcs://` URL configuration per
//! agent, authentication by a JWT signed with an Ed25519 key GitLab generates (the agent is
//! installed with the base64 public key, Helm `config.api.jwtPublicKey`) or by mTLS, never both —
//! but not the wire protocol. kasim fills the gap with the smallest design that keeps kas's routing
//! unchanged:
//! - agentk serves its module services (the same [`AgentServices`] it would offer through reverse
//!   tunnels) **directly** on an HTTP/2 gRPC listener. kas sends each forwarded call to it as a plain
//!   gRPC call, method and metadata untouched, instead of wrapping it in `ReverseTunnel/Connect`.
//! - Every call carries `authorization: Bearer <JWT>`. agentk verifies it and removes it before the
//!   call reaches a module service, so services never see kas's credential.
//! - One extra unary method, [`DESCRIBE_METHOD`], tells kas what the agent serves (the
//!   `AgentDescriptor` a tunnel would send first) and the agent's version ([`AgentMeta`]). kas
//!   needs the descriptor to match calls exactly as it matches tunnels, so an agent lacking a method
//!   shows the same "no matching tunnel" symptom in both modes.
//!
//! # JWT
//! Compact JWS, header `{"alg":"EdDSA","typ":"JWT"}` (RFC 8037), signed by kas with the URL
//! configuration's private key. Claims:
//! - `iss` = [`JWT_ISSUER`] (`gitlab-kas`, as kas's other tokens);
//! - `aud` = [`JWT_AUDIENCE`] (`gitlab-agent`): a token for GitLab (`aud: gitlab`) is no use here;
//! - `agent_id`: the agent the call is for; checked when agentk is told its id;
//! - `iat`, `nbf` = `iat − 5 s`, `exp` = `iat + 30 s`: the validity kas gives its GitLab tokens.
//!
//! agentk refuses, with `Unauthenticated` naming the reason: a missing/malformed header, another
//! algorithm, a bad signature (wrong key), a wrong issuer or audience, `exp` ≤ now (expired),
//! `nbf` > now, or another agent id. There is no leeway: kas and agentk share the clock in the
//! simulator, and 5 s of `nbf` slack covers small skews in real deployments.

use std::convert::Infallible;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::{Signature, VerifyingKey};
use hyper::body::Incoming;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use super::services::AgentServices;
use crate::clock::SharedClock;
use crate::kas::listener::{self, ListenerOptions};
use crate::proto::reverse_tunnel::info::AgentDescriptor;
use crate::transport::{Accept, BoxFuture};

/// `iss` of receptive-agent JWTs.
pub const JWT_ISSUER: &str = "gitlab-kas";
/// `aud` of receptive-agent JWTs.
pub const JWT_AUDIENCE: &str = "gitlab-agent";
/// The only JWS algorithm accepted.
pub const JWT_ALGORITHM: &str = "EdDSA";
/// The gRPC path of the describe call.
pub const DESCRIBE_METHOD: &str = "/kasim.agent.receptive.Receptive/Describe";

/// The agent's build, modelled on upstream `entity.AgentMeta` (same field numbers).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct AgentMeta {
    #[prost(string, tag = "1")]
    pub version: String,
    #[prost(string, tag = "2")]
    pub commit_id: String,
    #[prost(string, tag = "3")]
    pub pod_namespace: String,
    #[prost(string, tag = "4")]
    pub pod_name: String,
}

/// Request of [`DESCRIBE_METHOD`] (empty).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct DescribeRequest {}

/// Answer of [`DESCRIBE_METHOD`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct DescribeResponse {
    #[prost(message, optional, tag = "1")]
    pub agent_meta: Option<AgentMeta>,
    #[prost(message, optional, tag = "2")]
    pub agent_descriptor: Option<AgentDescriptor>,
}

/// JWT claims of a kas → receptive agent call.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub agent_id: i64,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
}

/// Why a receptive agent refused kas's credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("missing authorization metadata")]
    Missing,
    #[error("authorization: expecting a single Bearer token")]
    NotBearer,
    #[error("malformed JWT: {0}")]
    Malformed(String),
    #[error("unexpected JWT algorithm {0:?}, want EdDSA")]
    Algorithm(String),
    #[error("JWT signature does not verify with the configured public key")]
    Signature,
    #[error("JWT issuer {0:?} is not gitlab-kas")]
    Issuer(String),
    #[error("JWT audience {0:?} is not gitlab-agent")]
    Audience(String),
    #[error("JWT expired at {exp}, now is {now}")]
    Expired { exp: i64, now: i64 },
    #[error("JWT not valid before {nbf}, now is {now}")]
    NotYetValid { nbf: i64, now: i64 },
    #[error("JWT is for agent {got}, this is agent {want}")]
    Agent { got: i64, want: i64 },
}

/// Why the configured public key is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublicKeyError {
    #[error("JWT public key is not base64: {0}")]
    Base64(String),
    #[error("JWT public key must be 32 bytes (Ed25519), got {0}")]
    Length(usize),
    #[error("JWT public key is not a valid Ed25519 point")]
    Point,
}

/// Decodes the base64 public key GitLab returns for a URL configuration. Whitespace (Ruby's
/// `Base64.encode64` wraps lines) is ignored.
pub fn parse_public_key(b64: &str) -> Result<VerifyingKey, PublicKeyError> {
    let clean: String = b64.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = STANDARD.decode(clean).map_err(|e| PublicKeyError::Base64(e.to_string()))?;
    let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| PublicKeyError::Length(bytes.len()))?;
    VerifyingKey::from_bytes(&arr).map_err(|_| PublicKeyError::Point)
}

/// Verifies a compact EdDSA JWT at `now` (Unix seconds).
pub fn verify_jwt(token: &str, key: &VerifyingKey, now: i64, expected_agent: Option<i64>) -> Result<Claims, JwtError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(JwtError::Malformed("want three dot-separated parts".into()));
    };
    let decode = |what: &str, part: &str| {
        URL_SAFE_NO_PAD.decode(part).map_err(|e| JwtError::Malformed(format!("{what} is not base64url: {e}")))
    };
    let header: serde_json::Value = serde_json::from_slice(&decode("header", h)?)
        .map_err(|e| JwtError::Malformed(format!("header is not JSON: {e}")))?;
    let alg = header.get("alg").and_then(|a| a.as_str()).unwrap_or_default();
    if alg != JWT_ALGORITHM {
        return Err(JwtError::Algorithm(alg.to_owned()));
    }
    let sig = Signature::from_slice(&decode("signature", s)?)
        .map_err(|_| JwtError::Malformed("signature must be 64 bytes".into()))?;
    key.verify_strict(format!("{h}.{p}").as_bytes(), &sig).map_err(|_| JwtError::Signature)?;
    let claims: Claims =
        serde_json::from_slice(&decode("payload", p)?).map_err(|e| JwtError::Malformed(format!("claims: {e}")))?;
    if claims.iss != JWT_ISSUER {
        return Err(JwtError::Issuer(claims.iss));
    }
    if claims.aud != JWT_AUDIENCE {
        return Err(JwtError::Audience(claims.aud));
    }
    if claims.exp <= now {
        return Err(JwtError::Expired { exp: claims.exp, now });
    }
    if claims.nbf > now {
        return Err(JwtError::NotYetValid { nbf: claims.nbf, now });
    }
    if let Some(want) = expected_agent
        && claims.agent_id != want
    {
        return Err(JwtError::Agent { got: claims.agent_id, want });
    }
    Ok(claims)
}

/// Extracts the bearer token from request headers.
fn bearer(headers: &http::HeaderMap) -> Result<&str, JwtError> {
    let mut all = headers.get_all(http::header::AUTHORIZATION).iter();
    let (Some(v), None) = (all.next(), all.next()) else {
        return Err(if headers.contains_key(http::header::AUTHORIZATION) {
            JwtError::NotBearer
        } else {
            JwtError::Missing
        });
    };
    v.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).filter(|t| !t.is_empty()).ok_or(JwtError::NotBearer)
}

/// Settings of a receptive agentk.
#[derive(Debug, Clone)]
pub struct ReceptiveOptions {
    pub services: AgentServices,
    /// From `config.api.jwtPublicKey`; `None` when kas authenticates with a client certificate
    /// (mTLS: serve on a listener built with `ServerTls::from_pem_with_client_ca`, never both).
    pub public_key: Option<VerifyingKey>,
    /// When set, tokens for other agents are refused.
    pub agent_id: Option<i64>,
    pub meta: AgentMeta,
    pub clock: SharedClock,
}

/// Why a receptive agentk could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReceptiveError {
    #[error(transparent)]
    Service(#[from] super::descriptor::UnknownService),
}

/// Serves kas's calls on `listener` until `shutdown`. The listener decides plain or TLS
/// (`grpc://` or `grpcs://` in the URL configuration).
pub async fn serve(
    listener: Box<dyn Accept>,
    opts: ReceptiveOptions,
    shutdown: CancellationToken,
) -> Result<(), ReceptiveError> {
    let describe = Arc::new(DescribeResponse {
        agent_meta: Some(opts.meta.clone()),
        agent_descriptor: Some(opts.services.descriptor()?),
    });
    let svc = ReceptiveService {
        routes: opts.services.routes(),
        key: opts.public_key,
        agent_id: opts.agent_id,
        clock: opts.clock,
        describe,
    };
    listener::serve(listener, svc, ListenerOptions::no_age(), shutdown).await;
    Ok(())
}

/// Authenticates each call, answers [`DESCRIBE_METHOD`] and hands everything else to the module
/// services.
#[derive(Clone)]
struct ReceptiveService {
    routes: tonic::service::Routes,
    key: Option<VerifyingKey>,
    agent_id: Option<i64>,
    clock: SharedClock,
    describe: Arc<DescribeResponse>,
}

impl tower_service::Service<http::Request<Incoming>> for ReceptiveService {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: http::Request<Incoming>) -> Self::Future {
        let checked = match &self.key {
            Some(key) => bearer(req.headers())
                .and_then(|t| verify_jwt(t, key, self.clock.unix_seconds(), self.agent_id))
                .map(drop),
            // mTLS: the listener accepted only kas's client certificate.
            None => Ok(()),
        };
        if let Err(e) = checked {
            tracing::debug!(error = %e, path = req.uri().path(), "receptive agent refused a call");
            let status = Status::unauthenticated(format!("receptive agent: {e}"));
            return Box::pin(async move { Ok(status.into_http()) });
        }
        req.headers_mut().remove(http::header::AUTHORIZATION);
        if req.uri().path() == DESCRIBE_METHOD {
            let describe = self.describe.clone();
            return Box::pin(async move {
                let mut grpc =
                    tonic::server::Grpc::new(tonic_prost::ProstCodec::<DescribeResponse, DescribeRequest>::default());
                Ok(grpc.unary(Describe(describe), req).await)
            });
        }
        let mut routes = self.routes.clone();
        Box::pin(async move { tower_service::Service::call(&mut routes, req).await })
    }
}

struct Describe(Arc<DescribeResponse>);

impl tonic::server::UnaryService<DescribeRequest> for Describe {
    type Response = DescribeResponse;
    type Future = BoxFuture<'static, Result<tonic::Response<DescribeResponse>, Status>>;

    fn call(&mut self, _: tonic::Request<DescribeRequest>) -> Self::Future {
        let r = (*self.0).clone();
        Box::pin(async move { Ok(tonic::Response::new(r)) })
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer, SigningKey};

    use super::*;

    fn sign(key: &SigningKey, header: &str, claims: &serde_json::Value) -> String {
        let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let sig = key.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
    }

    fn claims(aud: &str, iat: i64) -> serde_json::Value {
        serde_json::json!({"iss": "gitlab-kas", "aud": aud, "agent_id": 7, "iat": iat, "nbf": iat - 5, "exp": iat + 30})
    }

    const HEADER: &str = r#"{"alg":"EdDSA","typ":"JWT"}"#;

    #[test]
    fn verification_reasons() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let other = SigningKey::from_bytes(&[2; 32]);
        let vk = key.verifying_key();
        let ok = sign(&key, HEADER, &claims("gitlab-agent", 1000));
        assert_eq!(verify_jwt(&ok, &vk, 1000, Some(7)).unwrap().agent_id, 7);
        assert_eq!(verify_jwt(&ok, &vk, 1029, None).unwrap().iat, 1000);
        assert_eq!(verify_jwt(&ok, &vk, 1030, None), Err(JwtError::Expired { exp: 1030, now: 1030 }));
        assert_eq!(verify_jwt(&ok, &vk, 994, None), Err(JwtError::NotYetValid { nbf: 995, now: 994 }));
        assert_eq!(verify_jwt(&ok, &vk, 1000, Some(8)), Err(JwtError::Agent { got: 7, want: 8 }));
        let wrong_key = sign(&other, HEADER, &claims("gitlab-agent", 1000));
        assert_eq!(verify_jwt(&wrong_key, &vk, 1000, None), Err(JwtError::Signature));
        let wrong_aud = sign(&key, HEADER, &claims("gitlab", 1000));
        assert_eq!(verify_jwt(&wrong_aud, &vk, 1000, None), Err(JwtError::Audience("gitlab".into())));
        let hs = sign(&key, r#"{"alg":"HS256"}"#, &claims("gitlab-agent", 1000));
        assert_eq!(verify_jwt(&hs, &vk, 1000, None), Err(JwtError::Algorithm("HS256".into())));
        let none = sign(&key, r#"{"alg":"none"}"#, &claims("gitlab-agent", 1000));
        assert_eq!(verify_jwt(&none, &vk, 1000, None), Err(JwtError::Algorithm("none".into())));
        // A tampered payload keeps the old signature.
        let parts: Vec<&str> = ok.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(claims("gitlab-agent", 5000).to_string());
        let tampered = format!("{}.{forged}.{}", parts[0], parts[2]);
        assert_eq!(verify_jwt(&tampered, &vk, 5000, None), Err(JwtError::Signature));
        assert!(matches!(verify_jwt("a.b", &vk, 0, None), Err(JwtError::Malformed(_))));
        assert!(matches!(verify_jwt("!.!.!", &vk, 0, None), Err(JwtError::Malformed(_))));
    }

    #[test]
    fn public_keys() {
        let vk = SigningKey::from_bytes(&[3; 32]).verifying_key();
        let b64 = STANDARD.encode(vk.to_bytes());
        let wrapped = format!("{}\n{}\n", &b64[..20], &b64[20..]);
        assert_eq!(parse_public_key(&wrapped).unwrap(), vk);
        assert_eq!(parse_public_key(&STANDARD.encode([0u8; 31])), Err(PublicKeyError::Length(31)));
        assert!(matches!(parse_public_key("not base64!"), Err(PublicKeyError::Base64(_))));
    }

    #[test]
    fn bearer_header() {
        let mut h = http::HeaderMap::new();
        assert_eq!(bearer(&h), Err(JwtError::Missing));
        h.insert("authorization", "Basic x".parse().unwrap());
        assert_eq!(bearer(&h), Err(JwtError::NotBearer));
        h.insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Ok("abc"));
        h.append("authorization", "Bearer def".parse().unwrap());
        assert_eq!(bearer(&h), Err(JwtError::NotBearer));
    }
}
