//! In-process tests through `ApiServer::handle`: the least machinery that
//! exercises the whole request pipeline (authn → impersonation → RBAC →
//! handler → audit).

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use kasim_apiserver::{AggregationMode, ApiServer, AuditDecision, BoxBody, KubeVersion, UserInfo};
use serde_json::{Value, json};

const AGENT: &str = "system:serviceaccount:gitlab-agent:agentk";

fn agent() -> UserInfo {
    UserInfo {
        username: AGENT.into(),
        uid: "agent-uid".into(),
        groups: vec![
            "system:serviceaccounts".into(),
            "system:serviceaccounts:gitlab-agent".into(),
        ],
        ..Default::default()
    }
}

fn server_with(mode: AggregationMode) -> ApiServer {
    ApiServer::builder(KubeVersion::V1_32)
        .aggregation(mode)
        .token(
            "admin",
            UserInfo {
                username: "kubernetes-admin".into(),
                groups: vec!["system:masters".into()],
                ..Default::default()
            },
        )
        .token("sa-token", agent())
        .token(
            "nobody",
            UserInfo {
                username: "nobody".into(),
                ..Default::default()
            },
        )
        .yaml(
            r#"
apiVersion: v1
kind: Namespace
metadata: {name: gitlab-agent}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: agentk, namespace: gitlab-agent}
"#,
        )
        .build()
        .expect("fixtures load")
}

fn server() -> ApiServer {
    server_with(AggregationMode::Kind)
}

async fn call_full(
    s: &ApiServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, Value) {
    let mut b = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    if body.is_some()
        && !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        b = b.header("content-type", "application/json");
    }
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b
        .body(Full::new(Bytes::from(body.unwrap_or("").to_string())))
        .unwrap();
    let resp = s.handle(req).await;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, v)
}

async fn call(
    s: &ApiServer,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let body = body.map(|b| b.to_string());
    call_full(s, method, path, Some(token), &[], body.as_deref()).await
}

// ---------------------------------------------------------------- RBAC

fn rbac_fixtures(s: &ApiServer) {
    s.apply_yaml(
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: cm-reader, namespace: default}
rules:
- apiGroups: [""]
  resources: [configmaps]
  resourceNames: [allowed]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: agent-cm, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: cm-reader}
subjects:
- {kind: ServiceAccount, name: agentk, namespace: gitlab-agent}
"#,
    )
    .unwrap();
}

#[tokio::test]
async fn forbidden_texts_are_upstreams() {
    let s = server();
    rbac_fixtures(&s);
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "nobody",
            "GET",
            "/api/v1/namespaces/default/pods",
            r#"pods is forbidden: User "nobody" cannot list resource "pods" in API group "" in the namespace "default""#,
        ),
        (
            "nobody",
            "GET",
            "/api/v1/namespaces/default/pods/p",
            r#"pods "p" is forbidden: User "nobody" cannot get resource "pods" in API group "" in the namespace "default""#,
        ),
        (
            "nobody",
            "GET",
            "/api/v1/namespaces/default/pods?watch=true",
            r#"pods is forbidden: User "nobody" cannot watch resource "pods" in API group "" in the namespace "default""#,
        ),
        (
            "nobody",
            "POST",
            "/api/v1/namespaces/default/pods/p/exec",
            r#"pods "p" is forbidden: User "nobody" cannot create resource "pods/exec" in API group "" in the namespace "default""#,
        ),
        (
            "nobody",
            "GET",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            r#"clusterroles.rbac.authorization.k8s.io is forbidden: User "nobody" cannot list resource "clusterroles" in API group "rbac.authorization.k8s.io" at the cluster scope"#,
        ),
        (
            "nobody",
            "DELETE",
            "/api/v1/namespaces/default/configmaps",
            r#"configmaps is forbidden: User "nobody" cannot deletecollection resource "configmaps" in API group "" in the namespace "default""#,
        ),
        (
            "nobody",
            "GET",
            "/api/v1/namespaces/kube-system",
            r#"namespaces "kube-system" is forbidden: User "nobody" cannot get resource "namespaces" in API group "" in the namespace "kube-system""#,
        ),
        (
            "nobody",
            "GET",
            "/metrics",
            r#"forbidden: User "nobody" cannot get path "/metrics""#,
        ),
        (
            "sa-token",
            "GET",
            "/api/v1/namespaces/default/configmaps/other",
            r#"configmaps "other" is forbidden: User "system:serviceaccount:gitlab-agent:agentk" cannot get resource "configmaps" in API group "" in the namespace "default""#,
        ),
        (
            "sa-token",
            "GET",
            "/api/v1/namespaces/gitlab-agent/configmaps/allowed",
            r#"configmaps "allowed" is forbidden: User "system:serviceaccount:gitlab-agent:agentk" cannot get resource "configmaps" in API group "" in the namespace "gitlab-agent""#,
        ),
    ];
    for (token, method, path, message) in cases {
        let (code, body) = call(&s, method, path, token, None).await;
        assert_eq!(code, 403, "{method} {path}: {body}");
        assert_eq!(body["message"], *message, "{method} {path}");
        assert_eq!(body["reason"], "Forbidden");
        assert_eq!(body["kind"], "Status");
        assert_eq!(body["status"], "Failure");
    }
    // The RoleBinding grants exactly get on the named configmap.
    let (code, body) = call(
        &s,
        "GET",
        "/api/v1/namespaces/default/configmaps/allowed",
        "sa-token",
        None,
    )
    .await;
    assert_eq!((code, body["reason"].as_str()), (404, Some("NotFound")));
    // Authenticated users may read discovery and /version via the bootstrap policy.
    for path in ["/version", "/api", "/apis", "/api/v1", "/healthz"] {
        assert_eq!(call(&s, "GET", path, "nobody", None).await.0, 200, "{path}");
    }
    // Authorization precedes routing, so unknown paths are 404 only for the authorized.
    assert_eq!(
        call(
            &s,
            "GET",
            "/api/v1/namespaces/default/widgets",
            "nobody",
            None
        )
        .await
        .0,
        403
    );
    let (code, body) = call(
        &s,
        "GET",
        "/api/v1/namespaces/default/widgets",
        "admin",
        None,
    )
    .await;
    assert_eq!(code, 404);
    assert_eq!(
        body["message"],
        "the server could not find the requested resource"
    );
}

