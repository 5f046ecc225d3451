//! The pass-through codec and raw gRPC request/response plumbing.
//!
//! The tunnel forwards messages it does not understand, so both the client side (tonic's `Grpc`
//! with [`RawCodec`]) and the server side ([`response`], [`RequestMessages`]) move opaque payloads.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, Bytes};
use futures_util::Stream;
use http::{HeaderMap, HeaderValue};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use tokio::sync::mpsc;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use super::frame::{self, FrameDecoder};

/// Encodes and decodes messages as the raw bytes they already are.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// Items of a raw gRPC response body, in order: messages, then the end with trailers.
#[derive(Debug)]
pub enum ResponseItem {
    Message(Bytes),
    /// Final status plus extra trailer metadata.
    End(tonic::Status, HeaderMap),
}

/// The body type of raw responses.
pub type RawBody = http_body_util::combinators::UnsyncBoxBody<Bytes, tonic::Status>;

/// Builds a gRPC response whose body is fed by `rx`. A channel closed without `End` means the
/// producer died: the client sees `Internal`... unless it already got an end.
pub fn response(headers: HeaderMap, rx: mpsc::Receiver<ResponseItem>) -> http::Response<RawBody> {
    let mut resp = http::Response::new(ResponseBody { rx, done: false }.boxed_unsync());
    *resp.headers_mut() = headers;
    resp.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    resp
}

/// A "trailers-only" style failure: status in the only header block.
pub fn error_response(status: &tonic::Status) -> http::Response<RawBody> {
    let mut headers = HeaderMap::new();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    let _ = status.add_header(&mut headers);
    let mut resp = http::Response::new(http_body_util::Empty::new().map_err(|never| match never {}).boxed_unsync());
    *resp.headers_mut() = headers;
    resp
}

struct ResponseBody {
    rx: mpsc::Receiver<ResponseItem>,
    done: bool,
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(ResponseItem::Message(m))) => Poll::Ready(Some(Ok(Frame::data(frame::encode(&m))))),
            Poll::Ready(Some(ResponseItem::End(status, mut trailers))) => {
                self.done = true;
                let _ = status.add_header(&mut trailers);
                Poll::Ready(Some(Ok(Frame::trailers(trailers))))
            }
            Poll::Ready(None) => {
                self.done = true;
                let mut trailers = HeaderMap::new();
                let _ = tonic::Status::internal("response producer ended without a status").add_header(&mut trailers);
                Poll::Ready(Some(Ok(Frame::trailers(trailers))))
            }
        }
    }
}

/// Splits a gRPC request body into messages. Malformed framing ends with `InvalidArgument`.
pub struct RequestMessages<B> {
    body: B,
    decoder: FrameDecoder,
    ended: bool,
}

impl<B> RequestMessages<B> {
    pub fn new(body: B) -> Self {
        Self { body, decoder: FrameDecoder::default(), ended: false }
    }
}

impl<B> Stream for RequestMessages<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    type Item = Result<Bytes, tonic::Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if self.ended {
                return Poll::Ready(None);
            }
            match self.decoder.next_message() {
                Ok(Some(m)) => return Poll::Ready(Some(Ok(m))),
                Ok(None) => {}
                Err(e) => {
                    self.ended = true;
                    return Poll::Ready(Some(Err(tonic::Status::invalid_argument(e.to_string()))));
                }
            }
            match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    self.ended = true;
                    return match self.decoder.finish() {
                        Ok(()) => Poll::Ready(None),
                        Err(e) => Poll::Ready(Some(Err(tonic::Status::invalid_argument(e.to_string())))),
                    };
                }
                Poll::Ready(Some(Err(e))) => {
                    self.ended = true;
                    return Poll::Ready(Some(Err(tonic::Status::cancelled(format!("request body: {e}")))));
                }
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.decoder.push(&data);
                    }
                }
            }
        }
    }
}
