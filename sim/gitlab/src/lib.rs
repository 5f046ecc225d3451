//! A faithful model of the parts of GitLab's Rails API that the GitLab agent
//! for Kubernetes uses: groups, projects, users, agents and their tokens,
//! agent config files, CI jobs, `ci_access` / `user_access` authorization,
//! the CI kubeconfig, and the kas-facing HTTP endpoints.
//!
//! Everything is deterministic: time comes from an injected [`Clock`],
//! tokens from a seeded generator, and all collections are ordered.
//!
//! # Modelling choices
//! Where upstream behaviour is unconfirmed or a choice had to be made:
//! - **Environment patterns** copy Rails: equality, or (with `*`) an
//!   unanchored regex with `*` -> `.*` and other metacharacters live; a
//!   pattern that fails to compile answers HTTP 500 (see [`pattern_matches`]).
//! - **`project.groups`** in `allowed_agents` lists ancestor groups
//!   outermost first, as the docs' `ci_job` example (23, then 25).
//! - **Duplicate config entries** for one path: the last wins (Ruby
//!   `first(500).index_by`); the 500 limit counts raw entries.
//! - **Most specific wins before filtering**: a project entry that then fails
//!   its `environments` / `protected_branches_only` filter hides the agent's
//!   group entries.
//! - **`roles_in_project`** and user-access `roles` hold the single effective
//!   role name (`["developer"]`).
//! - **Unparsable agent configs** authorize nothing (implicit access stays).
//! - **JWT**: `exp`/`nbf` are checked only when present (ruby-jwt), no leeway.
//! - **authorize_proxy_user** checks credentials (401), then agent (404),
//!   then access (403).
//! - **Receptive agents**: kas lists them at `GET /api/v4/internal/kubernetes/receptive_agents`
//!   (upstream endpoint unconfirmed); Ed25519 keys are seeded from `token_seed` (see
//!   [`UrlConfiguration`]).
//! - **Version skew**: agent and GitLab on different majors are never compatible, not even
//!   17.11 ↔ 18.0 (see [`version_skew()`]).
//!
//! ```
//! use std::sync::Arc;
//! use kasim_gitlab::{GitLab, ManualClock, Settings};
//!
//! let gl = GitLab::new(
//!     Settings {
//!         kas_jwt_secret: b"secret".to_vec(),
//!         k8s_proxy_url: "https://kas.example.com/k8s-proxy".into(),
//!         token_seed: 1,
//!     },
//!     Arc::new(ManualClock::new(1_700_000_000)),
//! );
//! let group = gl.add_group(None, None, "group1").unwrap();
//! let project = gl.add_project(None, group, "project1").unwrap();
//! let agent = gl.add_agent(None, project, "my-agent").unwrap();
//! let token = gl.create_agent_token(agent).unwrap();
//! assert_eq!(gl.agent_info(&token).unwrap().agent_name, "my-agent");
//! ```

mod agent_info;
mod ci_access;
mod clock;
mod config_file;
mod environment;
mod http;
mod jwt;
mod kubeconfig;
mod model;
mod names;
mod token;
mod url_configuration;
mod user_access;
mod version_skew;

pub use agent_info::{AgentInfo, GitalyInfo, GitalyRepository};
pub use ci_access::{
    AUTHORIZED_ENTITY_LIMIT, AllowedAgent, AllowedAgentsForJob, CiAccessError, IdRef, JobEnvironmentRef, JobProject,
    JobUser,
};
pub use clock::{Clock, ManualClock};
pub use config_file::{
    CiAccess, CiAccessAs, CiAccessEntry, ConfigError, ConfigurationFile, Empty, ExtraKeyVal, IdEntry, Impersonate,
    LogLevel, Logging, MAX_CONFIG_FILE_SIZE, Observability, UserAccess, UserAccessAs, config_file_path,
    parse_config_file,
};
pub use environment::{EnvironmentError, environments_admit, pattern_matches};
pub use http::{HttpError, JOB_TOKEN_HEADER, KAS_JWT_HEADER, PRIVATE_TOKEN_HEADER, RECEPTIVE_AGENTS_PATH};
pub use jwt::{JwtError, sign_hs256, sign_kas_jwt, verify_kas_jwt};
pub use kubeconfig::{KubeconfigAgent, KubeconfigError, render_kubeconfig};
pub use model::{
    AgentId, GitLab, GroupId, JobEnvironment, JobId, ModelError, NewJob, ProjectId, Role, Settings, UserId,
};
pub use names::{MAX_AGENT_NAME_LEN, NameError, validate_agent_name};
pub use url_configuration::{
    NewUrlConfiguration, ReceptiveAgentEntry, ReceptiveJwt, ReceptiveMtls, UrlConfiguration, UrlConfigurationError,
    UrlConfigurationId,
};
pub use user_access::{
    AccessType, AuthorizeProxyUserResponse, ProxyAccessAs, ProxyAgent, ProxyUser, RoleGrant, UserAccessError, UserGrant,
};
pub use version_skew::{
    DEFAULT_GITLAB_VERSION, Version, VersionError, VersionSkew, VersionWarning, version_skew, version_warning,
};
