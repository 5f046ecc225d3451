//! The scenario file format: what one `scenarios/<name>.yaml` says.
//!
//! Every struct denies unknown keys (a typo must fail loudly, never fall back to a default).
//! Steps are maps with a `name` and exactly one action key (`request`, `load`, `advance`, `fault`,
//! `assert`) — checked in [`crate::validate`], which also checks what serde cannot (references
//! between fixtures, agent names, the version window). See `scenarios/README.md` for the prose.

use std::collections::BTreeMap;

use kasim_sim::fault::Fault;
use kasim_sim::topology::{PoolTopology, SimDuration, Topology};
use schemars::JsonSchema;
use serde::Deserialize;

/// One scenario file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Short identifier; test names and reports use it.
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Each version is its own run. Default: the support window 1.31, 1.32, 1.33.
    #[serde(default)]
    pub kubernetes_versions: Option<Vec<String>>,
    /// Allow versions outside the support window (the API server model must still know them).
    #[serde(default)]
    pub allow_unsupported_versions: bool,
    /// Runs only in the simulator, for this reason (shown in cluster reports as the skip reason):
    /// scenarios that need virtual time, faults, background load or the simulator's internals.
    #[serde(default)]
    pub sim_only: Option<String>,
    /// Default seed of `kasim run` without `--seed`.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// The simulated world. `agents` is not set here: one agentk per `gitlab.agents` entry.
    /// `drivers` default to none in scenario files (steps generate the load).
    #[serde(default)]
    pub topology: Topology,
    #[serde(default)]
    pub gitlab: GitLabFixtures,
    #[serde(default)]
    pub cluster: ClusterFixtures,
    /// Default timeout of every step (a step's own `timeout` wins). Default 60s.
    #[serde(default)]
    pub timeout: Option<SimDuration>,
    pub steps: Vec<Step>,
}

fn default_seed() -> u64 {
    1
}

/// What the GitLab stand-in holds.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GitLabFixtures {
    #[serde(default)]
    pub groups: Vec<Group>,
    #[serde(default)]
    pub projects: Vec<Project>,
    /// Default: one user `kasim` with id 1.
    #[serde(default)]
    pub users: Vec<User>,
    /// Each agent is connected by one agentk (`agentk-<i>`, cluster `apiserver-<i>`).
    pub agents: Vec<Agent>,
    #[serde(default)]
    pub jobs: Vec<Job>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub id: i64,
    pub path: String,
    /// Parent group id.
    #[serde(default)]
    pub parent: Option<i64>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Project {
    pub id: i64,
    pub path: String,
    /// Group id.
    pub group: i64,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub id: i64,
    pub username: String,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    #[serde(default)]
    pub id: Option<i64>,
    /// RFC 1123 label (GitLab's agent name rule).
    pub name: String,
    /// Id of the project holding `.gitlab/agents/<name>/config.yaml`.
    pub project: i64,
    /// The agent's `config.yaml`, inline.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub config: Option<serde_yaml_ng::Value>,
    /// agentk's pool limits (upstream defaults).
    #[serde(default)]
    pub pool: PoolTopology,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// How steps refer to the job.
    pub name: String,
    #[serde(default)]
    pub id: Option<i64>,
    /// Project id the job runs in.
    pub project: i64,
    /// User id; default the first user.
    #[serde(default)]
    pub user: Option<i64>,
    #[serde(default = "default_pipeline")]
    pub pipeline_id: i64,
    #[serde(default)]
    pub environment: Option<Environment>,
    /// Whether the pipeline's ref is protected. Default true.
    #[serde(default = "yes")]
    pub protected: bool,
}

fn default_pipeline() -> i64 {
    1
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    pub name: String,
    /// Default: the name.
    #[serde(default)]
    pub slug: Option<String>,
    pub tier: String,
}

/// Plain Kubernetes objects applied to every cluster's API server model at start, after the
/// impersonation RBAC agentk's service account always gets (see the README).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterFixtures {
    #[serde(default)]
    #[schemars(with = "Vec<serde_json::Value>")]
    pub objects: Vec<serde_yaml_ng::Value>,
}

/// One step: a `name` and exactly one action.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub name: String,
    /// Overrides the scenario's `timeout` for this step.
    #[serde(default)]
    pub timeout: Option<SimDuration>,
    #[serde(default)]
    pub request: Option<Request>,
    #[serde(default)]
    pub load: Option<Load>,
    /// Advance virtual time by this much.
    #[serde(default)]
    pub advance: Option<SimDuration>,
    #[serde(default)]
    pub fault: Option<Fault>,
    #[serde(default)]
    pub assert: Option<Assert>,
}

