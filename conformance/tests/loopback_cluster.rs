//! The cluster backend end to end against the Kubernetes API server model served as a real HTTP
//! server on loopback: to the backend it is just a kubeconfig. Covers the run namespace, agentk's
//! RBAC and token, fixture apply, a CI job's requests through kas → agentk, the identity read back
//! with SelfSubjectReview, and cleanup after success, after a setup failure and after a panic.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::rbac::v1::ClusterRole;
use kasim_apiserver::{ApiServer, KubeVersion, UserInfo};
use kasim_conformance::run::RunError;
use kasim_conformance::token::TokenError;
use kasim_conformance::{
    AgentStack, ApplyMode, ClusterBackend, ClusterRun, ExistingCluster, RunOptions, TokenSource, who_am_i,
};
use kube::api::{Api, ListParams};
use kube::config::Kubeconfig;

const ADMIN_TOKEN: &str = "kasim-admin-token";

const FIXTURES: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: ci-read-configmaps}
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: ci-read-configmaps}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: ci-read-configmaps}
subjects:
- {kind: Group, name: "gitlab:ci_job", apiGroup: rbac.authorization.k8s.io}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: greeting}
data: {hello: cluster}
"#;

struct Model {
    apiserver: ApiServer,
    backend: ExistingCluster,
}

/// The model on loopback, knowing an admin (agentk's token comes from its TokenRequest API).
async fn model() -> Model {
    let apiserver = ApiServer::builder(KubeVersion::V1_32)
        .token(
            ADMIN_TOKEN,
            UserInfo { username: "kasim-admin".into(), groups: vec!["system:masters".into()], ..Default::default() },
        )
        .build()
        .unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let a = apiserver.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let a = a.clone();
            tokio::spawn(async move {
                let _ = a.serve_connection(s).await;
            });
        }
    });
    let kc = Kubeconfig::from_yaml(&format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: model\n  cluster: {{server: 'http://{addr}'}}\nusers:\n- name: admin\n  user: {{token: {ADMIN_TOKEN}}}\ncontexts:\n- name: model\n  context: {{cluster: model, user: admin}}\ncurrent-context: model\n"
    ))
    .unwrap();
    Model { apiserver, backend: ExistingCluster::from_kubeconfig(kc, Some("model".into()), "the API server model") }
}

fn opts(ns: &str) -> RunOptions {
    RunOptions { token: TokenSource::default(), ..RunOptions::new(ns.trim_start_matches("kasim-")) }
}

