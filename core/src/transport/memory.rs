//! In-process pipes addressed by name: a network with no sockets and no I/O driver, so tests under
//! tokio's paused clock advance time only when every task is truly waiting on a timer.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::{Accept, Accepted, BoxFuture, BoxIo, Connect};

const PIPE_BUFFER: usize = 256 * 1024;

type Backlog = mpsc::UnboundedSender<(tokio::io::DuplexStream, String)>;

/// A set of named listeners. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct MemoryNetwork {
    listeners: Arc<Mutex<BTreeMap<String, Backlog>>>,
    next_port: Arc<Mutex<u64>>,
    dials: Arc<Mutex<BTreeMap<String, usize>>>,
}

impl MemoryNetwork {
    /// Listens on `addr`, replacing any previous listener there (a restarted server).
    pub fn listen(&self, addr: &str) -> MemoryListener {
        let (tx, rx) = mpsc::unbounded_channel();
        self.listeners.lock().unwrap_or_else(|e| e.into_inner()).insert(addr.to_owned(), tx);
        MemoryListener { addr: addr.to_owned(), rx }
    }

    /// Successful dials to `addr` so far (each is a new connection).
    pub fn dial_count(&self, addr: &str) -> usize {
        self.dials.lock().unwrap_or_else(|e| e.into_inner()).get(addr).copied().unwrap_or(0)
    }

    pub fn connector(&self) -> MemoryConnector {
        MemoryConnector { net: self.clone() }
    }
}

/// Accepts pipes dialled to its name. Dropping it refuses further dials.
pub struct MemoryListener {
    addr: String,
    rx: mpsc::UnboundedReceiver<(tokio::io::DuplexStream, String)>,
}

impl Accept for MemoryListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<Accepted>> {
        Box::pin(async move {
            let (stream, peer) = self
                .rx
                .recv()
                .await
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "memory listener closed"))?;
            let io: BoxIo = Box::new(stream);
            Ok(Accepted { peer, io: Box::pin(async move { Ok(io) }) })
        })
    }

    fn local_addr(&self) -> String {
        self.addr.clone()
    }
}

/// Dials listeners of one [`MemoryNetwork`].
#[derive(Debug, Clone)]
pub struct MemoryConnector {
    net: MemoryNetwork,
}

impl Connect for MemoryConnector {
    fn connect(&self, authority: &str) -> BoxFuture<'static, io::Result<BoxIo>> {
        let result = (|| {
            let backlog =
                self.net.listeners.lock().unwrap_or_else(|e| e.into_inner()).get(authority).cloned().ok_or_else(
                    || io::Error::new(io::ErrorKind::ConnectionRefused, format!("nothing listens on {authority}")),
                )?;
            let peer = {
                let mut n = self.net.next_port.lock().unwrap_or_else(|e| e.into_inner());
                *n += 1;
                format!("memory-client-{}", *n)
            };
            let (a, b) = tokio::io::duplex(PIPE_BUFFER);
            backlog.send((b, peer)).map_err(|_| {
                io::Error::new(io::ErrorKind::ConnectionRefused, format!("listener on {authority} is gone"))
            })?;
            *self.net.dials.lock().unwrap_or_else(|e| e.into_inner()).entry(authority.to_owned()).or_default() += 1;
            Ok(Box::new(a) as BoxIo)
        })();
        Box::pin(async move { result })
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn dial_accept_and_refuse() {
        let net = MemoryNetwork::default();
        let mut l = net.listen("kas:8150");
        let c = net.connector();
        let mut client = c.connect("kas:8150").await.unwrap();
        let acc = l.accept().await.unwrap();
        let mut server = acc.io.await.unwrap();
        client.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        assert_eq!(c.connect("nowhere:1").await.err().unwrap().kind(), io::ErrorKind::ConnectionRefused);
        drop(l);
        assert_eq!(c.connect("kas:8150").await.err().unwrap().kind(), io::ErrorKind::ConnectionRefused);
    }
}
