//! kas's HTTP/2 listeners, with maximum connection age and grace.
//!
//! tonic's own `max_connection_age_grace` drops connections without sending GOAWAY (measured on
//! tonic 0.14.9), so kas serves each connection with hyper and manages its age itself: at the age it
//! sends GOAWAY (hyper's graceful shutdown), ends idle tunnels with OK (their [`ConnectionAge`] token is
//! cancelled) and lets in-flight forwarding finish; at age + grace it closes the connection.
//!
//! Defaults follow GitLab's documentation: 2 h maximum age and a grace of 50 % of it (1 h). Upstream
//! v16 code used another split (GOAWAY at 20 % of the age, grace 65 %, idle tunnels ended at 30–35 %);
//! kasim follows the documented behaviour and keeps both knobs configurable.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio_util::sync::CancellationToken;

use super::tunnel_server::ConnectionAge;
use crate::transport::Accept;
use crate::transport::abortable::Abortable;

/// Default maximum connection age of the agent listener.
pub const DEFAULT_MAX_CONNECTION_AGE: Duration = Duration::from_secs(2 * 3600);
/// kas pings agents every 50 s.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(50);
/// How long a ping may go unanswered before the connection is considered dead.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// The documented default grace: 50 % of the maximum age.
pub fn default_grace(max_age: Duration) -> Duration {
    max_age / 2
}

/// Per-listener connection settings.
#[derive(Debug, Clone)]
pub struct ListenerOptions {
    /// `None` = connections live until the peer or shutdown ends them.
    pub max_connection_age: Option<Duration>,
    pub max_connection_age_grace: Duration,
    pub keepalive_interval: Option<Duration>,
}

impl ListenerOptions {
    pub fn agent_default() -> Self {
        Self {
            max_connection_age: Some(DEFAULT_MAX_CONNECTION_AGE),
            max_connection_age_grace: default_grace(DEFAULT_MAX_CONNECTION_AGE),
            keepalive_interval: Some(KEEPALIVE_INTERVAL),
        }
    }

    pub fn no_age() -> Self {
        Self {
            max_connection_age: None,
            max_connection_age_grace: Duration::ZERO,
            keepalive_interval: Some(KEEPALIVE_INTERVAL),
        }
    }
}

/// Serves HTTP/2 connections from `listener` with `service` until `shutdown`.
pub async fn serve<S, B>(mut listener: Box<dyn Accept>, service: S, opts: ListenerOptions, shutdown: CancellationToken)
where
    S: tower_service::Service<http::Request<Incoming>, Response = http::Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    loop {
        let accepted = tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let accepted = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                // A listener that fails persistently (closed) must not spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let service = service.clone();
        let opts = opts.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let peer = accepted.peer;
            let io = match accepted.io.await {
                Ok(io) => io,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "handshake failed");
                    return;
                }
            };
            serve_connection(io, service, &opts, shutdown).await;
        });
    }
}

async fn serve_connection<S, B>(
    io: crate::transport::BoxIo,
    service: S,
    opts: &ListenerOptions,
    shutdown: CancellationToken,
) where
    S: tower_service::Service<http::Request<Incoming>, Response = http::Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let age = CancellationToken::new();
    let age_for_requests = age.clone();
    let svc = tower::ServiceExt::map_request(service, move |mut req: http::Request<Incoming>| {
        req.extensions_mut().insert(ConnectionAge(age_for_requests.clone()));
        req
    });
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder.timer(TokioTimer::new()).max_concurrent_streams(None);
    if let Some(k) = opts.keepalive_interval {
        builder.keep_alive_interval(k).keep_alive_timeout(KEEPALIVE_TIMEOUT);
    }
    let (io, cut) = Abortable::new(io);
    let conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(svc));
    tokio::pin!(conn);
    let max_age = opts.max_connection_age.map_or(Duration::MAX, |a| a);
    let age_timer = tokio::time::sleep(max_age.min(Duration::from_secs(100 * 365 * 86400)));
    tokio::select! {
        biased;
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "connection ended");
            }
            return;
        }
        () = age_timer => {}
        () = shutdown.cancelled() => {}
    }
    conn.as_mut().graceful_shutdown();
    age.cancel();
    let grace = tokio::time::sleep(opts.max_connection_age_grace);
    tokio::select! {
        biased;
        _ = conn.as_mut() => return,
        () = grace => tracing::debug!("grace period over, closing connection"),
    }
    // Cut the socket rather than drop the connection future, so that h2 fails every open stream and
    // the connection winds down on its own (see `transport::abortable`).
    cut.abort();
    let _ = tokio::time::timeout(Duration::from_secs(1), conn.as_mut()).await;
}
