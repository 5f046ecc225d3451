//! Tests over real loopback TCP with hyper's client: the wire format
//! (HTTP/1.1 chunked watch streams, HTTP/2), status codes and bodies.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use kasim_apiserver::{ApiServer, KubeVersion, UserInfo};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};

async fn start(version: KubeVersion) -> (ApiServer, SocketAddr) {
    let server = ApiServer::builder(version)
        .token(
            "admin",
            UserInfo {
                username: "kubernetes-admin".into(),
                groups: vec!["system:masters".into()],
                ..Default::default()
            },
        )
        .build()
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let s = server.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let s = s.clone();
            tokio::spawn(async move { s.serve_connection(stream).await });
        }
    });
    (server, addr)
}

fn req(method: &str, path: &str, content_type: Option<&str>, body: &str) -> Request<Full<Bytes>> {
    let mut b =
        Request::builder().method(method).uri(path).header("host", "kube").header("authorization", "Bearer admin");
    if let Some(ct) = content_type {
        b = b.header("content-type", ct);
    }
    b.body(Full::new(Bytes::from(body.to_string()))).unwrap()
}

async fn send_h1(addr: SocketAddr, r: Request<Full<Bytes>>) -> Response<Incoming> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    sender.send_request(r).await.unwrap()
}

async fn json_of(resp: Response<Incoming>) -> (u16, Value) {
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn call(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let (ct, text) = match &body {
        Some(b) => (Some("application/json"), b.to_string()),
        None => (None, String::new()),
    };
    json_of(send_h1(addr, req(method, path, ct, &text)).await).await
}

#[tokio::test]
async fn version_endpoint_per_modelled_version() {
    for (v, git) in [(KubeVersion::V1_31, "v1.31.9"), (KubeVersion::V1_32, "v1.32.5"), (KubeVersion::V1_33, "v1.33.1")]
    {
        let (_s, addr) = start(v).await;
        let (code, body) = call(addr, "GET", "/version", None).await;
        assert_eq!(code, 200);
        assert_eq!(body["gitVersion"], git);
        assert_eq!(body["major"], "1");
        assert_eq!(body["minor"], v.to_string().trim_start_matches("1."));
        assert_eq!(body["platform"], "linux/amd64");
    }
}

#[tokio::test]
async fn discovery_documents() {
    let (_s, addr) = start(KubeVersion::V1_32).await;
    let (_, api) = call(addr, "GET", "/api", None).await;
    assert_eq!(api["kind"], "APIVersions");
    assert_eq!(api["versions"], json!(["v1"]));
    assert_eq!(api["serverAddressByClientCIDRs"][0]["serverAddress"], "kube");
    let (_, apis) = call(addr, "GET", "/apis", None).await;
    assert_eq!(apis["kind"], "APIGroupList");
    let groups: Vec<&str> = apis["groups"].as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap()).collect();
    assert!(groups.contains(&"rbac.authorization.k8s.io") && groups.contains(&"authentication.k8s.io"));
    let (_, rbac) = call(addr, "GET", "/apis/rbac.authorization.k8s.io/v1", None).await;
    assert_eq!(rbac["kind"], "APIResourceList");
    assert_eq!(rbac["groupVersion"], "rbac.authorization.k8s.io/v1");
    assert_eq!(rbac["resources"].as_array().unwrap().len(), 4);
    let (_, core) = call(addr, "GET", "/api/v1", None).await;
    let pods = core["resources"].as_array().unwrap().iter().find(|r| r["name"] == "pods").unwrap();
    assert_eq!(pods["namespaced"], true);
    assert_eq!(pods["kind"], "Pod");
    let resp = send_h1(addr, req("GET", "/readyz", None, "")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), "ok");
}

