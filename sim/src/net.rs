//! The turmoil arm of the transport seam.

use std::io;

use kasim_core::transport::{Accept, Accepted, BoxFuture, BoxIo, Connect};

/// A turmoil TCP listener on the current simulated host.
pub struct SimListener {
    inner: turmoil::net::TcpListener,
    addr: String,
}

impl SimListener {
    /// Binds `0.0.0.0:<port>` on the current host; `name` is how peers dial it (`host:port`).
    pub async fn bind(port: u16, name: &str) -> io::Result<Self> {
        let inner = turmoil::net::TcpListener::bind(("0.0.0.0", port)).await?;
        Ok(Self { inner, addr: format!("{name}:{port}") })
    }
}

impl Accept for SimListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<Accepted>> {
        Box::pin(async move {
            let (stream, peer) = self.inner.accept().await?;
            let io: BoxIo = Box::new(stream);
            Ok(Accepted { peer: peer.to_string(), io: Box::pin(async move { Ok(io) }) })
        })
    }

    fn local_addr(&self) -> String {
        self.addr.clone()
    }
}

/// Dials simulated hosts by name.
#[derive(Debug, Clone, Copy, Default)]
pub struct SimConnector;

impl Connect for SimConnector {
    fn connect(&self, authority: &str) -> BoxFuture<'static, io::Result<BoxIo>> {
        let authority = authority.to_owned();
        Box::pin(async move {
            let s = turmoil::net::TcpStream::connect(authority.as_str()).await?;
            Ok(Box::new(s) as BoxIo)
        })
    }
}
