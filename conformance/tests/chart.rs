//! The chart mirrors the upstream gitlab-agent chart's values, so the real agentk image and chart
//! options work against kasim's kas. Without helm, the checks are textual; with helm, it renders.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn chart() -> PathBuf {
    kasim_conformance::images::repo_root().join("conformance/charts/gitlab-agent")
}

fn values() -> Value {
    serde_yaml_ng::from_str(&std::fs::read_to_string(chart().join("values.yaml")).unwrap()).unwrap()
}

fn templates() -> String {
    let mut all = String::new();
    for e in std::fs::read_dir(chart().join("templates")).unwrap() {
        all.push_str(&std::fs::read_to_string(e.unwrap().path()).unwrap());
    }
    all
}

/// The upstream chart's keys the conformance mode relies on.
const KEYS: [&str; 11] = [
    "config.token",
    "config.secretName",
    "config.kasAddress",
    "config.kasCaCert",
    "rbac.create",
    "rbac.useExistingRole",
    "serviceAccount.create",
    "serviceAccount.name",
    "extraEnv",
    "image.repository",
    "image.tag",
];

#[test]
fn values_have_the_upstream_keys_and_templates_use_them() {
    let v = values();
    let t = templates();
    for key in KEYS {
        let mut node = &v;
        for part in key.split('.') {
            node = node.get(part).unwrap_or_else(|| panic!("values.yaml lacks {key}"));
        }
        assert!(t.contains(&format!(".Values.{key}")), "no template uses .Values.{key}");
    }
    assert_eq!(v["rbac"]["create"], true);
    assert_eq!(v["image"]["repository"], "kasim/agentk");
    // agentk's flags, as the real chart passes them.
    for flag in ["--kas-address", "--token-file", "--ca-cert-file"] {
        assert!(t.contains(flag), "deployment lacks {flag}");
    }
    let chart: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(chart().join("Chart.yaml")).unwrap()).unwrap();
    assert_eq!(chart["name"], "gitlab-agent");
}

#[test]
fn helm_renders_the_chart_with_a_least_privilege_role() {
    if Command::new("helm").arg("version").output().map(|o| !o.status.success()).unwrap_or(true) {
        eprintln!("skipped: no helm CLI on PATH (the textual chart checks still ran)");
        return;
    }
    let out = Command::new("helm")
        .args(["template", "t", chart().to_str().unwrap(), "--namespace", "kasim-x"])
        .args(["--set", "config.kasAddress=grpc://kas:8150", "--set", "config.token=t0ken"])
        .args(["--set", "rbac.useExistingRole=kasim-agentk-impersonate-kasim-x"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let docs = kasim_conformance::apply::parse_documents(&String::from_utf8_lossy(&out.stdout)).unwrap();
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    for k in ["Secret", "ServiceAccount", "ClusterRoleBinding", "Deployment"] {
        assert!(kinds.contains(&k), "{kinds:?} lacks {k}");
    }
    let crb = docs.iter().find(|d| d["kind"] == "ClusterRoleBinding").unwrap();
    assert_eq!(crb["roleRef"]["name"], "kasim-agentk-impersonate-kasim-x");
    let missing = Command::new("helm").args(["template", "t", chart().to_str().unwrap()]).output().unwrap();
    assert!(!missing.status.success(), "rendering without kasAddress/token must fail");
}