/// Nothing of run `ns` is left: namespace, cluster-scoped RBAC, namespaced fixtures.
async fn assert_gone(m: &Model, ns: &str) {
    let client = m.backend.access().client().await.unwrap();
    let not_found = |r: Result<_, kube::Error>| matches!(r, Err(kube::Error::Api(s)) if s.code == 404);
    assert!(not_found(Api::<Namespace>::all(client.clone()).get(ns).await.map(|_| ())), "namespace {ns} left behind");
    let role = format!("kasim-agentk-impersonate-{ns}");
    assert!(
        not_found(Api::<ClusterRole>::all(client.clone()).get(&role).await.map(|_| ())),
        "ClusterRole {role} left behind"
    );
    assert!(
        not_found(Api::<ConfigMap>::namespaced(client, ns).get("greeting").await.map(|_| ())),
        "fixture left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ci_job_reaches_the_run_namespace_through_kas_as_itself_and_everything_is_removed() {
    let ns = "kasim-loopback-ok";
    let m = model().await;
    assert_eq!(m.backend.describe(), "existing cluster from the API server model (context model)");
    let run = ClusterRun::create(m.backend.access(), opts(ns)).await.unwrap();
    assert_eq!(run.service_account_username(), "system:serviceaccount:kasim-loopback-ok:agentk");

    // The model answers server-side apply with 415; the fallback is reported, never hidden. A second
    // apply exercises the replace path (409 on create).
    let applied = run.apply_fixtures(FIXTURES).await.unwrap();
    assert_eq!(applied.len(), 3);
    assert!(applied.iter().all(|a| a.mode == ApplyMode::CreateOrReplaceAfter415 && a.namespace.as_deref() == Some(ns)));
    run.apply_fixtures(&FIXTURES.replace("hello: cluster", "hello: again")).await.unwrap();

    // A fixture aimed at another namespace is refused, naming both.
    let err = run
        .apply_fixtures("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: kube-system}\n")
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "fixture ConfigMap/x: namespace \"kube-system\" is outside the run namespace \"kasim-loopback-ok\""
    );

    // agentk's kubeconfig names the cluster and the service account, in the run namespace.
    let kc = run.agent_kubeconfig().unwrap();
    assert_eq!(kc.contexts[0].context.as_ref().unwrap().namespace.as_deref(), Some(ns));
    let token =
        run.agent_config().auth_info.token.map(|t| secrecy::ExposeSecret::expose_secret(&t).to_owned()).unwrap();
    assert!(!token.is_empty() && !format!("{run:?}").contains(&token), "the token must not appear in Debug output");

    let stack = AgentStack::start(&run).await.unwrap();
    let (job, client) = stack.ci_job_client().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    // agentk connects asynchronously: retry until the tunnel is up.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let cm = loop {
        match cms.get("greeting").await {
            Ok(cm) => break cm,
            Err(e) if tokio::time::Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("CI job never reached the cluster: {e}"),
        }
    };
    assert_eq!(cm.data.unwrap()["hello"], "again");
    assert_eq!(cms.list(&ListParams::default()).await.unwrap().items.len(), 1);

    // The identity the API server saw, read back through the proxy.
    let who = who_am_i(&client).await.unwrap();
    assert_eq!(who.username.as_deref(), Some(format!("gitlab:ci_job:{job}").as_str()));
    let groups = who.groups.unwrap();
    assert!(groups.contains(&"gitlab:ci_job".to_owned()), "{groups:?}");
    // The model's audit log: agentk's service account called, impersonating the job.
    let audit = m.apiserver.audit();
    let last = audit.last().unwrap();
    assert_eq!(last.user.as_ref().unwrap().username, run.service_account_username());
    assert_eq!(last.impersonated_user.as_ref().unwrap().username, format!("gitlab:ci_job:{job}"));

    // Least privilege holds: the job may read configmaps in the run namespace, not write them.
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({"metadata": {"name": "nope"}})).unwrap();
    match cms.create(&Default::default(), &cm).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 403),
        other => panic!("expected 403, got {other:?}"),
    }

    drop(stack);
    run.cleanup().await.unwrap();
    assert_gone(&m, ns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_request_the_server_refuses_fails_with_the_reason_and_cleans_up() {
    let ns = "kasim-loopback-tokenrequest";
    let m = model().await;
    let opts = RunOptions {
        token: TokenSource::TokenRequest { expiration_seconds: 60 },
        ..RunOptions::new("loopback-tokenrequest")
    };
    let err = ClusterRun::create(m.backend.access(), opts).await.unwrap_err();
    let RunError::Token(TokenError::Api { .. }) = &err else { panic!("{err}") };
    assert!(err.to_string().contains("may not specify a duration less than 10 minutes"), "{err}");
    assert_gone(&m, ns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_scenario_still_removes_the_run() {
    let ns = "kasim-loopback-panic";
    let m = model().await;
    let access = m.backend.access().clone();
    let scenario = tokio::spawn(async move {
        let run = ClusterRun::create(&access, opts(ns)).await.unwrap();
        run.apply_fixtures(FIXTURES).await.unwrap();
        panic!("scenario failed half-way");
    });
    assert!(scenario.await.unwrap_err().is_panic());
    assert_gone(&m, ns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_in_the_same_namespace_is_refused_without_touching_the_first() {
    let ns = "kasim-loopback-twice";
    let m = model().await;
    let first = ClusterRun::create(m.backend.access(), opts(ns)).await.unwrap();
    let err = ClusterRun::create(m.backend.access(), opts(ns)).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "namespace kasim-loopback-twice already exists (a concurrent run, or a leftover: delete it)"
    );
    let client = m.backend.access().client().await.unwrap();
    Api::<Namespace>::all(client).get(ns).await.expect("the first run's namespace survives");
    first.cleanup().await.unwrap();
    assert_gone(&m, ns).await;
}