#[tokio::test]
async fn unauthenticated_requests_get_401() {
    let s = server();
    for token in [None, Some("wrong")] {
        let (code, body) = call_full(&s, "GET", "/version", token, &[], None).await;
        assert_eq!(code, 401);
        assert_eq!(
            body,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
        );
    }
    let audit = s.audit();
    assert_eq!(audit.len(), 2);
    assert!(
        audit
            .iter()
            .all(|e| e.decision == AuditDecision::Unauthenticated && e.user.is_none())
    );
}

// -------------------------------------------------------- impersonation

fn impersonation_fixtures(s: &ApiServer) {
    s.apply_yaml(
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: impersonate}
rules:
- apiGroups: [""]
  resources: [users]
  resourceNames: ["gitlab:user:1"]
  verbs: [impersonate]
- apiGroups: [""]
  resources: [groups]
  resourceNames: ["gitlab:ci_job", "gitlab:project:2"]
  verbs: [impersonate]
- apiGroups: ["authentication.k8s.io"]
  resources: [uids]
  resourceNames: ["u-1"]
  verbs: [impersonate]
- apiGroups: ["authentication.k8s.io"]
  resources: ["userextras/agent.gitlab.com/id", "userextras/agent.gitlab.com/config_project_id"]
  verbs: [impersonate]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: agentk-impersonate}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: impersonate}
subjects:
- {kind: ServiceAccount, name: agentk, namespace: gitlab-agent}
"#,
    )
    .unwrap();
}

