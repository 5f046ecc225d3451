//! The agent configuration file `.gitlab/agents/<name>/config.yaml`.
//!
//! kas turns the YAML into JSON and feeds it to protojson **without**
//! unknown-field tolerance, then runs proto validation. We mirror that with
//! `#[serde(deny_unknown_fields)]` structs and a handful of validating
//! deserializers, so that a config kas would refuse is refused here too, with
//! an error that points at the file, line, column and field.

use serde::{Deserialize, Deserializer, Serialize};

/// kas refuses configuration files larger than this many bytes (128 KiB).
pub const MAX_CONFIG_FILE_SIZE: usize = 128 * 1024;

/// Path of an agent's config file inside its project's repository.
pub fn config_file_path(agent_name: &str) -> String {
    format!(".gitlab/agents/{agent_name}/config.yaml")
}

/// Why a configuration file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Larger than [`MAX_CONFIG_FILE_SIZE`].
    #[error(
        "{file}: config file is {size} bytes, larger than the {MAX_CONFIG_FILE_SIZE} bytes limit"
    )]
    TooLarge {
        /// Repository path of the file.
        file: String,
        /// Actual size in bytes.
        size: usize,
    },
    /// Bad YAML, an unknown key, a wrong type or a failed validation rule.
    #[error("{file}:{line}:{column}: {field}: {message}")]
    Invalid {
        /// Repository path of the file.
        file: String,
        /// One-based line (0 when the parser gave no position).
        line: usize,
        /// One-based column (0 when the parser gave no position).
        column: usize,
        /// Field path such as `ci_access.projects[0].access_as`; `.` is the root.
        field: String,
        /// What is wrong, without the position.
        message: String,
    },
}

/// Top-level agent configuration (`ConfigurationFile` in agentcfg.proto).
///
/// Sections this simulator does not interpret are kept as opaque JSON so real
/// configs parse; anything not listed is an error, as in kas.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigurationFile {
    /// Opaque `gitops` section.
    #[serde(default)]
    pub gitops: Option<serde_json::Value>,
    /// Logging settings.
    #[serde(default)]
    pub observability: Option<Observability>,
    /// Which CI projects and groups may use the agent.
    #[serde(default)]
    pub ci_access: Option<CiAccess>,
    /// Opaque `container_scanning` section.
    #[serde(default)]
    pub container_scanning: Option<serde_json::Value>,
    /// Which users may use the agent through the k8s proxy.
    #[serde(default)]
    pub user_access: Option<UserAccess>,
    /// Opaque `remote_development` section.
    #[serde(default)]
    pub remote_development: Option<serde_json::Value>,
    /// Opaque `flux` section.
    #[serde(default)]
    pub flux: Option<serde_json::Value>,
}

/// `ci_access`: project and group entries.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CiAccess {
    /// Project entries, `id` = project full path.
    #[serde(default, deserialize_with = "null_as_default")]
    pub projects: Vec<CiAccessEntry>,
    /// Group entries, `id` = group full path.
    #[serde(default, deserialize_with = "null_as_default")]
    pub groups: Vec<CiAccessEntry>,
}

/// One `ci_access.projects[]` or `ci_access.groups[]` entry.
///
/// Serializes the way Rails hands it back as `configuration` in
/// `allowed_agents`: without `id`, and (because kas posts the config as
/// protojson, which drops zero values) without empty or false fields.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CiAccessEntry {
    /// Full path of the project or group (compared lower-cased).
    #[serde(deserialize_with = "non_empty_string", skip_serializing)]
    pub id: String,
    /// Namespace put in the CI kubeconfig context; empty = unset.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub default_namespace: String,
    /// Identity used against the Kubernetes API; `None` = the agent itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_as: Option<CiAccessAs>,
    /// Environment name patterns; empty = every job.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub environments: Vec<String>,
    /// Only jobs on protected refs may use this entry.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_false"
    )]
    pub protected_branches_only: bool,
}

/// `access_as` under a ci_access entry: a proto oneof, so exactly one key.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(try_from = "RawCiAccessAs", rename_all = "snake_case")]
pub enum CiAccessAs {
    /// `agent: {}`: use the agent's own service account.
    Agent(Empty),
    /// `impersonate: {...}`: a static identity.
    Impersonate(Impersonate),
    /// `ci_job: {}`: an identity derived from the CI job.
    CiJob(Empty),
}

/// An empty message such as `agent: {}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// `access_as.impersonate`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Impersonate {
    /// Kubernetes user name (required, non-empty).
    #[serde(deserialize_with = "non_empty_string")]
    pub username: String,
    /// Kubernetes UID; empty = unset.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// Kubernetes groups.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub groups: Vec<String>,
    /// Extra attributes.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub extra: Vec<ExtraKeyVal>,
}

/// One `impersonate.extra[]` item.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraKeyVal {
    /// Attribute name (non-empty).
    #[serde(deserialize_with = "non_empty_string")]
    pub key: String,
    /// Values; proto validation wants at least one.
    #[serde(deserialize_with = "non_empty_vec")]
    pub val: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCiAccessAs {
    #[serde(default)]
    agent: Option<Empty>,
    #[serde(default)]
    impersonate: Option<Impersonate>,
    #[serde(default)]
    ci_job: Option<Empty>,
}

