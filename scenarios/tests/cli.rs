//! The `kasim` binary: exit codes, summary, valid JUnit XML and JSON results.

use std::process::Command;

fn kasim(args: &[&str]) -> (i32, String, String) {
    let out =
        Command::new(env!("CARGO_BIN_EXE_kasim")).args(args).current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn run_writes_summary_junit_and_json() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let (junit, json) = (dir.join("kasim.xml"), dir.join("kasim.json"));
    let (code, out, err) = kasim(&[
        "run",
        "rbac-impersonation.yaml",
        "k8s-versions.yaml",
        "--junit",
        junit.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("PASS rbac-impersonation k8s 1.32 seed 1 virtual 5s910ms"), "{out}");
    assert!(out.contains("6 runs, 6 passed, 0 failed, 0 skipped in "), "{out}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let cases: Vec<_> = doc.descendants().filter(|n| n.has_tag_name("testcase")).collect();
    assert_eq!(cases.len(), 6);
    assert_eq!(doc.root_element().attribute("failures"), Some("0"));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let keys: Vec<&str> =
        v["runs"][0]["steps"].as_array().unwrap().iter().filter_map(|s| s["request"]["key"].as_str()).collect();
    assert_eq!(keys[0], "rbac-impersonation/ci-job-reads-pods/1.31");
}

#[test]
fn a_failing_scenario_exits_1_and_junit_carries_step_expected_actual_and_replay() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let bad = dir.join("wrong-expectation.yaml");
    let text = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("k8s-versions.yaml"))
        .unwrap()
        .replace("gitVersion: v1.33.1", "gitVersion: v1.33.9");
    std::fs::write(&bad, text).unwrap();
    let junit = dir.join("fail.xml");
    let (code, out, _) = kasim(&["run", bad.to_str().unwrap(), "--k8s", "1.33", "--junit", junit.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL k8s-versions k8s 1.33 seed 1"), "{out}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let failure = doc.descendants().find(|n| n.has_tag_name("failure")).unwrap();
    let body = failure.text().unwrap();
    assert!(body.contains("step: version"), "{body}");
    assert!(body.contains(r#"expected: {"status":200,"body_json":{"gitVersion":"v1.33.9""#), "{body}");
    assert!(body.contains(r#"actual: body_json: at "gitVersion" expected "v1.33.9", got "v1.33.1""#), "{body}");
    assert!(body.contains("replay: cargo run -p kasim-scenarios --bin kasim -- replay"), "{body}");
}

#[test]
fn bad_input_exits_2() {
    assert_eq!(kasim(&["run", "nope.yaml"]).0, 2);
    let (code, _, err) = kasim(&["run", "k8s-versions.yaml", "--backend", "kube"]);
    assert_eq!((code, err.trim()), (2, "error: unknown backend \"kube\": want sim or cluster"));
    for shard in ["0/2", "3/2", "1-2", "a/b"] {
        let (code, _, err) = kasim(&["run", "k8s-versions.yaml", "--shard", shard]);
        assert_eq!(code, 2, "{shard}");
        assert!(err.contains("want N/M with 1 <= N <= M"), "{err}");
    }
    let (code, _, err) = kasim(&["run", "k8s-versions.yaml", "--k8s", "1.34"]);
    assert_eq!(code, 2);
    assert!(err.contains("outside the GitLab agent's supported window"), "{err}");
}

#[test]
fn lint_list_and_schema() {
    let (code, out, err) = kasim(&["lint", "."]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.lines().count(), 4, "{out}");
    let (code, out, _) = kasim(&["schema"]);
    assert_eq!(code, 0);
    let schema: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(schema["properties"]["steps"].is_object(), "{out}");
}

/// `kasim diff` on simulator outputs: 1.31 and 1.33 decide every request alike; a changed decision
/// in one report is listed with the fields that differ.
#[test]
fn diff_lists_requests_whose_decision_status_or_identity_differ() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let (a, b) = (dir.join("diff-1.31.json"), dir.join("diff-1.33.json"));
    for (v, f) in [("1.31", &a), ("1.33", &b)] {
        let (code, out, err) = kasim(&["run", "rbac-impersonation.yaml", "--k8s", v, "--json", f.to_str().unwrap()]);
        assert_eq!(code, 0, "{out}{err}");
    }
    let (code, out, _) = kasim(&["diff", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.trim_end().ends_with("requests differ") && out.starts_with("0 of "), "{out}");

    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&b).unwrap()).unwrap();
    let step = v["runs"][0]["steps"].as_array_mut().unwrap().iter_mut().find(|s| s["request"].is_object()).unwrap();
    let name = step["name"].as_str().unwrap().to_owned();
    step["request"]["actual"]["status"] = serde_json::json!(403);
    let changed = dir.join("diff-changed.json");
    std::fs::write(&changed, v.to_string()).unwrap();
    let (code, out, _) = kasim(&["diff", a.to_str().unwrap(), changed.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("rbac-impersonation/{name}: decision allowed → denied; status 200 → 403")), "{out}");
    assert!(out.contains("1 of "), "{out}");

    let (code, _, err) = kasim(&["diff", a.to_str().unwrap(), "/nonexistent.json"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent.json"), "{err}");
}

/// `--shard N/M` splits the scenario × version runs: every run in exactly one shard.
#[test]
fn shards_partition_the_runs() {
    let mut seen = vec![];
    for shard in ["1/2", "2/2"] {
        let (code, out, err) = kasim(&["run", "rbac-impersonation.yaml", "k8s-versions.yaml", "--shard", shard]);
        assert_eq!(code, 0, "{out}{err}");
        seen.extend(
            out.lines().filter(|l| l.starts_with("PASS ")).map(|l| l.split(" virtual").next().unwrap().to_owned()),
        );
    }
    seen.sort();
    let before = seen.len();
    seen.dedup();
    assert_eq!((before, seen.len()), (6, 6), "{seen:?}");
}

/// Every `kasim run` the CI pipelines in `ci/` execute is accepted by this CLI: run here without a
/// cluster, each stops at "no cluster" (or, for the Helm mode, at the missing kind network or helm
/// CLI), never at an unknown or malformed flag.
#[test]
fn the_pipelines_kasim_commands_parse() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut seen = 0;
    for f in [
        "ci/github/nightly-kind-matrix.yml",
        "ci/github/release-validation.yml",
        "ci/gitlab/nightly-kind-matrix.yml",
        "ci/gitlab/release-validation.yml",
    ] {
        let text = std::fs::read_to_string(root.join(f)).unwrap().replace("\\\n", " ");
        for line in text.lines().filter(|l| l.contains("target/release/kasim run")) {
            let cmd = line.split("target/release/kasim").nth(1).unwrap();
            let cmd = cmd
                .replace("${{ matrix.kubernetes }}", "1.32")
                .replace("${{ matrix.shard }}/${SHARDS}", "1/2")
                .replace("$KUBERNETES_VERSION", "1.32")
                .replace("$SHARD/$SHARDS", "1/2")
                .replace('"', "");
            let args: Vec<&str> = cmd.split_whitespace().collect();
            let out = Command::new(env!("CARGO_BIN_EXE_kasim"))
                .args(&args)
                .env("KUBECONFIG", "/nonexistent/kubeconfig")
                .current_dir(&root)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{f}: {args:?}: {err}");
            assert!(
                err.starts_with("error: --backend cluster: no cluster: KUBECONFIG names /nonexistent/kubeconfig")
                    || err.starts_with("error: no helm CLI on PATH")
                    || err.starts_with("error: --agentk helm: cannot find the `kind` Docker network's gateway"),
                "{f}: {args:?}: {err}"
            );
            seen += 1;
        }
    }
    assert_eq!(seen, 4);
}
