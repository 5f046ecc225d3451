//! The agent configuration file `.gitlab/agents/<name>/config.yaml`.
//!
//! kas turns the YAML into JSON and feeds it to protojson **without**
//! unknown-field tolerance, then runs proto validation. We mirror that with
//! `#[serde(deny_unknown_fields)]` structs and a handful of validating
//! deserializers, so that a config kas would refuse is refused here too, with
//! an error that points at the file, line, column and field.

use std::fmt;

use serde::de::value::MapAccessDeserializer;
use serde::de::{Error as _, MapAccess, SeqAccess, Visitor};
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
    #[error("{file}: config file is {size} bytes, larger than the {MAX_CONFIG_FILE_SIZE} bytes limit")]
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
    #[serde(default, deserialize_with = "null_as_default", skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<String>,
    /// Only jobs on protected refs may use this entry.
    #[serde(default, deserialize_with = "null_as_default", skip_serializing_if = "is_false")]
    pub protected_branches_only: bool,
}

/// `access_as` under a ci_access entry: a proto oneof, so exactly one key.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
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
    #[serde(default, deserialize_with = "null_as_default", skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Extra attributes.
    #[serde(default, deserialize_with = "null_as_default", skip_serializing_if = "Vec::is_empty")]
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
            _ => Err(format!("exactly one of `agent`, `impersonate`, `ci_job` must be set, got {set}")),
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
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// Deserializes a oneof: the raw struct is read inside `visit_map`, so a
/// "zero or two keys" error is raised while the YAML parser still knows the
/// mapping's position, and the error carries its line and column.
struct OneOf<Raw, T>(std::marker::PhantomData<(Raw, T)>, &'static str);

impl<'de, Raw, T> Visitor<'de> for OneOf<Raw, T>
where
    Raw: Deserialize<'de>,
    T: TryFrom<Raw, Error = String>,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a map with exactly one of {}", self.1)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        let raw = Raw::deserialize(MapAccessDeserializer::new(map))?;
        T::try_from(raw).map_err(A::Error::custom)
    }
}

impl<'de> Deserialize<'de> for CiAccessAs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(OneOf::<RawCiAccessAs, Self>(std::marker::PhantomData, "`agent`, `impersonate`, `ci_job`"))
    }
}

impl<'de> Deserialize<'de> for UserAccessAs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(OneOf::<RawUserAccessAs, Self>(std::marker::PhantomData, "`agent`, `user`"))
    }
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

/// Proto validation `min_len: 1`, checked inside the visitor so the error
/// points at the scalar.
fn non_empty_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a non-empty string")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
            if v.is_empty() {
                return Err(E::custom("value must not be empty"));
            }
            Ok(v.to_owned())
        }
    }
    d.deserialize_str(V)
}

/// Proto validation `min_items: 1` for `extra[].val`.
fn non_empty_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a non-empty list of strings")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            let mut out = Vec::new();
            while let Some(v) = seq.next_element::<String>()? {
                out.push(v);
            }
            if out.is_empty() {
                return Err(A::Error::custom("value must contain at least 1 item(s)"));
            }
            Ok(out)
        }
    }
    d.deserialize_seq(V)
}