impl TryFrom<RawCiAccessAs> for CiAccessAs {
    type Error = String;

    fn try_from(raw: RawCiAccessAs) -> Result<Self, String> {
        let set = usize::from(raw.agent.is_some())
            + usize::from(raw.impersonate.is_some())
            + usize::from(raw.ci_job.is_some());
        match (raw.agent, raw.impersonate, raw.ci_job) {
            (Some(e), None, None) => Ok(Self::Agent(e)),
            (None, Some(i), None) => Ok(Self::Impersonate(i)),
            (None, None, Some(e)) => Ok(Self::CiJob(e)),
            _ => Err(format!(
                "exactly one of `agent`, `impersonate`, `ci_job` must be set, got {set}"
            )),
        }
    }
}

/// `user_access`: who may use the agent through the k8s proxy.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserAccess {
    /// Identity; optional since GitLab 18.3, default `agent`.
    #[serde(default)]
    pub access_as: Option<UserAccessAs>,
    /// Projects whose members get access.
    #[serde(default, deserialize_with = "null_as_default")]
    pub projects: Vec<IdEntry>,
    /// Groups (and descendants) whose members get access.
    #[serde(default, deserialize_with = "null_as_default")]
    pub groups: Vec<IdEntry>,
}

/// `user_access.access_as`: a oneof of `agent: {}` and `user: {}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawUserAccessAs")]
pub enum UserAccessAs {
    /// Requests go out as the agent's service account.
    Agent,
    /// Requests impersonate `gitlab:user:<username>`.
    User,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUserAccessAs {
    #[serde(default)]
    agent: Option<Empty>,
    #[serde(default)]
    user: Option<Empty>,
}

impl TryFrom<RawUserAccessAs> for UserAccessAs {
    type Error = String;

    fn try_from(raw: RawUserAccessAs) -> Result<Self, String> {
        match (raw.agent, raw.user) {
            (Some(_), None) => Ok(Self::Agent),
            (None, Some(_)) => Ok(Self::User),
            (a, u) => Err(format!(
                "exactly one of `agent`, `user` must be set, got {}",
                usize::from(a.is_some()) + usize::from(u.is_some())
            )),
        }
    }
}

/// A `{id: <full path>}` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdEntry {
    /// Full path of the project or group.
    #[serde(deserialize_with = "non_empty_string")]
    pub id: String,
}

/// `observability`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Observability {
    /// Log levels.
    #[serde(default)]
    pub logging: Option<Logging>,
    /// Opaque `google_profiler` settings.
    #[serde(default)]
    pub google_profiler: Option<serde_json::Value>,
}

/// `observability.logging`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logging {
    /// agentk log level; default `info`.
    #[serde(default)]
    pub level: Option<LogLevel>,
    /// gRPC library log level; unset = same default as kas.
    #[serde(default)]
    pub grpc_level: Option<LogLevel>,
}

/// `LogLevelEnum` values accepted by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// `info` (0).
    Info,
    /// `debug` (1).
    Debug,
    /// `warn` (2).
    Warn,
    /// `error` (3).
    Error,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// protojson reads JSON `null` as "unset", so `projects:` with no value is
/// an empty list rather than a type error.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn non_empty_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if s.is_empty() {
        return Err(serde::de::Error::custom("value must not be empty"));
    }
    Ok(s)
}

fn non_empty_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let v = Vec::<String>::deserialize(d)?;
    if v.is_empty() {
        return Err(serde::de::Error::custom(
            "value must contain at least 1 item(s)",
        ));
    }
    Ok(v)
}

/// Parses a config file the way kas does. `file` is only used in errors.
/// Empty (or comment-only) contents are an empty config, like a missing file.
pub fn parse_config_file(file: &str, contents: &[u8]) -> Result<ConfigurationFile, ConfigError> {
    if contents.len() > MAX_CONFIG_FILE_SIZE {
        return Err(ConfigError::TooLarge {
            file: file.to_owned(),
            size: contents.len(),
        });
    }
    let de = serde_yaml_ng::Deserializer::from_slice(contents);
    match serde_path_to_error::deserialize::<_, Option<ConfigurationFile>>(de) {
        Ok(cfg) => Ok(cfg.unwrap_or_default()),
        Err(err) => {
            let field = err.path().to_string();
            let inner = err.into_inner();
            let (line, column) = inner.location().map_or((0, 0), |l| (l.line(), l.column()));
            let mut message = inner.to_string();
            let suffix = format!(" at line {line} column {column}");
            if let Some(m) = message.strip_suffix(&suffix) {
                message = m.to_owned();
            }
            // serde_yaml_ng prefixes its own idea of the path; we report
            // serde_path_to_error's separately, so drop the duplicate.
            if let Some(m) = message.strip_prefix(&format!("{field}: ")) {
                message = m.to_owned();
            }
            Err(ConfigError::Invalid {
                file: file.to_owned(),
                line,
                column,
                field,
                message,
            })
        }
    }
}
