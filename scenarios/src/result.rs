//! What a run produced: the per-run record the reports (summary, JUnit, JSON) are made from.
//!
//! Request outcomes are keyed `<scenario>/<step>/<version>` so `kasim diff` can compare two JSON
//! reports (e.g. simulator against a real cluster) request by request.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::spec::Expect;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Pass,
    Fail,
    /// Not run on this backend (e.g. a `sim_only` scenario on a cluster); `skipped` says why.
    Skip,
}

/// One scenario × version × seed.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub scenario: String,
    pub file: String,
    pub version: String,
    /// `sim` or `cluster`.
    pub backend: &'static str,
    /// The simulator's seed; 0 on a cluster (nothing is seeded there).
    pub seed: u64,
    pub status: Status,
    /// Why the run was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// Virtual time at the end of the run (wall-clock time on a cluster), in milliseconds.
    pub virtual_ms: u128,
    pub steps: Vec<StepResult>,
    /// The first failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    pub replay: String,
    /// Every setting derived from the seed (on a cluster: the cluster, namespace and agentk mode).
    pub derived: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    pub name: String,
    pub kind: &'static str,
    pub status: Status,
    /// Virtual time when the step ended (wall-clock time since the start on a cluster), in ms.
    pub at_ms: u128,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestOutcome>,
    /// Mismatches, one per line.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// A request step's request, expectation and outcome.
#[derive(Debug, Clone, Serialize)]
pub struct RequestOutcome {
    /// `<scenario>/<step>/<version>`.
    pub key: String,
    pub job: String,
    pub method: String,
    pub path: String,
    pub expected: Expect,
    pub actual: Actual,
}

/// What came back.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Actual {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<crate::spec::Identity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub latency_ms: u128,
    /// The body, cut to 2 KiB.
    pub body: String,
}

impl Actual {
    /// Records a response: its status, the `message` of a Kubernetes `Status` body, and the body
    /// cut to 2 KiB.
    pub fn record_response(&mut self, status: u16, body: &str) {
        self.status = Some(status);
        self.message = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| (v["kind"] == "Status").then(|| v["message"].as_str().map(str::to_owned)).flatten());
        self.body = body.chars().take(2048).collect();
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub step: String,
    pub expected: String,
    pub actual: String,
}
