//! The same run against real clusters: an existing one from KUBECONFIG, kind, k3s. Each skips with
//! a one-line reason when its cluster cannot be had here.

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kasim_conformance::{AgentStack, BackendError, ClusterBackend, ClusterRun, RunOptions, who_am_i};
use kube::api::Api;

/// One scenario on any backend: fixture, CI job through kas, identity, cleanup.
async fn scenario(backend: &dyn ClusterBackend) {
    let id = format!("conf-{}", std::process::id());
    let run = ClusterRun::create(backend.access(), RunOptions::new(&id)).await.unwrap();
    let ns = run.namespace().to_owned();
    run.apply_fixtures(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: ci}\nrules:\n- {apiGroups: [''], resources: [configmaps], verbs: [get]}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: ci}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: ci}\nsubjects:\n- {kind: Group, name: 'gitlab:ci_job', apiGroup: rbac.authorization.k8s.io}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: greeting}\ndata: {hello: cluster}\n",
    )
    .await
    .unwrap();
    let stack = AgentStack::start(&run).await.unwrap();
    let (job, client) = stack.ci_job_client().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let mut last = None;
    for _ in 0..150 {
        match cms.get("greeting").await {
            Ok(_) => {
                last = None;
                break;
            }
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(last.is_none(), "CI job never reached {ns}: {last:?}");
    assert_eq!(who_am_i(&client).await.unwrap().username, Some(format!("gitlab:ci_job:{job}")));
    drop(stack);
    run.cleanup().await.unwrap();
}

fn skip(e: &BackendError) -> bool {
    if let BackendError::Unavailable(reason) = e {
        eprintln!("skipped: {reason}");
        return true;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_cluster_from_kubeconfig() {
    // Opt-in: a developer's KUBECONFIG may point at a cluster nobody wants tests in.
    if std::env::var_os("KASIM_EXISTING_CLUSTER").is_none() {
        eprintln!(
            "skipped: set KASIM_EXISTING_CLUSTER=1 (and KUBECONFIG, optionally KASIM_CONTEXT) to run against an existing cluster"
        );
        return;
    }
    let backend = match kasim_conformance::ExistingCluster::from_env(std::env::var("KASIM_CONTEXT").ok()) {
        Ok(b) => b,
        Err(e) if skip(&e) => return,
        Err(e) => panic!("{e}"),
    };
    scenario(&backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kind_cluster_per_version() {
    let version = std::env::var("KASIM_KIND_VERSION").unwrap_or_else(|_| "1.32".into());
    let backend =
        match kasim_conformance::KindCluster::create(&version, &format!("kasim-test-{}", std::process::id()), false)
            .await
        {
            Ok(b) => Box::new(b),
            Err(e) if skip(&e) => return,
            Err(e) => panic!("{e}"),
        };
    scenario(backend.as_ref()).await;
    backend.teardown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k3s_container() {
    let backend = match kasim_conformance::K3sCluster::start("1.32").await {
        Ok(b) => Box::new(b),
        Err(e) if skip(&e) => return,
        Err(e) => panic!("{e}"),
    };
    scenario(backend.as_ref()).await;
    backend.teardown().await.unwrap();
}
