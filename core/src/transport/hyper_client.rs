//! A pooled hyper client (HTTP/1.1, with upgrades) that dials through the transport seam.
//!
//! hyper-util's legacy client wants a `tower::Service<Uri>` connector whose streams implement its
//! `Connection` trait; [`SeamConnector`] adapts any [`Dialer`] to that, so the same client works
//! over TCP, TLS, in-process pipes and turmoil.

use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::{BoxFuture, BoxIo, Dialer};

/// A stream from the seam, as hyper-util's client wants it.
pub struct SeamIo(TokioIo<BoxIo>);

impl Connection for SeamIo {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for SeamIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for SeamIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Dials `authority` (fixed) for every URI the client asks for: the client talks to one server.
#[derive(Clone)]
pub struct SeamConnector {
    dialer: Dialer,
    authority: String,
}

impl SeamConnector {
    pub fn new(dialer: Dialer, authority: &str) -> Self {
        Self { dialer, authority: authority.to_owned() }
    }
}

impl tower_service::Service<http::Uri> for SeamConnector {
    type Response = SeamIo;
    type Error = std::io::Error;
    type Future = BoxFuture<'static, std::io::Result<SeamIo>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Uri) -> Self::Future {
        let fut = self.dialer.connect(&self.authority);
        Box::pin(async move { Ok(SeamIo(TokioIo::new(fut.await?))) })
    }
}

/// The body type the client sends.
pub type ClientBody = http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, std::io::Error>;

/// A pooled HTTP/1.1 client to one server.
pub type SeamClient = hyper_util::client::legacy::Client<SeamConnector, ClientBody>;

/// Builds a client to `authority` through `dialer`.
pub fn client(dialer: Dialer, authority: &str) -> SeamClient {
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_timer(hyper_util::rt::TokioTimer::new())
        .timer(hyper_util::rt::TokioTimer::new())
        .build(SeamConnector::new(dialer, authority))
}
