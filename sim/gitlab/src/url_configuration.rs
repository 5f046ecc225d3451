//! Receptive agents: an agent's URL configuration (`Clusters::Agents::UrlConfiguration`), which turns
//! it into an agent kas dials instead of one that dials kas (GitLab 17.4+).
//!
//! Rules copied from Rails (`app/models/clusters/agents/url_configuration.rb`,
//! `app/services/clusters/agents/create_url_configuration_service.rb`):
//! - the instance setting `receptive_cluster_agents_enabled` must be on (off by default), else
//!   "Receptive agents are disabled for this GitLab instance";
//! - the caller needs `admin_pipeline` and `create_cluster` on the project (Maintainer or Owner), else
//!   "You have insufficient permissions to create an url configuration for this agent";
//! - one configuration per agent: a second one is refused with
//!   "URL configuration already exists for this agent" (the service checks `agent.is_receptive`);
//! - `url` must be a `grpc://` or `grpcs://` URL;
//! - with a `client_key` the configuration uses mTLS (`client_cert` required); without one GitLab
//!   generates an Ed25519 key pair for JWT authentication, and then a `client_cert` must be blank:
//!   mTLS and JWT never mix;
//! - creating sets `is_receptive`, deleting clears it (the agent is a normal one again).
//!
//! The key pair is seeded from the instance's token seed and the configuration id, so runs
//! reproduce. Blank strings count as absent (`nullify_if_blank`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::SigningKey;

use crate::model::{AgentId, GitLab, ModelError, ProjectId, Role, UserId};
use crate::token::TokenGenerator;

/// Salt mixed into the token seed for key generation, so keys never repeat token streams.
const KEY_SEED_SALT: u64 = 0x7265_6365_7074_6976; // "receptiv"

/// Id of a URL configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct UrlConfigurationId(pub i64);

/// Input of [`GitLab::create_url_configuration`], as the REST API takes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct NewUrlConfiguration {
    pub url: String,
    #[serde(default)]
    pub ca_cert: Option<String>,
    #[serde(default)]
    pub tls_host: Option<String>,
    #[serde(default)]
    pub client_cert: Option<String>,
    #[serde(default)]
    pub client_key: Option<String>,
}

/// A stored URL configuration (private key included: only kas may see it).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct StoredUrlConfiguration {
    pub(crate) id: UrlConfigurationId,
    pub(crate) url: String,
    pub(crate) ca_cert: Option<String>,
    pub(crate) tls_host: Option<String>,
    pub(crate) client_cert: Option<String>,
    pub(crate) client_key: Option<String>,
    /// Ed25519 seed, for JWT authentication.
    pub(crate) private_key: Option<[u8; 32]>,
}

/// What the REST API shows of a URL configuration (`public_key` base64, no secrets).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UrlConfiguration {
    pub id: UrlConfigurationId,
    pub agent_id: i64,
    pub url: String,
    pub ca_cert: Option<String>,
    pub tls_host: Option<String>,
    /// Base64 of the 32-byte Ed25519 public key, for `config.api.jwtPublicKey`; `None` with mTLS.
    pub public_key: Option<String>,
    pub client_cert: Option<String>,
}

/// What kas needs to dial a receptive agent (served on the internal API only).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReceptiveAgentEntry {
    pub agent_id: i64,
    pub url: String,
    pub ca_cert: Option<String>,
    pub tls_host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt: Option<ReceptiveJwt>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtls: Option<ReceptiveMtls>,
}

/// JWT credentials of a receptive agent, for kas.
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReceptiveJwt {
    /// Base64 of the 32-byte Ed25519 seed.
    pub private_key: String,
}

impl std::fmt::Debug for ReceptiveJwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReceptiveJwt { .. }")
    }
}

/// mTLS credentials of a receptive agent, for kas.
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReceptiveMtls {
    pub client_cert: String,
    pub client_key: String,
}

impl std::fmt::Debug for ReceptiveMtls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReceptiveMtls { .. }")
    }
}

/// Why a URL configuration was refused. Messages are Rails' own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlConfigurationError {
    #[error("Receptive agents are disabled for this GitLab instance")]
    Disabled,
    #[error("You have insufficient permissions to create an url configuration for this agent")]
    Forbidden,
    #[error("URL configuration already exists for this agent")]
    AlreadyExists,
    /// Validation failures (`errors.full_messages`), e.g. "Client cert must be blank".
    #[error("{}", .0.join(", "))]
    Invalid(Vec<String>),
    #[error("URL configuration {0} not found")]
    NotFound(i64),
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// Receptive-agent state of the instance.
#[derive(Debug, Default)]
pub(crate) struct ReceptiveState {
    pub(crate) enabled: bool,
    pub(crate) configs: std::collections::BTreeMap<AgentId, StoredUrlConfiguration>,
    pub(crate) last_id: i64,
}

impl std::fmt::Debug for StoredUrlConfiguration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredUrlConfiguration").field("id", &self.id).field("url", &self.url).finish_non_exhaustive()
    }
}