#[tokio::test]
async fn impersonated_identity_is_what_the_server_sees() {
    let s = server();
    impersonation_fixtures(&s);
    let headers = [
        ("Impersonate-User", "gitlab:user:1"),
        ("Impersonate-Group", "gitlab:ci_job"),
        ("Impersonate-Group", "gitlab:project:2"),
        ("Impersonate-Uid", "u-1"),
        ("Impersonate-Extra-agent.gitlab.com%2fid", "7"),
        (
            "Impersonate-Extra-agent.gitlab.com%2Fconfig_project_id",
            "2",
        ),
        (
            "Impersonate-Extra-agent.gitlab.com%2Fconfig_project_id",
            "3",
        ),
    ];
    let (code, body) = call_full(
        &s,
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        Some("sa-token"),
        &headers,
        Some(r#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let expected = json!({
        "username": "gitlab:user:1",
        "uid": "u-1",
        "groups": ["gitlab:ci_job", "gitlab:project:2", "system:authenticated"],
        "extra": {
            "agent.gitlab.com/config_project_id": ["2", "3"],
            "agent.gitlab.com/id": ["7"],
        },
    });
    assert_eq!(body["status"]["userInfo"], expected);
    assert_eq!(body["kind"], "SelfSubjectReview");

    let ev = s.audit().pop().unwrap();
    assert_eq!(ev.decision, AuditDecision::Allowed);
    assert_eq!(ev.status, 201);
    assert_eq!(ev.method, "POST");
    assert_eq!(ev.path, "/apis/authentication.k8s.io/v1/selfsubjectreviews");
    assert_eq!(ev.attributes.verb, "create");
    assert_eq!(ev.attributes.resource, "selfsubjectreviews");
    let user = ev.user.clone().unwrap();
    assert_eq!(user.username, AGENT);
    assert_eq!(
        user.groups,
        [
            "system:serviceaccounts",
            "system:serviceaccounts:gitlab-agent",
            "system:authenticated"
        ]
    );
    let eff = ev.effective_user().unwrap();
    assert_eq!(serde_json::to_value(eff).unwrap(), expected);
}

#[tokio::test]
async fn impersonation_without_groups_appends_authenticated() {
    let s = server();
    impersonation_fixtures(&s);
    let (code, body) = call_full(
        &s,
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        Some("sa-token"),
        &[("Impersonate-User", "gitlab:user:1")],
        None,
    )
    .await;
    assert_eq!(code, 201);
    assert_eq!(
        body["status"]["userInfo"],
        json!({"username": "gitlab:user:1", "groups": ["system:authenticated"]})
    );
    // Without impersonation the review shows the token's user.
    let (_, body) = call(
        &s,
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        "sa-token",
        None,
    )
    .await;
    assert_eq!(body["status"]["userInfo"]["username"], AGENT);
    assert_eq!(body["status"]["userInfo"]["uid"], "agent-uid");
}

#[tokio::test]
async fn forbidden_impersonation_is_denied_with_upstream_messages() {
    let s = server();
    impersonation_fixtures(&s);
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("Impersonate-User", "gitlab:ci_job:1")],
            r#"users "gitlab:ci_job:1" is forbidden: User "system:serviceaccount:gitlab-agent:agentk" cannot impersonate resource "users" in API group "" at the cluster scope"#,
        ),
        (
            &[
                ("Impersonate-User", "gitlab:user:1"),
                ("Impersonate-Group", "system:masters"),
            ],
            r#"groups "system:masters" is forbidden: User "system:serviceaccount:gitlab-agent:agentk" cannot impersonate resource "groups" in API group "" at the cluster scope"#,
        ),
        (
            &[
                ("Impersonate-User", "gitlab:user:1"),
                ("Impersonate-Uid", "u-2"),
            ],
            r#"uids.authentication.k8s.io "u-2" is forbidden: User "system:serviceaccount:gitlab-agent:agentk" cannot impersonate resource "uids" in API group "authentication.k8s.io" at the cluster scope"#,
        ),
        (
            &[
                ("Impersonate-User", "gitlab:user:1"),
                ("Impersonate-Extra-other.example%2Fkey", "v"),
            ],
            r#"userextras.authentication.k8s.io "v" is forbidden: User "system:serviceaccount:gitlab-agent:agentk" cannot impersonate resource "userextras/other.example/key" in API group "authentication.k8s.io" at the cluster scope"#,
        ),
        (
            &[(
                "Impersonate-User",
                "system:serviceaccount:kube-system:default",
            )],
            r#"serviceaccounts "default" is forbidden: User "system:serviceaccount:gitlab-agent:agentk" cannot impersonate resource "serviceaccounts" in API group "" in the namespace "kube-system""#,
        ),
    ];
    for (headers, message) in cases {
        let (code, body) = call_full(
            &s,
            "GET",
            "/api/v1/namespaces/default/pods",
            Some("sa-token"),
            headers,
            None,
        )
        .await;
        assert_eq!(code, 403, "{headers:?}");
        assert_eq!(body["message"], *message);
        let ev = s.audit().pop().unwrap();
        assert_eq!(ev.decision, AuditDecision::ImpersonationForbidden);
        assert_eq!(ev.impersonated_user, None);
        assert_eq!(ev.status, 403);
    }
    // Groups, extras or a UID without a user are a bad request.
    for h in [
        ("Impersonate-Group", "g"),
        ("Impersonate-Uid", "u"),
        ("Impersonate-Extra-a", "b"),
    ] {
        let (code, body) = call_full(&s, "GET", "/version", Some("sa-token"), &[h], None).await;
        assert_eq!(
            (code, body["reason"].as_str()),
            (400, Some("BadRequest")),
            "{h:?}"
        );
        assert_eq!(
            s.audit().pop().unwrap().decision,
            AuditDecision::ImpersonationRejected
        );
    }
}

