//! A minimal HTTP/1.1 client over the transport seam, one connection per request.
//!
//! Used for low-rate control-plane calls (kas → GitLab). It exists because hyper-util's pooled client
//! wants connector types of its own; one connection per request keeps the seam trivial and behaves
//! the same over TCP, TLS and the simulator.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use crate::transport::Dialer;

/// Why an HTTP exchange failed before a response arrived.
#[derive(Debug, thiserror::Error)]
pub enum HttpClientError {
    #[error("connect to {authority}: {source}")]
    Connect { authority: String, source: std::io::Error },
    #[error("HTTP to {authority}: {source}")]
    Http { authority: String, source: hyper::Error },
    #[error("reading response body from {authority}: {source}")]
    Body { authority: String, source: hyper::Error },
}

/// A response with its whole body.
#[derive(Debug)]
pub struct FullResponse {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// Sends `req` to `authority` (`host:port`) and reads the whole response.
pub async fn send(
    dialer: &Dialer,
    authority: &str,
    req: http::Request<Full<Bytes>>,
) -> Result<FullResponse, HttpClientError> {
    let io = dialer
        .connect(authority)
        .await
        .map_err(|source| HttpClientError::Connect { authority: authority.to_owned(), source })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
        .await
        .map_err(|source| HttpClientError::Http { authority: authority.to_owned(), source })?;
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    let result = async {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|source| HttpClientError::Http { authority: authority.to_owned(), source })?;
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|source| HttpClientError::Body { authority: authority.to_owned(), source })?
            .to_bytes();
        Ok(FullResponse { status: parts.status, headers: parts.headers, body })
    }
    .await;
    conn.abort();
    result
}
