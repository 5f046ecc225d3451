//! tokio TCP, for loopback tests and real deployments.

use std::io;

use super::{Accept, Accepted, BoxFuture, BoxIo, Connect};

/// A bound TCP listener.
pub struct TcpListener {
    inner: tokio::net::TcpListener,
}

impl TcpListener {
    pub async fn bind(addr: &str) -> io::Result<Self> {
        Ok(Self { inner: tokio::net::TcpListener::bind(addr).await? })
    }
}

impl Accept for TcpListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<Accepted>> {
        Box::pin(async move {
            let (stream, peer) = self.inner.accept().await?;
            stream.set_nodelay(true)?;
            let io: BoxIo = Box::new(stream);
            Ok(Accepted { peer: peer.to_string(), io: Box::pin(async move { Ok(io) }) })
        })
    }

    fn local_addr(&self) -> String {
        self.inner.local_addr().map(|a| a.to_string()).unwrap_or_default()
    }
}

/// Dials TCP.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpConnector;

impl Connect for TcpConnector {
    fn connect(&self, authority: &str) -> BoxFuture<'static, io::Result<BoxIo>> {
        let authority = authority.to_owned();
        Box::pin(async move {
            let stream = tokio::net::TcpStream::connect(&authority).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as BoxIo)
        })
    }
}
