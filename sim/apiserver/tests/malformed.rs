//! Malformed input never panics and never yields a 5xx: every failure is a
//! 4xx Kubernetes Status.

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use kasim_apiserver::{ApiServer, KubeVersion, UserInfo};
use proptest::prelude::*;
use serde_json::Value;

fn server() -> ApiServer {
    ApiServer::builder(KubeVersion::V1_31)
        .token(
            "admin",
            UserInfo {
                username: "root".into(),
                groups: vec!["system:masters".into()],
                ..Default::default()
            },
        )
        .build()
        .unwrap()
}

/// Sends a request; returns the status and, for non-watch responses, the body.
async fn send(s: &ApiServer, req: Request<Full<Bytes>>) -> (u16, Option<Bytes>) {
    let resp = s.handle(req).await;
    let status = resp.status().as_u16();
    let is_watch = s
        .audit()
        .last()
        .is_some_and(|e| e.attributes.verb == "watch");
    if is_watch && status == 200 {
        return (status, None);
    }
    let body = tokio::time::timeout(Duration::from_secs(5), resp.into_body().collect())
        .await
        .expect("non-watch bodies are complete")
        .unwrap()
        .to_bytes();
    (status, Some(body))
}

fn assert_status_body(status: u16, body: &Option<Bytes>, what: &str) {
    assert!(status < 500, "{what}: got {status}");
    if status >= 400 {
        let body = body.as_ref().expect("error bodies are read");
        let v: Value =
            serde_json::from_slice(body).unwrap_or_else(|e| panic!("{what}: not JSON ({e})"));
        assert_eq!(v["kind"], "Status", "{what}");
        assert_eq!(v["code"], status, "{what}");
    }
}

/// Method, path, content type, body, expected status.
type Case = (&'static str, String, Option<&'static str>, Vec<u8>, u16);

fn build(
    method: &str,
    path: &str,
    ct: Option<&str>,
    body: Vec<u8>,
) -> Option<Request<Full<Bytes>>> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", "Bearer admin");
    if let Some(ct) = ct {
        b = b.header("content-type", ct);
    }
    b.body(Full::new(Bytes::from(body))).ok()
}

