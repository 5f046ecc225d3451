//! `kasim run --backend cluster` end to end against the Kubernetes API server model served as a
//! real HTTP server on loopback: to the cluster backend it is only a kubeconfig (admin token, no
//! pre-provisioned service-account token: agentk's comes from the TokenRequest API). Covers the
//! run namespace, agentk's RBAC, fixture apply, requests through kas → agentk, the identity read
//! back with SelfSubjectReview, reports, cleanup after success and after a failure, and `kasim
//! diff` between a simulated and a cluster run.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::Full;
use kasim_apiserver::{ApiServer, KubeVersion, UserInfo};
use serde_json::Value;

const ADMIN: &str = "kasim-admin-token";

/// The model on loopback and a kubeconfig file for it (`name` keeps tests' files apart).
async fn model(version: KubeVersion, name: &str) -> (ApiServer, SocketAddr, PathBuf) {
    let server = ApiServer::builder(version)
        .token(
            ADMIN,
            UserInfo { username: "kasim-admin".into(), groups: vec!["system:masters".into()], ..Default::default() },
        )
        .build()
        .unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let s = server.clone();
    tokio::spawn(async move {
        while let Ok((io, _)) = l.accept().await {
            let s = s.clone();
            tokio::spawn(async move { s.serve_connection(io).await });
        }
    });
    let kc = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.kubeconfig"));
    std::fs::write(
        &kc,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: model\n  cluster: {{server: 'http://{addr}'}}\nusers:\n- name: admin\n  user: {{token: {ADMIN}}}\ncontexts:\n- name: model\n  context: {{cluster: model, user: admin}}\ncurrent-context: model\n"
        ),
    )
    .unwrap();
    (server, addr, kc)
}

