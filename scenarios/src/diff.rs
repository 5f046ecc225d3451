//! `kasim diff A.json B.json`: every request whose decision, status, identity or message differs
//! between two JSON reports — e.g. Kubernetes 1.31 against 1.33, or the simulator against a cluster.
//!
//! Requests are matched by `<scenario>/<step>/<version>`; when the two reports cover disjoint sets of
//! Kubernetes versions (1.31 vs 1.33), or with `--ignore-version`, by `<scenario>/<step>`. The
//! decision is `allowed` (2xx), `denied` (401/403) or `error` (anything else, or no response).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

/// Why a report could not be compared.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error("{file}: {source}")]
    Read { file: String, source: std::io::Error },
    #[error("{file}: not a kasim JSON report: {reason}")]
    Format { file: String, reason: String },
}

/// One request's outcome in a report.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub scenario: String,
    pub step: String,
    pub version: String,
    pub status: Option<u64>,
    pub message: Option<String>,
    pub identity: Option<Value>,
    pub error: Option<String>,
}

impl Outcome {
    pub fn decision(&self) -> &'static str {
        match self.status {
            Some(200..=299) => "allowed",
            Some(401 | 403) => "denied",
            _ => "error",
        }
    }
}

/// Reads the request outcomes of a report written by `kasim run --json`.
pub fn load(path: &Path) -> Result<Vec<Outcome>, DiffError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| DiffError::Read { file: file.clone(), source })?;
    parse(&file, &text)
}

/// Parses report JSON (see [`load`]).
pub fn parse(file: &str, text: &str) -> Result<Vec<Outcome>, DiffError> {
    let bad = |reason: &str| DiffError::Format { file: file.to_owned(), reason: reason.to_owned() };
    let v: Value = serde_json::from_str(text).map_err(|e| bad(&e.to_string()))?;
    let runs = v.get("runs").and_then(Value::as_array).ok_or_else(|| bad("missing \"runs\" array"))?;
    let mut out = Vec::new();
    for run in runs {
        let s = |k: &str| run.get(k).and_then(Value::as_str).map(str::to_owned);
        let scenario = s("scenario").ok_or_else(|| bad("a run has no \"scenario\""))?;
        let version = s("version").ok_or_else(|| bad("a run has no \"version\""))?;
        for step in run.get("steps").and_then(Value::as_array).into_iter().flatten() {
            let Some(req) = step.get("request") else { continue };
            let actual = req.get("actual").cloned().unwrap_or(Value::Null);
            out.push(Outcome {
                scenario: scenario.clone(),
                step: step.get("name").and_then(Value::as_str).unwrap_or("").to_owned(),
                version: version.clone(),
                status: actual.get("status").and_then(Value::as_u64),
                message: actual.get("message").and_then(Value::as_str).map(str::to_owned),
                identity: actual.get("identity").cloned().map(without_credential_id),
                error: actual.get("error").and_then(Value::as_str).map(str::to_owned),
            });
        }
    }
    Ok(out)
}

/// The `authentication.kubernetes.io/credential-id` extra names the token (its JTI), not the
/// identity: two runs never share it, so it is left out of the comparison.
fn without_credential_id(mut identity: Value) -> Value {
    if let Some(extra) = identity.get_mut("extra").and_then(Value::as_object_mut) {
        extra.remove("authentication.kubernetes.io/credential-id");
    }
    identity
}

/// One differing request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub key: String,
    /// `field: left → right`, one per differing field.
    pub changes: Vec<String>,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.changes.join("; "))
    }
}

fn show<T: std::fmt::Debug>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".to_owned(), |v| format!("{v:?}"))
}