#[tokio::test]
async fn garbage_table_is_answered_with_4xx() {
    let s = server();
    let cm = "/api/v1/namespaces/default/configmaps";
    let big = vec![b'{'; 3 * 1024 * 1024 + 1];
    let cases: Vec<Case> = vec![
        (
            "POST",
            cm.into(),
            Some("application/json"),
            b"".to_vec(),
            400,
        ),
        (
            "POST",
            cm.into(),
            Some("application/json"),
            b"null".to_vec(),
            400,
        ),
        (
            "POST",
            cm.into(),
            Some("application/json"),
            b"[]".to_vec(),
            400,
        ),
        (
            "POST",
            cm.into(),
            Some("application/json"),
            b"\"s\"".to_vec(),
            400,
        ),
        (
            "POST",
            cm.into(),
            Some("application/json"),
            b"\xff\xfe".to_vec(),
            400,
        ),
        (
            "POST",
            cm.into(),
            Some("application/json"),
            br#"{"metadata": 5}"#.to_vec(),
            400,
        ),
        (
            "POST",
            cm.into(),
            Some("application/json"),
            br#"{"metadata": {"name": 5}}"#.to_vec(),
            422,
        ),
        (
            "POST",
            cm.into(),
            Some("application/json"),
            br#"{"kind": "Pod", "metadata": {"name": "a"}}"#.to_vec(),
            400,
        ),
        (
            "POST",
            cm.into(),
            Some("application/json"),
            br#"{"apiVersion": "v2", "metadata": {"name": "a"}}"#.to_vec(),
            400,
        ),
        (
            "POST",
            cm.into(),
            Some("application/json"),
            br#"{"metadata": {"name": "a", "namespace": "other"}}"#.to_vec(),
            400,
        ),
        (
            "POST",
            cm.into(),
            Some("application/json"),
            br#"{"metadata": {"name": "a", "resourceVersion": "5"}}"#.to_vec(),
            400,
        ),
        (
            "POST",
            cm.into(),
            Some("application/json"),
            br#"{"metadata": {}}"#.to_vec(),
            422,
        ),
        ("POST", cm.into(), Some("application/json"), big, 413),
        (
            "POST",
            cm.into(),
            Some("application/vnd.kubernetes.protobuf"),
            b"k8s\0".to_vec(),
            415,
        ),
        (
            "POST",
            cm.into(),
            Some("application/yaml"),
            b"a: [".to_vec(),
            400,
        ),
        (
            "PUT",
            format!("{cm}/x"),
            Some("application/json"),
            br#"{"metadata": {"name": "y"}}"#.to_vec(),
            400,
        ),
        (
            "PUT",
            format!("{cm}/x"),
            Some("application/json"),
            br#"{"metadata": {"name": "x"}}"#.to_vec(),
            404,
        ),
        (
            "PATCH",
            format!("{cm}/x"),
            Some("application/merge-patch+json"),
            b"{}".to_vec(),
            404,
        ),
        (
            "PATCH",
            format!("{cm}/x"),
            Some("text/plain"),
            b"{}".to_vec(),
            415,
        ),
        ("DELETE", format!("{cm}/x"), None, vec![], 404),
        (
            "POST",
            "/api/v1/namespaces/default/secrets".into(),
            Some("application/json"),
            br#"{"metadata": {"name": "s"}, "data": {"a": "!!"}}"#.to_vec(),
            400,
        ),
        (
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles".into(),
            Some("application/json"),
            br#"{"metadata": {"name": "r"}, "rules": "x"}"#.to_vec(),
            400,
        ),
        (
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings".into(),
            Some("application/json"),
            br#"{"metadata": {"name": "r"}}"#.to_vec(),
            400,
        ),
        (
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings".into(),
            Some("application/json"),
            br#"{"metadata": {"name": "r"}, "roleRef": {"kind": "Role", "name": "x"}}"#.to_vec(),
            400,
        ),
        (
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews".into(),
            Some("application/json"),
            br#"{"spec": 7}"#.to_vec(),
            400,
        ),
        (
            "GET",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews".into(),
            None,
            vec![],
            405,
        ),
        (
            "GET",
            "/api/v1/namespaces/%zz/pods/%".into(),
            None,
            vec![],
            404,
        ),
        ("GET", "/api/v1/watch".into(), None, vec![], 404),
        (
            "GET",
            "/api/v1/namespaces/default/pods/p/log".into(),
            None,
            vec![],
            404,
        ),
        ("GET", "/api/v2/pods".into(), None, vec![], 404),
        ("GET", "/apis/a/b/c/d/e/f/g".into(), None, vec![], 404),
        (
            "GET",
            "/api/v1/namespaces/default/clusterroles".into(),
            None,
            vec![],
            404,
        ),
        (
            "POST",
            "/api/v1/pods".into(),
            Some("application/json"),
            b"{}".to_vec(),
            405,
        ),
        (
            "GET",
            format!("{cm}?labelSelector=%28%28"),
            None,
            vec![],
            400,
        ),
        (
            "GET",
            format!("{cm}?fieldSelector=status.phase%3DRunning"),
            None,
            vec![],
            400,
        ),
        ("DELETE", "/api/v1/namespaces".into(), None, vec![], 405),
        ("DELETE", "/api/v1/configmaps".into(), None, vec![], 405),
        ("GET", "/api/v1/configmaps/x".into(), None, vec![], 404),
        ("OPTIONS", cm.into(), None, vec![], 405),
    ];
    for (method, path, ct, body, want) in cases {
        let what = format!("{method} {path} {ct:?}");
        let req = build(method, &path, ct, body).expect("valid request");
        let (status, body) = send(&s, req).await;
        assert_eq!(
            status,
            want,
            "{what}: {:?}",
            body.as_ref()
                .map(|b| String::from_utf8_lossy(&b[..b.len().min(300)]).into_owned())
        );
        assert_status_body(status, &body, &what);
    }
}