async fn kasim(args: &[&str], kubeconfig: Option<&Path>) -> (i32, String, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_kasim"));
    cmd.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    match kubeconfig {
        Some(k) => cmd.env("KUBECONFIG", k),
        None => cmd.env("KUBECONFIG", "/nonexistent/kubeconfig"),
    };
    let out = cmd.output().await.unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// GET as the admin, straight to the model.
async fn admin_get(addr: SocketAddr, path: &str) -> Value {
    let req = http::Request::get(path)
        .header("host", "model")
        .header("authorization", format!("Bearer {ADMIN}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let dialer: kasim_core::transport::Dialer = std::sync::Arc::new(kasim_core::transport::tcp::TcpConnector);
    let resp = kasim_core::http_client::send(&dialer, &addr.to_string(), req).await.unwrap();
    serde_json::from_slice(&resp.body).unwrap()
}

/// Names of the items at `path` that mention a kasim run.
async fn leftovers(addr: SocketAddr) -> Vec<String> {
    let mut left = vec![];
    for path in [
        "/api/v1/namespaces",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        "/api/v1/serviceaccounts",
        "/api/v1/configmaps",
    ] {
        let v = admin_get(addr, path).await;
        for item in v["items"].as_array().unwrap() {
            let (name, ns) = (item["metadata"]["name"].as_str().unwrap(), item["metadata"]["namespace"].as_str());
            if name.contains("kasim-") || ns.is_some_and(|n| n.starts_with("kasim-")) {
                left.push(format!("{path} {}/{name}", ns.unwrap_or("")));
            }
        }
    }
    left
}

fn tmp(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_runs_against_a_cluster_reports_like_the_simulator_and_leaves_nothing() {
    let (_server, addr, kc) = model(KubeVersion::V1_33, "suite").await;
    let (json, junit) = (tmp("cluster.json"), tmp("cluster.xml"));
    let (code, out, err) = kasim(
        &[
            "run",
            "--backend",
            "cluster",
            ".",
            "--kubernetes-version",
            "1.33",
            "--json",
            json.to_str().unwrap(),
            "--junit",
            junit.to_str().unwrap(),
        ],
        Some(&kc),
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!(
            "cluster: existing cluster from {} (context model) runs Kubernetes v1.33.1",
            kc.display()
        )),
        "{out}"
    );
    for name in ["k8s-versions", "rbac-impersonation"] {
        assert!(out.contains(&format!("PASS {name} k8s 1.33 cluster ")), "{out}");
    }
    assert!(out.contains("SKIP rotation k8s 1.33 cluster 0s (sim_only: 24 hours of connection rotation"), "{out}");
    assert!(out.contains("SKIP stream-limit k8s 1.33 cluster 0s (sim_only: reads agentk's pool"), "{out}");
    assert!(out.contains("4 runs, 2 passed, 0 failed, 2 skipped in "), "{out}");

    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    assert_eq!(doc.root_element().attribute("skipped"), Some("2"), "{xml}");
    assert_eq!(doc.descendants().filter(|n| n.has_tag_name("skipped")).count(), 2, "{xml}");

    // The report speaks the scenario's vocabulary: identities and messages mapped back from the
    // run namespace; the run's settings are recorded.
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let run = v["runs"].as_array().unwrap().iter().find(|r| r["scenario"] == "rbac-impersonation").unwrap();
    assert_eq!(run["backend"], "cluster");
    assert!(run["derived"]["namespace"].as_str().unwrap().starts_with("kasim-rbac-impersonation-133-"), "{run}");
    assert_eq!(run["derived"]["server"], "v1.33.1");
    assert_eq!(run["replay"], "kasim run --backend cluster ./rbac-impersonation.yaml --kubernetes-version 1.33");
    let step = |name: &str| run["steps"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap().clone();
    let reads = step("ci-job-reads-pods");
    assert_eq!(reads["request"]["actual"]["identity"]["user"], "gitlab:ci_job:1074499489");
    assert_eq!(
        step("agent-identity")["request"]["actual"]["message"],
        "pods is forbidden: User \"system:serviceaccount:gitlab-agent:agentk\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
    );
    assert!(step("nested-impersonation-refused")["request"]["actual"]["identity"].is_null());

    assert_eq!(leftovers(addr).await, Vec::<String>::new());

    // The same requests in the simulator decide alike.
    let sim = tmp("sim.json");
    let (code, out, err) = kasim(
        &["run", "rbac-impersonation.yaml", "k8s-versions.yaml", "--k8s", "1.33", "--json", sim.to_str().unwrap()],
        None,
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = kasim(&["diff", sim.to_str().unwrap(), json.to_str().unwrap()], None).await;
    eprintln!("{out}{err}");
    assert_eq!(code, 0, "{out}{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_names_its_reason_and_leaves_nothing() {
    let (_server, addr, kc) = model(KubeVersion::V1_32, "failures").await;
    let base = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("k8s-versions.yaml")).unwrap();
    // A fixture the API server refuses half-way: the RBAC before it was applied and must go.
    let bad_fixture = tmp("bad-fixture.yaml");
    std::fs::write(
        &bad_fixture,
        base.replace("name: k8s-versions", "name: bad-fixture").replace(
            "cluster:\n  objects:\n",
            "cluster:\n  objects:\n    - {apiVersion: v1, kind: ConfigMap, metadata: {name: Not_A_Name}}\n",
        ),
    )
    .unwrap();
    // An assert step reads the simulator's internals: a cluster run must refuse it, naming the step.
    let sim_step = tmp("sim-step.yaml");
    std::fs::write(
        &sim_step,
        base.replace("name: k8s-versions", "name: sim-step").replace(
            "  - name: discovery\n",
            "  - name: look-inside\n    assert: {checkers: true}\n  - name: discovery\n",
        ),
    )
    .unwrap();
    let (code, out, err) =
        kasim(&["run", "--backend", "cluster", bad_fixture.to_str().unwrap(), sim_step.to_str().unwrap()], Some(&kc))
            .await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("FAIL bad-fixture k8s 1.32 cluster"), "{out}");
    assert!(out.contains("step \"(setup)\": applying cluster fixtures: "), "{out}");
    assert!(out.contains("Not_A_Name"), "{out}");
    assert!(out.contains("FAIL sim-step k8s 1.32 cluster"), "{out}");
    assert!(out.contains("step \"look-inside\" uses assert (it reads the simulator's internals); mark the scenario `sim_only: <reason>`"), "{out}");
    assert_eq!(leftovers(addr).await, Vec::<String>::new());

    // A version the cluster does not run is refused before anything is created.
    let (code, _, err) =
        kasim(&["run", "--backend", "cluster", "k8s-versions.yaml", "--kubernetes-version", "1.31"], Some(&kc)).await;
    assert_eq!((code, err.trim()), (2, "error: the cluster runs Kubernetes 1.32 (v1.32.5), not 1.31"));
}

#[tokio::test]
async fn without_a_cluster_the_backend_says_why_in_one_line() {
    let (code, out, err) = kasim(&["run", "--backend", "cluster", "k8s-versions.yaml"], None).await;
    assert_eq!(code, 2, "{out}");
    assert_eq!(
        err.trim(),
        "error: --backend cluster: no cluster: KUBECONFIG names /nonexistent/kubeconfig, which does not exist"
    );
    let (code, _, err) = kasim(&["run", "--backend", "cluster", "k8s-versions.yaml", "--seed", "3"], None).await;
    assert_eq!((code, err.trim()), (2, "error: --seed/--seeds apply to the simulator; a cluster run is not seeded"));
    let (code, _, err) =
        kasim(&["run", "--backend", "cluster", "k8s-versions.yaml", "--set", "image.tag=x"], None).await;
    assert_eq!((code, err.trim()), (2, "error: --chart, --set and --kas-address need --agentk helm"));
    let helm = ["run", "--backend", "cluster", "k8s-versions.yaml", "--agentk", "helm"];
    let (code, _, err) = kasim(&[&helm[..], &["--kas-address", "http://10.0.0.1:8150"]].concat(), None).await;
    assert_eq!(
        (code, err.trim()),
        (2, "error: --kas-address \"http://10.0.0.1:8150\": want grpc://host:port or grpcs://host:port")
    );
    let (code, _, err) =
        kasim(&[&helm[..], &["--kas-address", "grpc://h:1", "--set", "image.tag"]].concat(), None).await;
    assert_eq!((code, err.trim()), (2, "error: --set \"image.tag\": want key=value"));
}
