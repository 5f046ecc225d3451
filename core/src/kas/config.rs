//! The kas binary's configuration file, shaped like upstream's kascfg (`agent.listen`,
//! `private_api.listen`, `gitlab`), parsed strictly: unknown keys, wrong types and impossible values
//! are errors naming the file, line, column and field.
//!
//! ```yaml
//! agent:
//!   listen:
//!     address: 127.0.0.1:8150
//!     max_connection_age: 2h          # default 2h
//!     max_connection_age_grace: 1h    # default 50 % of the age (GitLab docs)
//!     certificate_file: kas.crt       # both or neither: TLS (grpcs://)
//!     key_file: kas.key
//! private_api:                        # optional: kas → kas routing
//!   listen:
//!     address: 127.0.0.1:8155
//!   url: grpc://127.0.0.1:8155        # how peers reach this kas; default grpc://<address>
//!   peers: [grpc://10.0.0.2:8155]     # other replicas (static tracker)
//! kubernetes_api:                     # optional: the k8s proxy for CI jobs and users
//!   listen:
//!     address: 127.0.0.1:8154
//!     certificate_file: proxy.crt     # both or neither: HTTPS (kubectl sends credentials only over TLS)
//!     key_file: proxy.key
//!   url_path_prefix: /                # e.g. /k8s-proxy/ behind GitLab's path routing
//! gitlab:
//!   address: http://127.0.0.1:8080
//!   external_url: https://gitlab.example.com   # the only allowed CORS origin
//!   authentication_secret_file: /etc/kas/secret   # base64, as GitLab's .gitlab_kas_secret
//!   ca_certificate_file: ca.pem       # optional, for https
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config_error::{ConfigError, parse_yaml};
use crate::duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KasConfig {
    pub agent: AgentSection,
    #[serde(default)]
    pub private_api: Option<PrivateApiSection>,
    #[serde(default)]
    pub kubernetes_api: Option<KubernetesApiSection>,
    pub gitlab: GitLabSection,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesApiSection {
    pub listen: TlsListen,
    #[serde(default = "default_prefix")]
    pub url_path_prefix: String,
}

fn default_prefix() -> String {
    "/".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsListen {
    pub address: String,
    #[serde(default)]
    pub certificate_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    pub listen: AgentListen,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentListen {
    pub address: String,
    #[serde(default, with = "duration::serde_opt")]
    pub max_connection_age: Option<Duration>,
    #[serde(default, with = "duration::serde_opt")]
    pub max_connection_age_grace: Option<Duration>,
    #[serde(default)]
    pub certificate_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivateApiSection {
    pub listen: PlainListen,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub peers: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlainListen {
    pub address: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitLabSection {
    pub address: String,
    pub authentication_secret_file: PathBuf,
    #[serde(default)]
    pub ca_certificate_file: Option<PathBuf>,
    #[serde(default)]
    pub external_url: Option<String>,
}

impl KasConfig {
    /// Parses and validates `text` read from `file`.
    pub fn parse(file: &str, text: &str) -> Result<Self, ConfigError> {
        let cfg: Self = parse_yaml(file, text)?;
        let invalid = |field: &str, message: String| ConfigError::Invalid {
            file: file.to_owned(),
            field: field.to_owned(),
            message,
        };
        let l = &cfg.agent.listen;
        if l.max_connection_age == Some(Duration::ZERO) {
            return Err(invalid("agent.listen.max_connection_age", "must be greater than 0".into()));
        }
        if l.certificate_file.is_some() != l.key_file.is_some() {
            return Err(invalid("agent.listen", "certificate_file and key_file must be set together".into()));
        }
        if let Some(k) = &cfg.kubernetes_api {
            if k.listen.certificate_file.is_some() != k.listen.key_file.is_some() {
                return Err(invalid(
                    "kubernetes_api.listen",
                    "certificate_file and key_file must be set together".into(),
                ));
            }
            if !k.url_path_prefix.starts_with('/') {
                return Err(invalid(
                    "kubernetes_api.url_path_prefix",
                    format!("{:?}: must start with /", k.url_path_prefix),
                ));
            }
        }
        if !cfg.gitlab.address.starts_with("http://") && !cfg.gitlab.address.starts_with("https://") {
            return Err(invalid("gitlab.address", format!("{:?}: want http:// or https://", cfg.gitlab.address)));
        }
        if let Some(p) = &cfg.private_api {
            for (i, peer) in p.peers.iter().chain(p.url.iter()).enumerate() {
                if !peer.starts_with("grpc://") {
                    return Err(invalid(
                        &format!("private_api.peers[{i}]"),
                        format!("{peer:?}: want grpc://host:port"),
                    ));
                }
            }
        }
        Ok(cfg)
    }

    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { file: file.clone(), source })?;
        Self::parse(&file, &text)
    }

    pub fn max_connection_age(&self) -> Duration {
        self.agent.listen.max_connection_age.unwrap_or(super::listener::DEFAULT_MAX_CONNECTION_AGE)
    }

    pub fn max_connection_age_grace(&self) -> Duration {
        self.agent
            .listen
            .max_connection_age_grace
            .unwrap_or_else(|| super::listener::default_grace(self.max_connection_age()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "agent:\n  listen:\n    address: 127.0.0.1:8150\n    max_connection_age: 30m\ngitlab:\n  address: http://127.0.0.1:8080\n  authentication_secret_file: /s\n";

    #[test]
    fn defaults_follow_the_docs() {
        let c = KasConfig::parse("kas.yaml", GOOD).unwrap();
        assert_eq!(c.max_connection_age(), Duration::from_secs(1800));
        assert_eq!(c.max_connection_age_grace(), Duration::from_secs(900));
    }

    #[test]
    fn errors_name_file_line_column_and_field() {
        let cases = [
            (
                GOOD.replace("    max_connection_age: 30m", "    max_conection_age: 30m"),
                "kas.yaml:4:5: agent.listen.max_conection_age: unknown field `max_conection_age`, expected one of `address`, `max_connection_age`, `max_connection_age_grace`, `certificate_file`, `key_file`",
            ),
            (
                GOOD.replace("30m", "30 minutes"),
                "kas.yaml:4:5: agent.listen.max_connection_age: invalid duration \"30 minutes\": use a number with a unit, e.g. 2h, 90m, 1h30m, 50s, 250ms",
            ),
            (
                GOOD.replace("address: 127.0.0.1:8150", "address: [1]"),
                "kas.yaml:3:5: agent.listen.address: invalid type: sequence, expected a string",
            ),
            (
                GOOD.replace("  authentication_secret_file: /s\n", ""),
                "kas.yaml:5:1: gitlab: missing field `authentication_secret_file`",
            ),
            (
                GOOD.replace("http://127.0.0.1:8080", "ftp://x"),
                "kas.yaml: gitlab.address: \"ftp://x\": want http:// or https://",
            ),
            (GOOD.replace("30m", "0"), "kas.yaml: agent.listen.max_connection_age: must be greater than 0"),
        ];
        for (text, want) in cases {
            let err = KasConfig::parse("kas.yaml", &text).unwrap_err().to_string();
            assert_eq!(err, want, "\n got: {err}");
        }
    }
}
