//! How agentk reaches its Kubernetes API server: a pooled HTTP/1.1 client through the transport seam,
//! with the agent's own credentials.
//!
//! Real clusters are described by a `kube::Config` (in-cluster service account or a kubeconfig, as
//! the kube client stack infers it): its cluster URL, CA, client certificate, bearer token or token
//! file, TLS server name and configured impersonation are honoured. Exec/OIDC auth plugins are not
//! supported (agentk runs in-cluster with a service account). HTTP/1.1 is forced, as upstream forces
//! ALPN `http/1.1`, so that upgrades (exec, port-forward) work.

use std::path::PathBuf;

use base64::Engine;
use hyper::body::Incoming;

use crate::transport::Dialer;
use crate::transport::hyper_client::{ClientBody, SeamClient, client};
use crate::transport::tls::{ClientTlsOptions, TlsConnector, TlsError};

/// Why the Kubernetes API cannot be reached as configured.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("cluster URL {0:?}: want http(s)://host[:port][/path]")]
    Url(String),
    #[error("cluster TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
}

/// Identity configured in the agent's own kubeconfig (`as`/`as-groups`): "rest impersonation".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestImpersonation {
    pub user: String,
    pub groups: Vec<String>,
}

/// The agent's Kubernetes API client.
#[derive(Clone)]
pub struct KubeBackend {
    client: SeamClient,
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    base_path: String,
    token: Option<String>,
    token_file: Option<PathBuf>,
    rest_impersonation: Option<RestImpersonation>,
}

impl std::fmt::Debug for KubeBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeBackend")
            .field("authority", &self.authority)
            .field("base_path", &self.base_path)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("rest_impersonation", &self.rest_impersonation)
            .finish()
    }
}

fn split_url(url: &str) -> Result<(http::uri::Scheme, http::uri::Authority, String), BackendError> {
    let uri: http::Uri = url.parse().map_err(|_| BackendError::Url(url.to_owned()))?;
    let scheme = uri.scheme().cloned().ok_or_else(|| BackendError::Url(url.to_owned()))?;
    let authority = uri.authority().cloned().ok_or_else(|| BackendError::Url(url.to_owned()))?;
    Ok((scheme, authority, uri.path().trim_end_matches('/').to_owned()))
}

fn host_port(scheme: &http::uri::Scheme, authority: &http::uri::Authority) -> String {
    let port = authority.port_u16().unwrap_or(if *scheme == http::uri::Scheme::HTTPS { 443 } else { 80 });
    format!("{}:{port}", authority.host())
}

impl KubeBackend {
    /// A server at `url` reached through `dialer` (which already does TLS if needed), with a bearer
    /// token. Used by the simulator and loopback tests.
    pub fn new(dialer: Dialer, url: &str, token: Option<String>) -> Result<Self, BackendError> {
        let (scheme, authority, base_path) = split_url(url)?;
        let target = host_port(&scheme, &authority);
        Ok(Self {
            client: client(dialer, &target),
            scheme,
            authority,
            base_path,
            token,
            token_file: None,
            rest_impersonation: None,
        })
    }

    /// From a `kube::Config` (kubeconfig or in-cluster), dialling TCP through `tcp`.
    pub fn from_kube_config(config: &kube::Config, tcp: Dialer) -> Result<Self, BackendError> {
        let url = config.cluster_url.to_string();
        let (scheme, authority, base_path) = split_url(&url)?;
        let target = host_port(&scheme, &authority);
        let auth = &config.auth_info;
        let dialer: Dialer = if scheme == http::uri::Scheme::HTTPS {
            let b64 = base64::engine::general_purpose::STANDARD;
            let decode = |d: &str, what: &str| {
                b64.decode(d.trim()).map_err(|e| BackendError::Kubeconfig(format!("{what}: {e}")))
            };
            let read = |p: &str| std::fs::read(p).map_err(|e| BackendError::Kubeconfig(format!("{p}: {e}")));
            let cert = match (&auth.client_certificate_data, &auth.client_certificate) {
                (Some(d), _) => Some(decode(d, "client-certificate-data")?),
                (None, Some(p)) => Some(read(p)?),
                _ => None,
            };
            let key = match (&auth.client_key_data, &auth.client_key) {
                (Some(d), _) => Some(decode(secrecy::ExposeSecret::expose_secret(d), "client-key-data")?),
                (None, Some(p)) => Some(read(p)?),
                _ => None,
            };
            let ca_pem = config.root_cert.as_ref().map(|ders| {
                ders.iter()
                    .map(|der| format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", b64.encode(der)))
                    .collect::<String>()
                    .into_bytes()
            });
            let opts = ClientTlsOptions {
                ca_pem,
                server_name: config.tls_server_name.clone(),
                insecure_skip_verify: config.accept_invalid_certs,
                alpn: vec![b"http/1.1".to_vec()],
                client_identity: cert.zip(key),
            };
            std::sync::Arc::new(TlsConnector::new(tcp, &opts)?)
        } else {
            tcp
        };
        let rest_impersonation = auth.impersonate.as_ref().map(|user| RestImpersonation {
            user: user.clone(),
            groups: auth.impersonate_groups.clone().unwrap_or_default(),
        });
        Ok(Self {
            client: client(dialer, &target),
            scheme,
            authority,
            base_path,
            token: auth.token.as_ref().map(|t| secrecy::ExposeSecret::expose_secret(t).to_owned()),
            token_file: auth.token_file.as_ref().map(PathBuf::from),
            rest_impersonation,
        })
    }

    pub fn rest_impersonation(&self) -> Option<&RestImpersonation> {
        self.rest_impersonation.as_ref()
    }

    /// Sends `req` (its URI holds path and query only) with the agent's credentials.
    pub async fn send(&self, mut req: http::Request<ClientBody>) -> Result<http::Response<Incoming>, String> {
        let pq = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
        let uri = http::Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(format!("{}{pq}", self.base_path))
            .build()
            .map_err(|e| e.to_string())?;
        *req.uri_mut() = uri;
        let token = match (&self.token, &self.token_file) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(f)) => {
                Some(tokio::fs::read_to_string(f).await.map_err(|e| format!("{}: {e}", f.display()))?.trim().to_owned())
            }
            _ => None,
        };
        if let Some(t) = token {
            let v = http::HeaderValue::from_str(&format!("Bearer {t}"))
                .map_err(|_| "token is not a valid header value".to_owned())?;
            req.headers_mut().insert(http::header::AUTHORIZATION, v);
        }
        if let Some(imp) = &self.rest_impersonation {
            let h = req.headers_mut();
            h.insert("impersonate-user", http::HeaderValue::from_str(&imp.user).map_err(|e| e.to_string())?);
            for g in &imp.groups {
                h.append("impersonate-group", http::HeaderValue::from_str(g).map_err(|e| e.to_string())?);
            }
        }
        self.client.request(req).await.map_err(|e| {
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(": ");
                msg.push_str(&s.to_string());
                src = s.source();
            }
            msg
        })
    }
}
