//! Generates one `#[test]` per scenario file × Kubernetes version, named
//! `scenarios::<file stem>::v1_<minor>` (so `cargo test scenarios::stream_limit` selects them).

use std::fmt::Write as _;
use std::path::Path;

#[derive(serde::Deserialize)]
struct Versions {
    #[serde(default)]
    kubernetes_versions: Option<Vec<String>>,
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_else(|_| Vec::new());
    files.retain(|p| p.extension().is_some_and(|x| x == "yaml"));
    files.sort();
    let mut out = String::new();
    for f in files {
        println!("cargo:rerun-if-changed={}", f.display());
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        // A file that does not parse still gets a test: the runner reports its errors.
        let versions = serde_yaml_ng::from_str::<Versions>(&text)
            .ok()
            .and_then(|v| v.kubernetes_versions)
            .unwrap_or_else(|| vec!["1.31".into(), "1.32".into(), "1.33".into()]);
        let stem = f.file_stem().and_then(|s| s.to_str()).unwrap_or("scenario");
        let module = stem.replace(['-', '.'], "_");
        let _ = writeln!(out, "mod {module} {{");
        for v in versions {
            let name = format!("v{}", v.trim_start_matches('v').replace('.', "_"));
            let _ = writeln!(
                out,
                "    #[test]\n    fn {name}() {{ crate::run_file({:?}, {v:?}); }}",
                f.display().to_string()
            );
        }
        let _ = writeln!(out, "}}");
    }
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into())).join("scenario_tests.rs");
    let _ = std::fs::write(dest, out);
}