/// One HTTP request through kas's Kubernetes API proxy, as a CI job.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Job name (`gitlab.jobs[].name`).
    pub job: String,
    /// Kubeconfig context `<agent project full path>:<agent name>`; default: the job's only one.
    #[serde(default)]
    pub context: Option<String>,
    /// Bypass the kubeconfig: send `ci:<agent>:<job token>` for this agent id (for jobs the
    /// kubeconfig has no context for).
    #[serde(default)]
    pub agent_id: Option<i64>,
    /// Replace the job token (e.g. an invalid one).
    #[serde(default)]
    pub job_token: Option<String>,
    #[serde(default = "get")]
    pub method: String,
    pub path: String,
    /// JSON body (written as YAML).
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub body: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub expect: Expect,
    /// Per-version overrides, merged field by field over `expect`: `{"1.33": {body_contains: ...}}`.
    #[serde(default)]
    pub expect_by_version: BTreeMap<String, Expect>,
}

fn get() -> String {
    "GET".into()
}

/// What a request's outcome must be. Unset fields are not checked.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The Status `message` exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// A substring of the Status `message`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_contains: Option<String>,
    /// A substring of the response body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_contains: Option<String>,
    /// A substring the response body must not contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_excludes: Option<String>,
    /// A partial match of the JSON body: every given key must be there with this value (objects
    /// recursively; arrays and scalars exactly), like chainsaw's `assert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_json: Option<serde_json::Value>,
    /// The identity the API server acted as (its audit log), compared exactly per given field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    /// Bounds on the virtual latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<DurationRange>,
}

/// An identity as the API server saw it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// In order, including `system:authenticated`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<BTreeMap<String, Vec<String>>>,
}

/// Background load, started now; its requests go into the ledger (exactly one outcome each).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Load {
    pub kind: LoadKind,
    /// Agent name; default the first agent.
    #[serde(default)]
    pub agent: Option<String>,
    pub count: usize,
    /// `hold`: how long each call holds its stream.
    #[serde(default)]
    pub hold_for: Option<SimDuration>,
    /// `unary`: one call every `interval`.
    #[serde(default)]
    pub interval: Option<SimDuration>,
    /// Client-side deadline of each call. Default `hold_for` + 60s.
    #[serde(default)]
    pub timeout: Option<SimDuration>,
    /// `watch`: the job and path (e.g. `/api/v1/namespaces/default/pods?watch=1&timeoutSeconds=600`).
    #[serde(default)]
    pub job: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LoadKind {
    /// Testing-service `Hold` calls routed by kas: long-lived tunnel streams.
    Hold,
    /// Unary Testing calls at a steady rate.
    Unary,
    /// Long HTTP requests through the k8s proxy as a CI job.
    Watch,
}

/// Checks on the world now. Unset fields are not checked.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Assert {
    /// Agent name; default the first agent.
    #[serde(default)]
    pub agent: Option<String>,
    /// agentk's open tunnels now.
    #[serde(default)]
    pub streams: Option<Range>,
    /// kas's registered tunnel streams of the agent now (all replicas).
    #[serde(default)]
    pub kas_streams: Option<Range>,
    /// The largest tunnel count agentk ever reached.
    #[serde(default)]
    pub peak_streams: Option<Range>,
    /// Every scale-up of the pool started this many tunnels.
    #[serde(default)]
    pub scale_up_step: Option<Range>,
    /// Number of scale-ups so far.
    #[serde(default)]
    pub scale_ups: Option<Range>,
    /// Tunnels closed for idleness so far.
    #[serde(default)]
    pub idle_closed: Option<Range>,
    /// Ledger counts (load requests).
    #[serde(default)]
    pub requests: Option<RequestCounts>,
    /// Load requests that failed with a message containing `message`.
    #[serde(default)]
    pub failures: Option<FailureCount>,
    /// The longest a completed `hold` call waited for a tunnel (latency minus `hold_for`).
    #[serde(default)]
    pub queue_wait: Option<DurationRange>,
    #[serde(default)]
    pub connections: Option<Connections>,
    /// Run every invariant checker now (they also run continuously).
    #[serde(default)]
    pub checkers: bool,
}

/// Inclusive bounds; `eq` is both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Range {
    #[serde(default)]
    pub min: Option<u64>,
    #[serde(default)]
    pub max: Option<u64>,
    #[serde(default)]
    pub eq: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DurationRange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<SimDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<SimDuration>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestCounts {
    #[serde(default)]
    pub issued: Option<Range>,
    #[serde(default)]
    pub ok: Option<Range>,
    /// Ended other than OK (failed, timed out, abandoned).
    #[serde(default)]
    pub failed: Option<Range>,
    #[serde(default)]
    pub open: Option<Range>,
    /// Open past their deadline: lost.
    #[serde(default)]
    pub lost: Option<Range>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FailureCount {
    pub message: String,
    pub count: Range,
}

/// kas agent-listener connections (`kas-*`) and proxied ones (`proxy`).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Connections {
    /// Connections accepted by kas so far (initial ones plus every reconnection).
    #[serde(default)]
    pub kas_opened: Option<Range>,
    /// The oldest kas connection age observed during the run (sampled every second).
    #[serde(default)]
    pub max_age: Option<DurationRange>,
}