#[tokio::test]
async fn impersonated_user_is_authorized_as_itself() {
    let s = server();
    impersonation_fixtures(&s);
    // agentk itself may list pods cluster-wide...
    s.apply_yaml(
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: agentk-view}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects: [{kind: ServiceAccount, name: agentk, namespace: gitlab-agent}]
"#,
    )
    .unwrap();
    assert_eq!(
        call(&s, "GET", "/api/v1/pods", "sa-token", None).await.0,
        200
    );
    // ...but the user it impersonates may not.
    let (code, body) = call_full(
        &s,
        "GET",
        "/api/v1/namespaces/default/pods",
        Some("sa-token"),
        &[("Impersonate-User", "gitlab:user:1")],
        None,
    )
    .await;
    assert_eq!(code, 403);
    assert_eq!(
        body["message"],
        r#"pods is forbidden: User "gitlab:user:1" cannot list resource "pods" in API group "" in the namespace "default""#
    );
    let ev = s.audit().pop().unwrap();
    assert_eq!(ev.decision, AuditDecision::Forbidden);
    assert_eq!(ev.user.unwrap().username, AGENT);
    assert_eq!(ev.impersonated_user.unwrap().username, "gitlab:user:1");
}

#[tokio::test]
async fn access_reviews() {
    let s = server();
    rbac_fixtures(&s);
    let review = |ns: &str, name: &str| {
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
               "spec": {"resourceAttributes": {"namespace": ns, "verb": "get", "resource": "configmaps", "name": name}}})
    };
    let path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
    let (code, body) = call(
        &s,
        "POST",
        path,
        "sa-token",
        Some(review("default", "allowed")),
    )
    .await;
    assert_eq!(code, 201);
    assert_eq!(
        body["status"],
        json!({"allowed": true, "reason": "RBAC: allowed by RoleBinding \"agent-cm/default\" of Role \"cm-reader\" to ServiceAccount \"agentk/gitlab-agent\""})
    );
    assert_eq!(body["spec"]["resourceAttributes"]["name"], "allowed");
    let (_, body) = call(
        &s,
        "POST",
        path,
        "sa-token",
        Some(review("default", "other")),
    )
    .await;
    assert_eq!(body["status"], json!({"allowed": false}));
    let (code, body) = call(&s, "POST", path, "sa-token", Some(json!({"spec": {}}))).await;
    assert_eq!((code, body["reason"].as_str()), (422, Some("Invalid")));

    // SubjectAccessReview needs its own permission.
    let sar = json!({"spec": {"user": AGENT, "resourceAttributes": {"namespace": "default", "verb": "get", "resource": "configmaps", "name": "allowed"}}});
    let sar_path = "/apis/authorization.k8s.io/v1/subjectaccessreviews";
    let (code, body) = call(&s, "POST", sar_path, "sa-token", Some(sar.clone())).await;
    assert_eq!(code, 403);
    assert_eq!(
        body["message"],
        r#"subjectaccessreviews.authorization.k8s.io is forbidden: User "system:serviceaccount:gitlab-agent:agentk" cannot create resource "subjectaccessreviews" in API group "authorization.k8s.io" at the cluster scope"#
    );
    let (code, body) = call(&s, "POST", sar_path, "admin", Some(sar)).await;
    assert_eq!(code, 201);
    assert_eq!(body["status"]["allowed"], true);
    let non_res = json!({"spec": {"groups": ["system:unauthenticated"], "nonResourceAttributes": {"path": "/version", "verb": "get"}}});
    assert_eq!(
        call(&s, "POST", sar_path, "admin", Some(non_res)).await.1["status"]["allowed"],
        true
    );
}

// ---------------------------------------------------------- aggregation