#[tokio::test]
async fn object_lifecycle_and_errors() {
    let (_s, addr) = start(KubeVersion::V1_32).await;
    let base = "/api/v1/namespaces/default/configmaps";
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"app": "x"}}, "data": {"k": "v"}});

    let (code, created) = call(addr, "POST", base, Some(cm.clone())).await;
    assert_eq!(code, 201, "{created}");
    let rv1 = created["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    assert!(created["metadata"]["uid"].as_str().unwrap().len() == 36);
    assert_eq!(created["metadata"]["creationTimestamp"], "2025-01-01T00:00:00Z");

    let (code, body) = call(addr, "POST", base, Some(cm.clone())).await;
    assert_eq!(code, 409);
    assert_eq!(body["reason"], "AlreadyExists");
    assert_eq!(body["message"], r#"configmaps "c" already exists"#);
    assert_eq!(body["details"], json!({"name": "c", "kind": "configmaps"}));

    let (code, body) = call(addr, "POST", "/api/v1/namespaces/nope/configmaps", Some(cm.clone())).await;
    assert_eq!(code, 404);
    assert_eq!(body["message"], r#"namespaces "nope" not found"#);

    // PUT with the current resourceVersion succeeds and bumps it; a stale one conflicts.
    let mut next = created.clone();
    next["data"]["k"] = json!("v2");
    let (code, updated) = call(addr, "PUT", &format!("{base}/c"), Some(next.clone())).await;
    assert_eq!(code, 200);
    let rv2 = updated["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    assert!(rv2.parse::<u64>().unwrap() > rv1.parse::<u64>().unwrap());
    assert_eq!(updated["metadata"]["uid"], created["metadata"]["uid"]);
    let (code, body) = call(addr, "PUT", &format!("{base}/c"), Some(next)).await;
    assert_eq!(code, 409);
    assert_eq!(body["reason"], "Conflict");
    assert_eq!(
        body["message"],
        r#"Operation cannot be fulfilled on configmaps "c": the object has been modified; please apply your changes to the latest version and try again"#
    );

    // Patches: merge, strategic (treated as merge), JSON patch; others 415.
    let patch = |ct: &'static str, body: &'static str| {
        let r = req("PATCH", "/api/v1/namespaces/default/configmaps/c", Some(ct), body);
        async move { json_of(send_h1(addr, r).await).await }
    };
    let (code, p) = patch("application/merge-patch+json", r#"{"data":{"k":null,"n":"1"}}"#).await;
    assert_eq!(code, 200);
    assert_eq!(p["data"], json!({"n": "1"}));
    let (_, p) = patch("application/strategic-merge-patch+json", r#"{"metadata":{"labels":{"tier":"fe"}}}"#).await;
    assert_eq!(p["metadata"]["labels"], json!({"app": "x", "tier": "fe"}));
    let (_, p) = patch("application/json-patch+json", r#"[{"op":"replace","path":"/data/n","value":"2"}]"#).await;
    assert_eq!(p["data"]["n"], "2");
    let (code, body) = patch("application/apply-patch+yaml", "{}").await;
    assert_eq!((code, body["reason"].as_str()), (415, Some("UnsupportedMediaType")));
    let (code, _) = patch("application/merge-patch+json", r#"{"metadata":{"resourceVersion":"1"}}"#).await;
    assert_eq!(code, 409, "a patch carrying a stale resourceVersion conflicts");

    // Lists, with label selectors.
    call(addr, "POST", base, Some(json!({"metadata": {"name": "d", "labels": {"app": "y"}}}))).await;
    let (code, list) = call(addr, "GET", &format!("{base}?labelSelector=app%3Dx"), None).await;
    assert_eq!(code, 200);
    assert_eq!(list["kind"], "ConfigMapList");
    assert_eq!(list["apiVersion"], "v1");
    assert!(list["metadata"]["resourceVersion"].as_str().unwrap().parse::<u64>().is_ok());
    let names: Vec<&str> =
        list["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["c"]);
    let (_, list) = call(addr, "GET", &format!("{base}?labelSelector=app%21%3Dx"), None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["metadata"]["name"], "d");

    // Delete, then not found.
    let (code, body) = call(addr, "DELETE", &format!("{base}/c"), None).await;
    assert_eq!((code, body["status"].as_str()), (200, Some("Success")));
    let (code, body) = call(addr, "GET", &format!("{base}/c"), None).await;
    assert_eq!(code, 404);
    assert_eq!(body["message"], r#"configmaps "c" not found"#);
    assert_eq!(body["reason"], "NotFound");

    // Method not allowed and malformed bodies.
    let (code, body) = call(addr, "POST", &format!("{base}/d"), Some(json!({}))).await;
    assert_eq!((code, body["reason"].as_str()), (405, Some("MethodNotAllowed")));
    let (code, body) = json_of(send_h1(addr, req("POST", base, Some("application/json"), "{not json")).await).await;
    assert_eq!((code, body["reason"].as_str()), (400, Some("BadRequest")));
    let (code, body) = call(addr, "POST", base, Some(json!({"metadata": {"name": "Bad_Name"}}))).await;
    assert_eq!((code, body["reason"].as_str()), (422, Some("Invalid")));
    assert!(body["message"].as_str().unwrap().starts_with(
        r#"ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain"#
    ));
}

#[tokio::test]
async fn kind_specific_defaults() {
    let (_s, addr) = start(KubeVersion::V1_31).await;
    let (code, pod) = call(
        addr,
        "POST",
        "/api/v1/namespaces/default/pods",
        Some(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}})),
    )
    .await;
    assert_eq!(code, 201);
    assert_eq!(pod["status"]["phase"], "Pending");
    let (_, secret) = call(
        addr,
        "POST",
        "/api/v1/namespaces/default/secrets",
        Some(json!({"metadata": {"name": "s"}, "stringData": {"a": "hi"}})),
    )
    .await;
    assert_eq!(secret["data"], json!({"a": "aGk="}));
    assert_eq!(secret["type"], "Opaque");
    let (code, ns) = call(addr, "POST", "/api/v1/namespaces", Some(json!({"metadata": {"name": "team"}}))).await;
    assert_eq!(code, 201);
    assert_eq!(ns["status"]["phase"], "Active");
    assert_eq!(ns["metadata"]["labels"]["kubernetes.io/metadata.name"], "team");
    // Deleting the namespace deletes what is in it.
    call(addr, "POST", "/api/v1/namespaces/team/configmaps", Some(json!({"metadata": {"name": "c"}}))).await;
    assert_eq!(call(addr, "DELETE", "/api/v1/namespaces/team", None).await.0, 200);
    assert_eq!(call(addr, "GET", "/api/v1/namespaces/team/configmaps/c", None).await.0, 404);
}

#[tokio::test]
async fn leases_for_leader_election() {
    let (_s, addr) = start(KubeVersion::V1_33).await;
    let path = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases";
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "agentk"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}});
    let (code, created) = call(addr, "POST", path, Some(lease)).await;
    assert_eq!(code, 201, "{created}");
    let mut renewed = created.clone();
    renewed["spec"]["holderIdentity"] = json!("b");
    let (code, body) = call(addr, "PUT", &format!("{path}/agentk"), Some(renewed.clone())).await;
    assert_eq!((code, body["spec"]["holderIdentity"].as_str()), (200, Some("b")));
    // A second candidate racing with the stale copy loses.
    let (code, body) = call(addr, "PUT", &format!("{path}/agentk"), Some(renewed)).await;
    assert_eq!(code, 409);
    assert_eq!(body["details"]["group"], "coordination.k8s.io");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with(r#"Operation cannot be fulfilled on leases.coordination.k8s.io "agentk""#)
    );
}

#[tokio::test]
async fn http2_prior_knowledge() {
    let (_s, addr) = start(KubeVersion::V1_33).await;
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let mut r = req("GET", "http://kube/version", None, "");
    r.headers_mut().remove("host");
    let resp = sender.send_request(r).await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let (code, body) = json_of(resp).await;
    assert_eq!((code, body["gitVersion"].as_str()), (200, Some("v1.33.1")));
}

#[tokio::test]
async fn watch_streams_over_http1_chunks() {
    let (server, addr) = start(KubeVersion::V1_32).await;
    let resp =
        send_h1(addr, req("GET", "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=1", None, "")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["transfer-encoding"], "chunked");
    let mut body = resp.into_body();
    server
        .create_object(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "first", "namespace": "default"}}),
        )
        .unwrap();
    let frame = tokio::time::timeout(Duration::from_secs(10), body.frame()).await.unwrap().unwrap().unwrap();
    let event: Value = serde_json::from_slice(frame.data_ref().unwrap()).unwrap();
    assert_eq!(event["type"], "ADDED");
    assert_eq!(event["object"]["metadata"]["name"], "first");
    // The first event arrived before the second object even existed.
    server
        .create_object(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "second", "namespace": "default"}}),
        )
        .unwrap();
    let frame = tokio::time::timeout(Duration::from_secs(10), body.frame()).await.unwrap().unwrap().unwrap();
    let event: Value = serde_json::from_slice(frame.data_ref().unwrap()).unwrap();
    assert_eq!(event["object"]["metadata"]["name"], "second");
}

