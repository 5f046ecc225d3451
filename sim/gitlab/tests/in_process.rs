//! The server over a non-TCP stream and the socket-free `handle`, plus
//! no-panic properties for hostile input.

mod common;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use proptest::prelude::*;

#[tokio::test]
async fn serve_connection_works_over_an_in_memory_duplex() {
    let (gl, _) = common::gitlab();
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(async move { gl.serve_connection(server_io).await });
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(client_io)).await.unwrap();
    tokio::spawn(conn);
    let resp = sender
        .send_request(
            Request::get("/api/v4/job/allowed_agents")
                .header("host", "gitlab")
                .header("job-token", "nope")
                .body(Empty::<Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], br#"{"message":"401 Unauthorized"}"#);
    drop(sender);
    server.await.unwrap().unwrap();
}

proptest! {
    #[test]
    fn config_parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = kasim_gitlab::parse_config_file("c.yaml", &bytes);
    }

    #[test]
    fn config_parser_never_panics_on_yamlish_text(text in "[a-z_:\\-\\[\\]{}, \n*'\"0-9]{0,200}") {
        let _ = kasim_gitlab::parse_config_file("c.yaml", text.as_bytes());
    }

    #[test]
    fn handle_never_panics(
        path in "/api/v4/[a-z_/]{0,40}",
        post in any::<bool>(),
        header in "[ -~]{0,60}",
        body in prop::collection::vec(any::<u8>(), 0..100),
    ) {
        let (gl, _) = common::gitlab();
        for name in ["gitlab-kas-api-request", "job-token", "authorization"] {
            let req = Request::builder()
                .method(if post { "POST" } else { "GET" })
                .uri(path.as_str())
                .header(name, header.as_str())
                .body(Bytes::from(body.clone()))
                .unwrap();
            let resp = gl.handle(req);
            prop_assert!(resp.status().as_u16() >= 400);
        }
    }
}