/// Compares two reports; `ignore_version` matches requests by scenario and step only.
pub fn diff(a: &[Outcome], b: &[Outcome], ignore_version: bool) -> Vec<Difference> {
    let versions = |x: &[Outcome]| x.iter().map(|o| o.version.clone()).collect::<BTreeSet<_>>();
    let ignore = ignore_version || versions(a).is_disjoint(&versions(b));
    let key = |o: &Outcome| {
        if ignore { format!("{}/{}", o.scenario, o.step) } else { format!("{}/{}/{}", o.scenario, o.step, o.version) }
    };
    let index = |x: &[Outcome]| x.iter().map(|o| (key(o), o.clone())).collect::<BTreeMap<_, _>>();
    let (ia, ib) = (index(a), index(b));
    let keys: BTreeSet<&String> = ia.keys().chain(ib.keys()).collect();
    let mut out = Vec::new();
    for k in keys {
        let mut changes = Vec::new();
        match (ia.get(k), ib.get(k)) {
            (Some(_), None) => changes.push("only in the first report".to_owned()),
            (None, Some(_)) => changes.push("only in the second report".to_owned()),
            (Some(l), Some(r)) => {
                if l.decision() != r.decision() {
                    changes.push(format!("decision {} → {}", l.decision(), r.decision()));
                }
                if l.status != r.status {
                    changes.push(format!("status {} → {}", show(&l.status), show(&r.status)));
                }
                if l.identity != r.identity {
                    changes.push(format!("identity {} → {}", show(&l.identity), show(&r.identity)));
                }
                if l.message != r.message {
                    changes.push(format!("message {} → {}", show(&l.message), show(&r.message)));
                }
                if l.error != r.error {
                    changes.push(format!("error {} → {}", show(&l.error), show(&r.error)));
                }
            }
            (None, None) => {}
        }
        if !changes.is_empty() {
            out.push(Difference { key: k.clone(), changes });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(version: &str, status: u64, user: &str) -> String {
        serde_json::json!({"runs": [{"scenario": "s", "version": version, "steps": [
            {"name": "read", "request": {"actual": {"status": status, "identity": {"user": user}}}},
            {"name": "advance"}
        ]}]})
        .to_string()
    }

    #[test]
    fn identical_reports_have_no_differences() {
        let a = parse("a", &report("1.31", 200, "u")).unwrap();
        assert!(diff(&a, &a, false).is_empty());
    }

    #[test]
    fn versions_are_matched_across_disjoint_reports_and_changes_listed() {
        let a = parse("a", &report("1.31", 200, "u")).unwrap();
        let b = parse("b", &report("1.33", 403, "v")).unwrap();
        let d = diff(&a, &b, false);
        assert_eq!(d.len(), 1);
        assert_eq!(
            d[0].to_string(),
            "s/read: decision allowed → denied; status 200 → 403; identity Object {\"user\": String(\"u\")} → Object {\"user\": String(\"v\")}"
        );
    }

    #[test]
    fn the_credential_id_names_a_token_and_is_not_compared() {
        let with = |jti: &str, group: &str| {
            serde_json::json!({"runs": [{"scenario": "s", "version": "1.33", "steps": [{"name": "sa", "request": {"actual": {
                "status": 403, "identity": {"user": "system:serviceaccount:ns:agentk", "groups": [group],
                "extra": {"authentication.kubernetes.io/credential-id": [jti]}}}}}]}]})
            .to_string()
        };
        let a = parse("a", &with("JTI=1", "g")).unwrap();
        assert!(diff(&a, &parse("b", &with("JTI=2", "g")).unwrap(), false).is_empty());
        assert_eq!(diff(&a, &parse("b", &with("JTI=2", "h")).unwrap(), false).len(), 1);
    }

    #[test]
    fn missing_requests_and_bad_files() {
        let a = parse("a", &report("1.31", 200, "u")).unwrap();
        let d = diff(&a, &[], true);
        assert_eq!(d[0].changes, ["only in the first report"]);
        assert_eq!(
            parse("x.json", "{}").unwrap_err().to_string(),
            "x.json: not a kasim JSON report: missing \"runs\" array"
        );
        assert!(parse("x.json", "not json").is_err());
    }
}
