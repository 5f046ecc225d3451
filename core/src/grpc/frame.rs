//! gRPC length-prefixed message framing (`compressed flag | u32 length | payload`).

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Largest message kasim accepts from a peer; matches gRPC's default receive limit of 4 MiB times
/// four, because Kubernetes list responses travel inside messages.
pub const MAX_MESSAGE_LEN: usize = 16 * 1024 * 1024;

/// Why a byte stream could not be split into gRPC messages.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("compressed gRPC messages are not supported by the pass-through codec")]
    Compressed,
    #[error("gRPC message of {0} bytes exceeds the {MAX_MESSAGE_LEN} byte limit")]
    TooLarge(usize),
    #[error("invalid gRPC compression flag {0}")]
    BadFlag(u8),
    #[error("stream ended inside a gRPC message ({0} bytes buffered)")]
    Truncated(usize),
}

/// Encodes one uncompressed message.
pub fn encode(payload: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(5 + payload.len());
    buf.put_u8(0);
    buf.put_u32(payload.len() as u32);
    buf.put_slice(payload);
    buf.freeze()
}

/// Incremental decoder: feed body chunks, take whole messages out.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: BytesMut,
}

impl FrameDecoder {
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// Returns the next complete message, `Ok(None)` if more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Bytes>, FrameError> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        match self.buf[0] {
            0 => {}
            1 => return Err(FrameError::Compressed),
            f => return Err(FrameError::BadFlag(f)),
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > MAX_MESSAGE_LEN {
            return Err(FrameError::TooLarge(len));
        }
        if self.buf.len() < 5 + len {
            return Ok(None);
        }
        self.buf.advance(5);
        Ok(Some(self.buf.split_to(len).freeze()))
    }

    /// Call at end of stream: leftover bytes mean the peer cut a message in half.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.buf.is_empty() { Ok(()) } else { Err(FrameError::Truncated(self.buf.len())) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_across_arbitrary_chunking() {
        let msgs: Vec<Vec<u8>> = vec![vec![], b"a".to_vec(), vec![7u8; 1000]];
        let mut wire = Vec::new();
        for m in &msgs {
            wire.extend_from_slice(&encode(m));
        }
        for chunk in [1usize, 2, 3, 7, 64, 5000] {
            let mut d = FrameDecoder::default();
            let mut got = Vec::new();
            for c in wire.chunks(chunk) {
                d.push(c);
                while let Some(m) = d.next_message().unwrap() {
                    got.push(m.to_vec());
                }
            }
            d.finish().unwrap();
            assert_eq!(got, msgs, "chunk size {chunk}");
        }
    }

    #[test]
    fn rejects_compressed_oversized_and_truncated() {
        let mut d = FrameDecoder::default();
        d.push(&[1, 0, 0, 0, 0]);
        assert_eq!(d.next_message(), Err(FrameError::Compressed));
        let mut d = FrameDecoder::default();
        d.push(&[0, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(d.next_message(), Err(FrameError::TooLarge(u32::MAX as usize)));
        let mut d = FrameDecoder::default();
        d.push(&[0, 0, 0, 0, 9, 1, 2]);
        assert_eq!(d.next_message(), Ok(None));
        assert_eq!(d.finish(), Err(FrameError::Truncated(7)));
        let mut d = FrameDecoder::default();
        d.push(&[9, 0, 0, 0, 0]);
        assert_eq!(d.next_message(), Err(FrameError::BadFlag(9)));
    }
}
