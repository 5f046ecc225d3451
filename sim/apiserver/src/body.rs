//! Response bodies: whole buffers, and the streaming body watches use.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use tokio::sync::mpsc;

/// The response body type of every [`crate::ApiServer`] response.
///
/// `Send + Sync` so it composes with tower/hyper stacks; errors are
/// impossible because bodies are produced in memory.
pub type BoxBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

pub(crate) fn full(bytes: Bytes) -> BoxBody {
    Full::new(bytes).boxed()
}

/// A body fed by a channel: every received buffer becomes its own data
/// frame, so hyper writes (and flushes) each watch event as its own chunk
/// instead of buffering the stream.
pub(crate) struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

impl ChannelBody {
    pub fn new(rx: mpsc::Receiver<Bytes>) -> Self {
        Self { rx }
    }
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}
