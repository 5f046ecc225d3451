//! The transport seam: the only place that knows how bytes move.
//!
//! kas and agentk take an [`Accept`] (listening side) and a [`Connect`] (dialling side) and never name
//! a socket type. Implementations: [`tcp`] (tokio TCP), [`tls`] (rustls on top of any other),
//! [`memory`] (in-process pipes for virtual-time tests); the simulator crate adds turmoil.
//! gRPC plugs in through tonic's `connect_with_connector` and hyper's `serve_connection`, never
//! `Server::serve(addr)` or `Endpoint::connect()`, which would bypass the seam.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

pub mod abortable;
pub mod hyper_client;
pub mod memory;
pub mod proxy;
pub mod tcp;
pub mod tls;

/// A bidirectional byte stream.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A boxed stream, so that TLS and plain connections share one type.
pub type BoxIo = Box<dyn Io>;

/// A boxed future, for the object-safe traits below.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A connection taken off a listener. `io` finishes the per-connection handshake (TLS); run it in the
/// connection's own task so one slow client cannot stall the accept loop.
pub struct Accepted {
    pub peer: String,
    pub io: BoxFuture<'static, io::Result<BoxIo>>,
}

/// The listening side of a transport.
pub trait Accept: Send + 'static {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<Accepted>>;
    /// The address clients should dial, for logs and for the tunnel tracker.
    fn local_addr(&self) -> String;
}

/// The dialling side of a transport. `authority` is `host:port`.
pub trait Connect: Send + Sync + std::fmt::Debug + 'static {
    fn connect(&self, authority: &str) -> BoxFuture<'static, io::Result<BoxIo>>;
}

/// A shareable dialler.
pub type Dialer = Arc<dyn Connect>;

/// Builds a tonic channel that dials through `dialer`. Lazy: each call (re)connects as needed and
/// fails with `Unavailable` when it cannot, which is what the agent's backoff expects.
pub fn grpc_channel(
    dialer: Dialer,
    authority: &str,
    configure: impl FnOnce(tonic::transport::Endpoint) -> tonic::transport::Endpoint,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{authority}"))?;
    let endpoint = configure(endpoint);
    let target = authority.to_owned();
    Ok(endpoint.connect_with_connector_lazy(tower::service_fn(move |_uri: http::Uri| {
        let dialer = dialer.clone();
        let target = target.clone();
        async move { dialer.connect(&target).await.map(hyper_util::rt::TokioIo::new) }
    })))
}
