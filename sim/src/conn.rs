//! Live TCP connections the checkers care about: kas agent-listener connections and proxied ones.
//!
//! Observation happens at the transport seam, not in kas: [`ObservedIo`] wraps an accepted stream,
//! registers it when accepted and unregisters it when kas (or the proxy) drops it — which kas does at
//! age + grace, on peer close, or when its host crashes. So the connection-age checker sees exactly
//! what kas's listener does, without a hook in core.

use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use kasim_core::transport::{Accept, Accepted, BoxFuture, BoxIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::trace::{SimTime, Trace};

/// Who holds a connection, and the bound on its lifetime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    /// Host that accepted it (`kas-1`, `proxy`).
    pub host: String,
    /// Host that dialled it.
    pub peer: String,
    pub opened_at: Duration,
    /// The connection must be gone by `opened_at + max_life`; `None` = unbounded.
    pub max_life: Option<Duration>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    live: BTreeMap<u64, ConnInfo>,
    /// Connections ever accepted, by accepting host.
    opened: BTreeMap<String, u64>,
}

/// The table of live observed connections; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct ConnTable {
    inner: Arc<Mutex<Inner>>,
}

impl ConnTable {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a connection; returns its id.
    pub fn open(&self, info: ConnInfo) -> u64 {
        let mut inner = self.lock();
        inner.next_id += 1;
        let id = inner.next_id;
        *inner.opened.entry(info.host.clone()).or_default() += 1;
        inner.live.insert(id, info);
        id
    }

    pub fn close(&self, id: u64) -> Option<ConnInfo> {
        self.lock().live.remove(&id)
    }

    /// Live connections, by id.
    pub fn live(&self) -> Vec<(u64, ConnInfo)> {
        self.lock().live.iter().map(|(id, c)| (*id, c.clone())).collect()
    }

    /// Connections ever accepted by hosts whose name starts with `prefix` (`kas-`, `proxy`).
    pub fn opened(&self, prefix: &str) -> u64 {
        self.lock().opened.iter().filter(|(h, _)| h.starts_with(prefix)).map(|(_, n)| n).sum()
    }

    /// When the oldest live connection of hosts starting with `prefix` was opened.
    pub fn oldest(&self, prefix: &str) -> Option<Duration> {
        self.lock().live.values().filter(|c| c.host.starts_with(prefix)).map(|c| c.opened_at).min()
    }

    /// Forgets every connection held by `host` (its software crashed; the streams are gone).
    pub fn forget_host(&self, host: &str) {
        self.lock().live.retain(|_, c| c.host != host);
    }
}

/// A stream that unregisters itself when dropped.
pub struct ObservedIo<T> {
    inner: T,
    id: u64,
    table: ConnTable,
    trace: Trace,
}

impl<T> ObservedIo<T> {
    pub fn new(inner: T, info: ConnInfo, table: ConnTable, trace: Trace) -> Self {
        trace.record(&info.host, format_args!("conn open from {}", info.peer));
        let id = table.open(info);
        Self { inner, id, table, trace }
    }
}

impl<T> Drop for ObservedIo<T> {
    fn drop(&mut self) {
        if let Some(c) = self.table.close(self.id) {
            self.trace.record(&c.host, format_args!("conn closed from {}", c.peer));
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ObservedIo<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ObservedIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Wraps a listener so each accepted connection is observed.
pub struct ObservedListener {
    inner: Box<dyn Accept>,
    host: String,
    max_life: Option<Duration>,
    table: ConnTable,
    trace: Trace,
    time: SimTime,
}

impl ObservedListener {
    pub fn new(
        inner: Box<dyn Accept>,
        host: &str,
        max_life: Option<Duration>,
        table: ConnTable,
        trace: Trace,
        time: SimTime,
    ) -> Self {
        Self { inner, host: host.to_owned(), max_life, table, trace, time }
    }
}

/// The host name behind a peer address `ip:port`, for readable traces.
pub fn peer_name(peer: &str) -> String {
    peer.parse::<std::net::SocketAddr>()
        .ok()
        .and_then(|a| turmoil::reverse_lookup(a.ip()))
        .unwrap_or_else(|| peer.to_owned())
}

impl Accept for ObservedListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<Accepted>> {
        Box::pin(async move {
            let a = self.inner.accept().await?;
            let peer = peer_name(&a.peer);
            let io = a.io.await?;
            let info = ConnInfo {
                host: self.host.clone(),
                peer: peer.clone(),
                opened_at: self.time.now(),
                max_life: self.max_life,
            };
            let io: BoxIo = Box::new(ObservedIo::new(io, info, self.table.clone(), self.trace.clone()));
            Ok(Accepted { peer, io: Box::pin(async move { Ok(io) }) })
        })
    }

    fn local_addr(&self) -> String {
        self.inner.local_addr()
    }
}