#[tokio::test]
async fn view_binding_grants_reads_only_where_aggregation_runs() {
    for (mode, expect) in [
        (AggregationMode::Kind, 200),
        (AggregationMode::BareApiserver, 403),
    ] {
        let s = server_with(mode);
        s.apply_yaml(
            r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: agentk-view, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects: [{kind: ServiceAccount, name: agentk, namespace: gitlab-agent}]
"#,
        )
        .unwrap();
        assert_eq!(
            call(
                &s,
                "GET",
                "/api/v1/namespaces/default/pods",
                "sa-token",
                None
            )
            .await
            .0,
            expect,
            "{mode:?}"
        );
        // The RoleBinding does not reach beyond its namespace, in any mode.
        assert_eq!(
            call(
                &s,
                "GET",
                "/api/v1/namespaces/kube-system/pods",
                "sa-token",
                None
            )
            .await
            .0,
            403
        );
        // view never grants secrets or writes.
        assert_eq!(
            call(
                &s,
                "GET",
                "/api/v1/namespaces/default/secrets",
                "sa-token",
                None
            )
            .await
            .0,
            403
        );
        let (_, view) = call(
            &s,
            "GET",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/view",
            "admin",
            None,
        )
        .await;
        assert_eq!(
            view["rules"].as_array().map(Vec::is_empty),
            Some(mode == AggregationMode::BareApiserver)
        );
        // edit aggregates view (view carries aggregate-to-edit), admin aggregates edit.
        let (_, admin) = call(
            &s,
            "GET",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/admin",
            "admin",
            None,
        )
        .await;
        let has_pods_read = admin["rules"].as_array().unwrap().iter().any(|r| {
            r["resources"].as_array().unwrap().contains(&json!("pods"))
                && r["verbs"].as_array().unwrap().contains(&json!("list"))
        });
        assert_eq!(has_pods_read, mode == AggregationMode::Kind);
    }
}