#[tokio::test]
async fn garbage_headers_are_answered_with_4xx() {
    let s = server();
    let bad = http::HeaderValue::from_bytes(b"\xffuser").unwrap();
    for name in [
        "impersonate-user",
        "impersonate-group",
        "impersonate-uid",
        "impersonate-extra-k",
    ] {
        let mut req = build("GET", "/version", None, vec![]).unwrap();
        req.headers_mut()
            .insert(name, http::HeaderValue::from_static("root"));
        req.headers_mut().append(name, bad.clone());
        if name != "impersonate-user" {
            req.headers_mut().insert(
                "impersonate-user",
                http::HeaderValue::from_static("someone"),
            );
        }
        let (status, body) = send(&s, req).await;
        assert_eq!(status, 400, "{name}");
        assert_status_body(status, &body, name);
    }
    for auth in ["Bearer", "Bearer ", "bearer\u{1}", "Basic Zm9v"] {
        let mut req = build("GET", "/version", None, vec![]).unwrap();
        req.headers_mut().remove("authorization");
        if let Ok(v) = http::HeaderValue::from_str(auth) {
            req.headers_mut().insert("authorization", v);
        }
        let (status, _) = send(&s, req).await;
        assert_eq!(status, 401, "{auth:?}");
    }
}

fn method() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"])
}

fn path() -> impl Strategy<Value = String> {
    let seg = prop::sample::select(vec![
        "api",
        "apis",
        "v1",
        "namespaces",
        "default",
        "kube-system",
        "pods",
        "configmaps",
        "secrets",
        "serviceaccounts",
        "rbac.authorization.k8s.io",
        "roles",
        "clusterroles",
        "rolebindings",
        "authentication.k8s.io",
        "selfsubjectreviews",
        "authorization.k8s.io",
        "subjectaccessreviews",
        "watch",
        "proxy",
        "status",
        "exec",
        "x",
        "%2F",
        "%",
        "..",
        "version",
        "healthz",
    ]);
    let query = prop::sample::select(vec![
        "",
        "?watch=1&timeoutSeconds=0",
        "?labelSelector=a%3Db",
        "?labelSelector=%21",
        "?fieldSelector=metadata.name%3Dx",
        "?resourceVersion=zz&watch=true",
        "?watch=true&resourceVersion=0&timeoutSeconds=0",
    ]);
    (prop::collection::vec(seg, 0..7), query)
        .prop_map(|(segs, q)| format!("/{}{q}", segs.join("/")))
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        Just(br#"{"metadata":{"name":"n"}}"#.to_vec()),
        Just(br#"{"metadata":{"name":"n"},"rules":[{"verbs":["*"]}],"roleRef":{"kind":"ClusterRole","name":"view"}}"#.to_vec()),
        Just(br#"[{"op":"add","path":"/metadata/labels","value":{}}]"#.to_vec()),
        Just(br#"{"spec":{"resourceAttributes":{"verb":"get"}}}"#.to_vec()),
    ]
}

fn content_type() -> impl Strategy<Value = Option<&'static str>> {
    prop::sample::select(vec![
        None,
        Some("application/json"),
        Some("application/yaml"),
        Some("application/merge-patch+json"),
        Some("application/json-patch+json"),
        Some("application/strategic-merge-patch+json"),
        Some("text/plain"),
    ])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn random_requests_never_panic_or_5xx(m in method(), p in path(), ct in content_type(), b in body()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
        rt.block_on(async {
            let s = server();
            if let Some(req) = build(m, &p, ct, b) {
                let (status, body) = send(&s, req).await;
                assert_status_body(status, &body, &format!("{m} {p}"));
            }
        });
    }
}
