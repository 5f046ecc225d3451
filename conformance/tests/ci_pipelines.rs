//! The CI pipelines' Kubernetes version matrices equal kind-configs/ and the scenarios' defaults.

use kasim_scenarios::version::SUPPORTED;
use serde_json::Value;

fn load(path: &str) -> Value {
    let p = kasim_conformance::images::repo_root().join(path);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn strings(v: &Value, what: &str) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("{what}: not a list"))
        .iter()
        .map(|x| x.as_str().unwrap_or_else(|| panic!("{what}: {x} is not a quoted string")).to_owned())
        .collect()
}

fn expected() -> Vec<String> {
    let supported: Vec<String> = SUPPORTED.iter().map(|v| v.to_string()).collect();
    let mut kind: Vec<String> = std::fs::read_dir(kasim_conformance::kind::configs_dir())
        .unwrap()
        .filter_map(|e| e.unwrap().path().file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    kind.sort();
    assert_eq!(kind, supported, "kind-configs/ and kasim_scenarios::version::SUPPORTED disagree");
    supported
}

#[test]
fn github_matrices_match() {
    let want = expected();
    let nightly = load("ci/github/nightly-kind-matrix.yml");
    let m = &nightly["jobs"]["kind"]["strategy"]["matrix"];
    assert_eq!(strings(&m["kubernetes"], "nightly kubernetes"), want);
    assert!(m["shard"].as_array().is_some_and(|s| !s.is_empty()), "nightly: no shards");
    let release = load("ci/github/release-validation.yml");
    assert_eq!(strings(&release["jobs"]["validate"]["strategy"]["matrix"]["kubernetes"], "release kubernetes"), want);
}

#[test]
fn gitlab_matrices_match() {
    let want = expected();
    let nightly = load("ci/gitlab/nightly-kind-matrix.yml");
    let m = &nightly["kind"]["parallel"]["matrix"][0];
    assert_eq!(strings(&m["KUBERNETES_VERSION"], "nightly KUBERNETES_VERSION"), want);
    assert!(!strings(&m["SHARD"], "SHARD").is_empty());
    let release = load("ci/gitlab/release-validation.yml");
    assert_eq!(strings(&release["release-validation"]["parallel"]["matrix"][0]["KUBERNETES_VERSION"], "release"), want);
}

#[test]
fn every_pipeline_uses_the_kind_configs_and_uploads_results() {
    for p in [
        "ci/github/nightly-kind-matrix.yml",
        "ci/gitlab/nightly-kind-matrix.yml",
        "ci/github/release-validation.yml",
        "ci/gitlab/release-validation.yml",
    ] {
        let text = std::fs::read_to_string(kasim_conformance::images::repo_root().join(p)).unwrap();
        for needle in ["kind-configs/", "ci/build-images.sh", "--backend cluster", "junit", "kind export logs"] {
            assert!(text.contains(needle), "{p} lacks {needle:?}");
        }
    }
}