/// `call` with another bearer token.
async fn call_as(addr: SocketAddr, token: &str, method: &str, path: &str, body: Value) -> (u16, Value) {
    let r = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "kube")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    json_of(send_h1(addr, r).await).await
}

#[tokio::test]
async fn token_request_issues_tokens_that_authenticate_as_the_service_account_until_it_is_deleted() {
    let (_, addr) = start(KubeVersion::V1_32).await;
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "run"}});
    assert_eq!(call(addr, "POST", "/api/v1/namespaces", Some(ns)).await.0, 201);
    let token_path = "/api/v1/namespaces/run/serviceaccounts/agentk/token";
    let (code, v) = call(addr, "POST", token_path, Some(json!({"spec": {}}))).await;
    assert_eq!((code, v["message"].as_str().unwrap()), (404, "serviceaccounts \"agentk\" not found"));

    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "agentk"}});
    assert_eq!(call(addr, "POST", "/api/v1/namespaces/run/serviceaccounts", Some(sa.clone())).await.0, 201);
    let (code, v) = call(addr, "POST", token_path, Some(json!({"spec": {"expirationSeconds": 60}}))).await;
    assert_eq!(code, 422, "{v}");
    assert!(v["message"].as_str().unwrap().contains("may not specify a duration less than 10 minutes"), "{v}");

    let (code, v) = call(addr, "POST", token_path, Some(json!({"spec": {"expirationSeconds": 3600}}))).await;
    assert_eq!(code, 201, "{v}");
    assert_eq!((v["kind"].as_str(), v["spec"]["expirationSeconds"].as_i64()), (Some("TokenRequest"), Some(3600)));
    let token = v["status"]["token"].as_str().unwrap().to_owned();
    assert!(v["status"]["expirationTimestamp"].as_str().unwrap().ends_with('Z'));

    let review = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"});
    let ssr = "/apis/authentication.k8s.io/v1/selfsubjectreviews";
    let (code, v) = call_as(addr, &token, "POST", ssr, review.clone()).await;
    assert_eq!(code, 201, "{v}");
    let user = &v["status"]["userInfo"];
    assert_eq!(user["username"], "system:serviceaccount:run:agentk");
    assert_eq!(user["groups"], json!(["system:serviceaccounts", "system:serviceaccounts:run", "system:authenticated"]));
    assert!(user["extra"]["authentication.kubernetes.io/credential-id"][0].as_str().unwrap().starts_with("JTI="));
    // No rights beyond the defaults: listing pods is forbidden, in the server's words.
    let (code, v) = call_as(addr, &token, "GET", "/api/v1/namespaces/run/pods", json!({})).await;
    assert_eq!(code, 403, "{v}");
    assert_eq!(
        v["message"],
        "pods is forbidden: User \"system:serviceaccount:run:agentk\" cannot list resource \"pods\" in API group \"\" in the namespace \"run\""
    );

    // Deleting the account revokes the token, and a new account of the same name does not revive it.
    assert_eq!(call(addr, "DELETE", "/api/v1/namespaces/run/serviceaccounts/agentk", None).await.0, 200);
    assert_eq!(call_as(addr, &token, "POST", ssr, review.clone()).await.0, 401);
    assert_eq!(call(addr, "POST", "/api/v1/namespaces/run/serviceaccounts", Some(sa)).await.0, 201);
    assert_eq!(call_as(addr, &token, "POST", ssr, review).await.0, 401);
}

/// A request refused before its body is needed (401 here) still has its body read, so the
/// connection stays usable for the next request, as with Go's net/http (which drains small unread
/// bodies): a client reusing a pooled connection must not meet a closed socket.
#[tokio::test]
async fn a_refused_request_with_a_body_keeps_the_connection_reusable() {
    let (_, addr) = start(KubeVersion::V1_32).await;
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"k": "v".repeat(512 * 1024)}});
    let refused = Request::builder()
        .method("POST")
        .uri("/api/v1/namespaces/default/configmaps")
        .header("host", "kube")
        .header("authorization", "Bearer wrong")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let (code, _) = json_of(sender.send_request(refused).await.unwrap()).await;
    assert_eq!(code, 401);
    sender.ready().await.expect("the connection is still open");
    let (code, v) = json_of(sender.send_request(req("GET", "/version", None, "")).await.unwrap()).await;
    assert_eq!((code, v["major"].as_str()), (200, Some("1")));
}