/// Parses a config file the way kas does. `file` is only used in errors.
/// Empty (or comment-only) contents are an empty config, like a missing file.
pub fn parse_config_file(file: &str, contents: &[u8]) -> Result<ConfigurationFile, ConfigError> {
    if contents.len() > MAX_CONFIG_FILE_SIZE {
        return Err(ConfigError::TooLarge { file: file.to_owned(), size: contents.len() });
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
            // The position is reported separately; libyaml puts it mid-message.
            message = message.replacen(&suffix, "", 1);
            // serde_yaml_ng prefixes its own (coarser) idea of the path; we
            // report serde_path_to_error's separately, so drop it.
            if let Some((prefix, rest)) = message.split_once(": ") {
                let covers = field == prefix || field.strip_prefix(prefix).is_some_and(|r| r.starts_with(['.', '[']));
                if covers {
                    message = rest.to_owned();
                }
            }
            Err(ConfigError::Invalid { file: file.to_owned(), line, column, field, message })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = ".gitlab/agents/a/config.yaml";

    fn err(yaml: &str) -> String {
        parse_config_file(FILE, yaml.as_bytes()).expect_err("must be refused").to_string()
    }

    #[test]
    fn unknown_key_is_refused_with_position_and_field() {
        assert_eq!(
            err("ci_access:\n  projects:\n    - id: g/p\n      acces_as:\n        agent: {}\n"),
            ".gitlab/agents/a/config.yaml:4:7: ci_access.projects[0].acces_as: unknown field \
             `acces_as`, expected one of `id`, `default_namespace`, `access_as`, `environments`, \
             `protected_branches_only`"
        );
        assert_eq!(
            err("gitops: {}\nfoo: 1\n"),
            ".gitlab/agents/a/config.yaml:2:1: foo: unknown field `foo`, expected one of `gitops`, \
             `observability`, `ci_access`, `container_scanning`, `user_access`, \
             `remote_development`, `flux`"
        );
    }

    #[test]
    fn docs_example_with_singular_project_key_is_refused() {
        // The protected-branches page of the docs writes `ci_access.project:`;
        // strict parsing in kas refuses that file.
        assert_eq!(
            err("ci_access:\n  project:\n    - id: example/my-project\n"),
            ".gitlab/agents/a/config.yaml:2:3: ci_access.project: unknown field `project`, \
             expected `projects` or `groups`"
        );
    }

    #[test]
    fn wrong_types_are_refused() {
        assert_eq!(
            err("ci_access:\n  projects:\n    - id: g/p\n      protected_branches_only: maybe\n"),
            ".gitlab/agents/a/config.yaml:4:32: ci_access.projects[0].protected_branches_only: \
             invalid type: string \"maybe\", expected a boolean"
        );
        assert_eq!(
            err("ci_access:\n  projects:\n    - id: g/p\n      environments: prod\n"),
            ".gitlab/agents/a/config.yaml:4:21: ci_access.projects[0].environments: invalid type: \
             string \"prod\", expected a sequence"
        );
        assert_eq!(
            err("observability:\n  logging:\n    level: verbose\n"),
            ".gitlab/agents/a/config.yaml:3:12: observability.logging.level: unknown variant \
             `verbose`, expected one of `info`, `debug`, `warn`, `error`"
        );
        assert_eq!(
            err("- a\n"),
            ".gitlab/agents/a/config.yaml:1:1: .: invalid type: sequence, expected struct \
             ConfigurationFile"
        );
    }

    #[test]
    fn impersonate_requires_username_and_non_empty_extra_values() {
        assert_eq!(
            err("ci_access:\n  groups:\n    - id: g\n      access_as:\n        impersonate:\n          uid: x\n"),
            ".gitlab/agents/a/config.yaml:6:11: ci_access.groups[0].access_as.impersonate: \
             missing field `username`"
        );
        assert_eq!(
            err(
                "ci_access:\n  projects:\n    - id: g/p\n      access_as:\n        impersonate:\n          username: u\n          extra:\n            - key: k\n              val: []\n"
            ),
            ".gitlab/agents/a/config.yaml:9:20: \
             ci_access.projects[0].access_as.impersonate.extra[0].val: value must contain at \
             least 1 item(s)"
        );
        assert_eq!(
            err("ci_access:\n  projects:\n    - id: ''\n"),
            ".gitlab/agents/a/config.yaml:3:11: ci_access.projects[0].id: value must not be empty"
        );
    }

    #[test]
    fn access_as_needs_exactly_one_key() {
        assert_eq!(
            err("ci_access:\n  projects:\n    - id: g/p\n      access_as:\n        agent: {}\n        ci_job: {}\n"),
            ".gitlab/agents/a/config.yaml:5:9: ci_access.projects[0].access_as: exactly one of \
             `agent`, `impersonate`, `ci_job` must be set, got 2"
        );
        assert_eq!(
            err("ci_access:\n  projects:\n    - id: g/p\n      access_as: {}\n"),
            ".gitlab/agents/a/config.yaml:4:18: ci_access.projects[0].access_as: exactly one of \
             `agent`, `impersonate`, `ci_job` must be set, got 0"
        );
        assert_eq!(
            err("user_access:\n  access_as:\n    agent: {}\n    user: {}\n"),
            ".gitlab/agents/a/config.yaml:3:5: user_access.access_as: exactly one of `agent`, \
             `user` must be set, got 2"
        );
    }

    #[test]
    fn bad_yaml_is_refused() {
        assert_eq!(
            err("ci_access:\n  projects: [\n    - id: g/p\n"),
            ".gitlab/agents/a/config.yaml:3:5: ci_access.projects: did not find expected node \
             content, while parsing a flow node"
        );
    }

    #[test]
    fn size_limit_is_128_kib() {
        let mut at_limit = "# padding\n".repeat(MAX_CONFIG_FILE_SIZE / 10);
        at_limit.push_str(&" ".repeat(MAX_CONFIG_FILE_SIZE - at_limit.len()));
        assert_eq!(at_limit.len(), MAX_CONFIG_FILE_SIZE);
        assert_eq!(parse_config_file(FILE, at_limit.as_bytes()), Ok(ConfigurationFile::default()));
        let over = format!("{at_limit} ");
        assert_eq!(
            err(&over),
            ".gitlab/agents/a/config.yaml: config file is 131073 bytes, larger than the 131072 \
             bytes limit"
        );
    }

    #[test]
    fn empty_and_null_mean_unset() {
        for yaml in ["", "# only a comment\n", "ci_access:\n", "ci_access:\n  projects:\n"] {
            let cfg = parse_config_file(FILE, yaml.as_bytes()).expect(yaml);
            assert!(cfg.ci_access.unwrap_or_default().projects.is_empty(), "{yaml:?}");
        }
    }

    #[test]
    fn full_config_parses_into_typed_values() {
        let yaml = r#"
gitops:
  manifest_projects:
    - id: g/manifests
container_scanning: {cadence: "0 0 * * *"}
remote_development: {enabled: true}
flux: {resource_name: x}
observability:
  logging: {level: debug, grpc_level: warn}
  google_profiler: {enabled: false}
ci_access:
  projects:
    - id: G/P
      default_namespace: ns
      environments: [staging, review/*]
      protected_branches_only: true
      access_as:
        impersonate:
          username: alice
          uid: "1"
          groups: [a, b]
          extra: [{key: k, val: [v1, v2]}]
  groups:
    - id: g
      access_as: {ci_job: {}}
user_access:
  access_as: {user: {}}
  projects: [{id: g/p}]
  groups: [{id: g}]
"#;
        let cfg = parse_config_file(FILE, yaml.as_bytes()).expect("valid");
        let ci = cfg.ci_access.expect("ci_access");
        assert_eq!(ci.projects[0].id, "G/P");
        assert_eq!(ci.groups[0].access_as, Some(CiAccessAs::CiJob(Empty {})));
        assert_eq!(
            serde_json::to_value(&ci.projects[0]).expect("json"),
            serde_json::json!({
                "default_namespace": "ns",
                "access_as": {"impersonate": {"username": "alice", "uid": "1",
                    "groups": ["a", "b"], "extra": [{"key": "k", "val": ["v1", "v2"]}]}},
                "environments": ["staging", "review/*"],
                "protected_branches_only": true,
            })
        );
        assert_eq!(
            serde_json::to_value(&ci.groups[0]).expect("json"),
            serde_json::json!({"access_as": {"ci_job": {}}})
        );
        let ua = cfg.user_access.expect("user_access");
        assert_eq!(ua.access_as, Some(UserAccessAs::User));
        assert_eq!(ua.groups, vec![IdEntry { id: "g".into() }]);
        let logging = cfg.observability.and_then(|o| o.logging).expect("logging");
        assert_eq!(logging.level, Some(LogLevel::Debug));
        assert_eq!(logging.grpc_level, Some(LogLevel::Warn));
        assert!(cfg.gitops.is_some() && cfg.flux.is_some());
    }

    #[test]
    fn non_utf8_does_not_panic() {
        assert!(parse_config_file(FILE, &[0xff, 0xfe, b':']).is_err());
    }
}
