//! A stream that can be cut from outside.
//!
//! Dropping a hyper HTTP/2 connection future leaves the streams it spawned without a driver (we saw
//! such a stream task spin after a hard close). Cutting the I/O instead makes the connection fail the
//! way a reset socket does, so hyper/h2 tells every stream and the connection future ends on its own.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

#[derive(Debug, Default)]
struct Switch {
    cut: AtomicBool,
    reader: AtomicWaker,
    writer: AtomicWaker,
}

/// Cuts the paired [`Abortable`] stream.
#[derive(Debug, Clone, Default)]
pub struct AbortHandle(Arc<Switch>);

impl AbortHandle {
    pub fn abort(&self) {
        self.0.cut.store(true, Ordering::SeqCst);
        self.0.reader.wake();
        self.0.writer.wake();
    }
}

/// Wraps a stream; after [`AbortHandle::abort`] every read and write fails with `ConnectionAborted`.
pub struct Abortable<T> {
    inner: T,
    switch: Arc<Switch>,
}

impl<T> Abortable<T> {
    pub fn new(inner: T) -> (Self, AbortHandle) {
        let handle = AbortHandle::default();
        (Self { inner, switch: handle.0.clone() }, handle)
    }
}

fn aborted() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "connection closed by kas")
}

impl<T: AsyncRead + Unpin> AsyncRead for Abortable<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.switch.reader.register(cx.waker());
        if self.switch.cut.load(Ordering::SeqCst) {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Abortable<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.switch.writer.register(cx.waker());
        if self.switch.cut.load(Ordering::SeqCst) {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.switch.cut.load(Ordering::SeqCst) {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn abort_wakes_a_pending_reader_and_fails_writes() {
        let (a, mut b) = tokio::io::duplex(64);
        let (mut a, handle) = Abortable::new(a);
        b.write_all(b"x").await.unwrap();
        let mut one = [0u8; 1];
        a.read_exact(&mut one).await.unwrap();
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 1];
            let r = a.read(&mut buf).await;
            (r.map_err(|e| e.kind()), a)
        });
        tokio::task::yield_now().await;
        handle.abort();
        let (r, mut a) = reader.await.unwrap();
        assert_eq!(r, Err(io::ErrorKind::ConnectionAborted));
        assert_eq!(a.write(b"y").await.unwrap_err().kind(), io::ErrorKind::ConnectionAborted);
    }
}