#[tokio::test]
async fn custom_roles_aggregate_into_view_and_back_out() {
    let s = server();
    s.apply_yaml(
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: agentk-view}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects: [{kind: ServiceAccount, name: agentk, namespace: gitlab-agent}]
"#,
    )
    .unwrap();
    let ssar = json!({"spec": {"resourceAttributes": {"verb": "list", "group": "example.com", "resource": "widgets"}}});
    let path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
    assert_eq!(
        call(&s, "POST", path, "sa-token", Some(ssar.clone()))
            .await
            .1["status"]["allowed"],
        false
    );
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "widgets-view", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
        "rules": [{"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["list"]}]});
    let (code, _) = call(
        &s,
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        "admin",
        Some(role),
    )
    .await;
    assert_eq!(code, 201);
    assert_eq!(
        call(&s, "POST", path, "sa-token", Some(ssar.clone()))
            .await
            .1["status"]["allowed"],
        true
    );
    let (code, _) = call(
        &s,
        "DELETE",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles/widgets-view",
        "admin",
        None,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        call(&s, "POST", path, "sa-token", Some(ssar)).await.1["status"]["allowed"],
        false
    );
}

// ---------------------------------------------------------------- watch

async fn next_event(body: &mut BoxBody) -> Option<Value> {
    let frame = body.frame().await?.ok()?;
    let data = frame.into_data().ok()?;
    let text = std::str::from_utf8(&data).ok()?;
    assert!(
        text.ends_with('\n'),
        "each event is one newline-terminated chunk"
    );
    serde_json::from_str(text.trim_end()).ok()
}

async fn watch(s: &ApiServer, query: &str) -> BoxBody {
    let req = Request::get(format!(
        "/api/v1/namespaces/default/configmaps?watch=true&{query}"
    ))
    .header("authorization", "Bearer admin")
    .body(Full::new(Bytes::new()))
    .unwrap();
    let resp = s.handle(req).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    resp.into_body()
}

fn cm(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default", "labels": labels}})
}

#[tokio::test(start_paused = true)]
async fn watch_streams_resumes_and_filters() {
    let s = server();
    let first = s.create_object(cm("a", json!({"app": "x"}))).unwrap();
    let rv_a: u64 = first["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    // From "current state": a synthetic ADDED, then live events.
    let mut w = watch(&s, "labelSelector=app%3Dx").await;
    let e = next_event(&mut w).await.unwrap();
    assert_eq!(
        (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
        (Some("ADDED"), Some("a"))
    );
    assert_eq!(e["object"]["kind"], "ConfigMap");

    // Nothing is buffered: the next event only exists once the write happens.
    let pending = tokio::time::timeout(Duration::from_secs(5), next_event(&mut w)).await;
    assert!(pending.is_err(), "no event before the write");
    s.create_object(cm("b", json!({"app": "x"}))).unwrap();
    s.create_object(cm("ignored", json!({"app": "y"}))).unwrap();
    let e = next_event(&mut w).await.unwrap();
    assert_eq!(
        (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
        (Some("ADDED"), Some("b"))
    );

    // A label change moving an object out of the selection is a DELETED.
    let (code, _) = call_full(
        &s,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/a",
        Some("admin"),
        &[("content-type", "application/merge-patch+json")],
        Some(r#"{"metadata":{"labels":{"app":"z"}}}"#),
    )
    .await;
    assert_eq!(code, 200);
    let e = next_event(&mut w).await.unwrap();
    assert_eq!(
        (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
        (Some("DELETED"), Some("a"))
    );

    // Resuming from a resourceVersion replays exactly what came after it.
    let mut r = watch(&s, &format!("resourceVersion={rv_a}")).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        let e = next_event(&mut r).await.unwrap();
        got.push(format!(
            "{} {}",
            e["type"].as_str().unwrap(),
            e["object"]["metadata"]["name"].as_str().unwrap()
        ));
    }
    assert_eq!(got, ["ADDED b", "ADDED ignored", "MODIFIED a"]);
}

#[tokio::test(start_paused = true)]
async fn watch_ends_at_timeout_seconds() {
    let s = server();
    let mut w = watch(&s, "resourceVersion=1&timeoutSeconds=30").await;
    let start = tokio::time::Instant::now();
    assert!(next_event(&mut w).await.is_none(), "stream ends");
    assert_eq!(start.elapsed(), Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn watch_from_a_compacted_resource_version_is_410_gone() {
    let s = ApiServer::builder(KubeVersion::V1_33)
        .token(
            "admin",
            UserInfo {
                username: "root".into(),
                groups: vec!["system:masters".into()],
                ..Default::default()
            },
        )
        .watch_history(5)
        .build()
        .unwrap();
    for i in 0..10 {
        s.create_object(cm(&format!("c{i}"), json!({}))).unwrap();
    }
    let mut w = watch(&s, "resourceVersion=2").await;
    let e = next_event(&mut w).await.unwrap();
    assert_eq!(e["type"], "ERROR");
    assert_eq!(e["object"]["code"], 410);
    assert_eq!(e["object"]["reason"], "Expired");
    let msg = e["object"]["message"].as_str().unwrap();
    assert!(msg.starts_with("too old resource version: 2 ("), "{msg}");
    assert!(
        next_event(&mut w).await.is_none(),
        "stream ends after the error"
    );
}

#[tokio::test(start_paused = true)]
async fn watch_list_ends_initial_events_with_a_bookmark() {
    let s = server();
    s.create_object(cm("a", json!({}))).unwrap();
    let mut w = watch(
        &s,
        "sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true",
    )
    .await;
    let e = next_event(&mut w).await.unwrap();
    assert_eq!(
        (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
        (Some("ADDED"), Some("a"))
    );
    let e = next_event(&mut w).await.unwrap();
    assert_eq!(e["type"], "BOOKMARK");
    assert_eq!(
        e["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    assert_eq!(e["object"]["kind"], "ConfigMap");
    s.create_object(cm("b", json!({}))).unwrap();
    let e = next_event(&mut w).await.unwrap();
    assert_eq!(
        (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
        (Some("ADDED"), Some("b"))
    );
}

#[tokio::test(start_paused = true)]
async fn watch_timeout_zero_means_the_default() {
    let s = server();
    let mut w = watch(&s, "resourceVersion=1&timeoutSeconds=0").await;
    let start = tokio::time::Instant::now();
    assert!(next_event(&mut w).await.is_none());
    assert_eq!(start.elapsed(), Duration::from_secs(1800));
}

#[tokio::test]
async fn bad_watch_parameters_are_400() {
    let s = server();
    for q in [
        "resourceVersion=abc",
        "timeoutSeconds=-1",
        "labelSelector=%3D%3D",
    ] {
        let (code, body) = call(
            &s,
            "GET",
            &format!("/api/v1/namespaces/default/configmaps?watch=1&{q}"),
            "admin",
            None,
        )
        .await;
        assert_eq!(
            (code, body["reason"].as_str()),
            (400, Some("BadRequest")),
            "{q}"
        );
    }
}
