//! Each headline scenario must FAIL when the behaviour it guards is broken, so none passes
//! vacuously: the same file runs with a broken topology, fixture or expectation.

use std::path::Path;

use kasim_scenarios::result::{RunResult, Status};
use kasim_scenarios::validate::{self, Loaded};
use kasim_scenarios::{report, runner};

fn load(file: &str) -> Loaded {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    validate::load(&p).unwrap_or_else(|e| panic!("{e:?}"))
}

fn run(l: &Loaded, version: &str) -> RunResult {
    runner::run(l, version.parse().unwrap(), l.spec.seed).unwrap().0
}

fn assert_fails(r: &RunResult, step: &str, needle: &str) {
    assert_eq!(r.status, Status::Fail, "{}", report::detailed(r));
    let f = r.failure.as_ref().unwrap();
    assert_eq!(f.step, step, "{}", report::detailed(r));
    assert!(f.actual.contains(needle), "{}", report::detailed(r));
}

/// A pool allowed 600 tunnels in steps of 20 breaks the cap and the step size.
#[test]
fn stream_limit_fails_without_the_500_cap() {
    let mut l = load("stream-limit.yaml");
    l.spec.gitlab.agents[0].pool.max_connections = 600;
    l.spec.gitlab.agents[0].pool.scale_up_step = 20;
    let r = run(&l, "1.33");
    assert_eq!(r.status, Status::Fail, "{}", report::detailed(&r));
    let f = r.failure.as_ref().unwrap();
    // The continuous stream-cap checker or the assertion catches it, whichever comes first.
    assert!(f.actual.contains("stream cap") || f.actual.contains("peak_streams"), "{}", report::detailed(&r));
}

/// No rotation at all (no max age, no proxy lifetime): the reconnection count is out of range.
#[test]
fn rotation_fails_when_connections_are_never_replaced() {
    let mut l = load("rotation.yaml");
    l.spec.topology.kas.max_connection_age = kasim_sim::topology::SimDuration::secs(0);
    l.spec.topology.proxy.lifetime = kasim_sim::topology::SimDuration::secs(0);
    let r = run(&l, "1.33");
    assert_fails(&r, "rotated-without-loss", "connections.kas_opened: expected 12..=13, got 1");
}

/// An agent configured for `agent` access instead of `ci_job`: the CI job's identity is wrong.
#[test]
fn rbac_fails_when_the_job_is_not_impersonated() {
    let mut l = load("rbac-impersonation.yaml");
    let cfg = l.spec.gitlab.agents[0].config.as_mut().unwrap();
    cfg["ci_access"]["projects"][0]["access_as"] = serde_yaml_ng::from_str("{agent: {}}").unwrap();
    let r = run(&l, "1.32");
    assert_fails(&r, "ci-job-reads-pods", "status: expected 200, got 403");
}

/// Without the version-dependent expectations, 1.32 and 1.33 report other versions than 1.31.
#[test]
fn k8s_versions_fail_without_version_dependent_expectations() {
    let mut l = load("k8s-versions.yaml");
    for st in &mut l.spec.steps {
        if let Some(r) = &mut st.request {
            r.expect_by_version.clear();
        }
    }
    assert_eq!(run(&l, "1.31").status, Status::Pass);
    let r = run(&l, "1.33");
    assert_fails(&r, "version", "body_json: at \"gitVersion\" expected \"v1.31.9\", got \"v1.33.1\"");
}