fn blank_to_none(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

fn valid_url(url: &str) -> bool {
    let Some((scheme, rest)) = url.split_once("://") else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    matches!(scheme, "grpc" | "grpcs") && !host.is_empty() && !host.starts_with(':')
}

fn public_key_b64(seed: &[u8; 32]) -> String {
    STANDARD.encode(SigningKey::from_bytes(seed).verifying_key().to_bytes())
}

impl StoredUrlConfiguration {
    fn view(&self, agent: AgentId) -> UrlConfiguration {
        UrlConfiguration {
            id: self.id,
            agent_id: agent.0,
            url: self.url.clone(),
            ca_cert: self.ca_cert.clone(),
            tls_host: self.tls_host.clone(),
            public_key: self.private_key.as_ref().map(public_key_b64),
            client_cert: self.client_cert.clone(),
        }
    }
}

impl GitLab {
    /// The `receptive_cluster_agents_enabled` application setting (default off, as in GitLab).
    pub fn set_receptive_agents_enabled(&self, enabled: bool) {
        self.lock().receptive.enabled = enabled;
    }

    /// Creates the agent's URL configuration as `user` (`None` = an administrator / the scenario
    /// itself, skipping the permission check).
    pub fn create_url_configuration(
        &self,
        user: Option<UserId>,
        agent: AgentId,
        new: NewUrlConfiguration,
    ) -> Result<UrlConfiguration, UrlConfigurationError> {
        let token_seed = self.settings().token_seed;
        let mut st = self.lock();
        let project = st.agent(agent)?.project;
        if !st.receptive.enabled {
            return Err(UrlConfigurationError::Disabled);
        }
        if let Some(u) = user
            && st.project_role(project, u).is_none_or(|r| r < Role::Maintainer)
        {
            return Err(UrlConfigurationError::Forbidden);
        }
        if st.receptive.configs.contains_key(&agent) {
            return Err(UrlConfigurationError::AlreadyExists);
        }
        let ca_cert = blank_to_none(new.ca_cert);
        let tls_host = blank_to_none(new.tls_host);
        let client_cert = blank_to_none(new.client_cert);
        let client_key = blank_to_none(new.client_key);
        let mut errors = Vec::new();
        if !valid_url(&new.url) {
            errors.push("Url is blocked: Only allowed schemes are grpc, grpcs".to_owned());
        }
        let id = st.receptive.last_id + 1;
        let private_key = if client_key.is_some() {
            if client_cert.is_none() {
                errors.push("Client cert can't be blank".to_owned());
            }
            None
        } else {
            if client_cert.is_some() {
                errors.push("Client cert must be blank".to_owned());
            }
            let salt = KEY_SEED_SALT.wrapping_add(u64::try_from(id).unwrap_or_default());
            Some(TokenGenerator::new(token_seed ^ salt).bytes32())
        };
        if !errors.is_empty() {
            return Err(UrlConfigurationError::Invalid(errors));
        }
        st.receptive.last_id = id;
        let stored = StoredUrlConfiguration {
            id: UrlConfigurationId(id),
            url: new.url,
            ca_cert,
            tls_host,
            client_cert,
            client_key,
            private_key,
        };
        let view = stored.view(agent);
        st.receptive.configs.insert(agent, stored);
        Ok(view)
    }

    /// The agent's URL configuration, if it is receptive.
    pub fn url_configuration(&self, agent: AgentId) -> Result<Option<UrlConfiguration>, ModelError> {
        let st = self.lock();
        st.agent(agent)?;
        Ok(st.receptive.configs.get(&agent).map(|c| c.view(agent)))
    }

    /// Deletes the configuration `id` of `agent`: the agent becomes a normal one again.
    pub fn delete_url_configuration(
        &self,
        user: Option<UserId>,
        agent: AgentId,
        id: UrlConfigurationId,
    ) -> Result<(), UrlConfigurationError> {
        let mut st = self.lock();
        let project = st.agent(agent)?.project;
        if !st.receptive.enabled {
            return Err(UrlConfigurationError::Disabled);
        }
        if let Some(u) = user
            && st.project_role(project, u).is_none_or(|r| r < Role::Maintainer)
        {
            return Err(UrlConfigurationError::Forbidden);
        }
        match st.receptive.configs.get(&agent) {
            Some(c) if c.id == id => {
                st.receptive.configs.remove(&agent);
                Ok(())
            }
            _ => Err(UrlConfigurationError::NotFound(id.0)),
        }
    }

    /// `Clusters::Agent#is_receptive`.
    pub fn is_receptive(&self, agent: AgentId) -> Result<bool, ModelError> {
        let st = self.lock();
        st.agent(agent)?;
        Ok(st.receptive.configs.contains_key(&agent))
    }

    /// Every receptive agent with its credentials, ascending by agent id, for kas. Empty while the
    /// setting is off.
    pub fn receptive_agents(&self) -> Vec<ReceptiveAgentEntry> {
        let st = self.lock();
        if !st.receptive.enabled {
            return Vec::new();
        }
        st.receptive
            .configs
            .iter()
            .map(|(agent, c)| ReceptiveAgentEntry {
                agent_id: agent.0,
                url: c.url.clone(),
                ca_cert: c.ca_cert.clone(),
                tls_host: c.tls_host.clone(),
                jwt: c.private_key.map(|k| ReceptiveJwt { private_key: STANDARD.encode(k) }),
                mtls: match (&c.client_cert, &c.client_key) {
                    (Some(cert), Some(key)) if c.private_key.is_none() => {
                        Some(ReceptiveMtls { client_cert: cert.clone(), client_key: key.clone() })
                    }
                    _ => None,
                },
            })
            .collect()
    }

    /// The project of an agent (for the REST routes, which name both).
    pub(crate) fn agent_project(&self, agent: AgentId) -> Result<ProjectId, ModelError> {
        Ok(self.lock().agent(agent)?.project)
    }
}
