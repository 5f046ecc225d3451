//! kind-configs/ holds one cluster configuration per supported Kubernetes version, each pinning its
//! node image by digest to the matching minor version.

use kasim_scenarios::version::SUPPORTED;
use serde_json::Value;

fn configs() -> Vec<(String, Value)> {
    let dir = kasim_conformance::kind::configs_dir();
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let v: Value = serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.file_stem().unwrap().to_string_lossy().into_owned(), v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn one_config_per_supported_version() {
    let versions: Vec<String> = configs().into_iter().map(|(v, _)| v).collect();
    let supported: Vec<String> = SUPPORTED.iter().map(|v| v.to_string()).collect();
    assert_eq!(versions, supported);
}

#[test]
fn node_images_are_pinned_by_digest_to_their_version() {
    for (version, cfg) in configs() {
        assert_eq!(cfg["kind"], "Cluster", "{version}");
        assert_eq!(cfg["apiVersion"], "kind.x-k8s.io/v1alpha4", "{version}");
        let nodes = cfg["nodes"].as_array().unwrap_or_else(|| panic!("{version}: no nodes"));
        assert!(!nodes.is_empty(), "{version}");
        for node in nodes {
            let image = node["image"].as_str().unwrap_or_else(|| panic!("{version}: node without image"));
            let (name, digest) =
                image.split_once("@sha256:").unwrap_or_else(|| panic!("{version}: {image} not pinned"));
            assert!(
                digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
                "{image}"
            );
            let tag = name.strip_prefix("kindest/node:v").unwrap_or_else(|| panic!("{image}: not kindest/node"));
            assert!(tag.starts_with(&format!("{version}.")), "{image} is not Kubernetes {version}");
        }
    }
}
