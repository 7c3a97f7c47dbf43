//! Frames a client sends on a session it has already ended are dropped before the AMQP
//! engine sees them.
//!
//! Some clients keep talking on a channel after their own `end`: pyamqp (Python
//! `azure-eventhub`) sends `detach` for its remaining links *after* `end` when it gives up on
//! a session, and rhea-promise (Node `@azure/event-hubs`) closes links and sessions
//! concurrently. The real hub ignores such frames. `fe2o3-amqp`'s connection engine finds no
//! session for the channel and closes the whole connection with `amqp:not-found`, killing
//! every other session of the client, which then waits out its operation timeout
//! (conformance finding E-5). So incoming frames are looked at here: after a client `end` on
//! a channel, everything on it but a new `begin` is dropped. Empty frames (heartbeats) and
//! protocol headers always pass; a frame whose size is out of bounds switches the filter off
//! so the engine reports the broken stream itself.

use std::collections::HashSet;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const BEGIN: u8 = 0x11;
const END: u8 = 0x17;

/// The client's side of the stream, minus frames on sessions it ended.
pub struct LateFrames<S> {
    inner: S,
    /// Read from the socket, not yet judged.
    raw: BytesMut,
    /// Judged, waiting for the engine to read it.
    ready: BytesMut,
    /// Channels whose session the client ended.
    ended: HashSet<u16>,
    /// Largest frame judged; anything claiming more passes untouched from then on.
    max_frame: usize,
    passthrough: bool,
}

impl<S> LateFrames<S> {
    pub fn new(inner: S, max_frame: usize) -> Self {
        LateFrames {
            inner,
            raw: BytesMut::new(),
            ready: BytesMut::new(),
            ended: HashSet::new(),
            max_frame,
            passthrough: false,
        }
    }

    /// Moves every complete header and frame from `raw` to `ready`, dropping late frames.
    fn judge(&mut self) {
        loop {
            if self.passthrough {
                let rest = self.raw.split();
                self.ready.extend_from_slice(&rest);
                return;
            }
            if self.raw.starts_with(b"AMQP") {
                if self.raw.len() < 8 {
                    return;
                }
                let header = self.raw.split_to(8);
                self.ready.extend_from_slice(&header);
                continue;
            }
            let Some(head) = self.raw.get(..8) else {
                return;
            };
            let size = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
            if !(8..=self.max_frame).contains(&size) {
                self.passthrough = true;
                continue;
            }
            if self.raw.len() < size {
                return;
            }
            let frame = self.raw.split_to(size);
            if self.keep(&frame) {
                self.ready.extend_from_slice(&frame);
            }
        }
    }

    fn keep(&mut self, frame: &[u8]) -> bool {
        let (Some(&doff), Some(&frame_type), Some(channel)) = (
            frame.get(4),
            frame.get(5),
            frame.get(6..8).map(|c| u16::from_be_bytes([c[0], c[1]])),
        ) else {
            return true;
        };
        let body = frame.get(usize::from(doff) * 4..).unwrap_or_default();
        // Heartbeats and SASL frames are never late.
        if frame_type != 0 || body.is_empty() {
            return true;
        }
        let descriptor = match body {
            [0x00, 0x53, code, ..] => Some(*code),
            _ => None,
        };
        match descriptor {
            Some(BEGIN) => {
                self.ended.remove(&channel);
                true
            }
            _ if self.ended.contains(&channel) => {
                tracing::debug!(
                    channel,
                    descriptor = ?descriptor,
                    "AMQP frame on a session the client already ended; dropped"
                );
                false
            }
            Some(END) => {
                self.ended.insert(channel);
                true
            }
            _ => true,
        }
    }
}

impl<S> std::fmt::Debug for LateFrames<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LateFrames")
            .field("ended", &self.ended.len())
            .field("passthrough", &self.passthrough)
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for LateFrames<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.ready.is_empty() {
                let n = this.ready.len().min(buf.remaining());
                let chunk = this.ready.split_to(n);
                buf.put_slice(&chunk);
                return Poll::Ready(Ok(()));
            }
            let mut scratch = [0u8; 8192];
            let mut read = ReadBuf::new(&mut scratch);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                // End of stream: hand over whatever partial frame is left, then the end.
                if this.raw.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                let rest = this.raw.split();
                this.ready.extend_from_slice(&rest);
                continue;
            }
            this.raw.extend_from_slice(read.filled());
            this.judge();
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for LateFrames<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn frame(channel: u16, body: &[u8]) -> Vec<u8> {
        let mut f = ((8 + body.len()) as u32).to_be_bytes().to_vec();
        f.extend_from_slice(&[2, 0]);
        f.extend_from_slice(&channel.to_be_bytes());
        f.extend_from_slice(body);
        f
    }

    async fn filtered(input: Vec<u8>) -> Vec<u8> {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        client.write_all(&input).await.unwrap();
        drop(client);
        let mut filter = LateFrames::new(server, 65_536);
        let mut out = Vec::new();
        filter.read_to_end(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn frames_after_an_end_are_dropped_until_a_new_begin() {
        let header = b"AMQP\x00\x01\x00\x00".to_vec();
        let begin = frame(1, &[0x00, 0x53, BEGIN, 0x45]);
        let detach = frame(1, &[0x00, 0x53, 0x16, 0x45]);
        let end = frame(1, &[0x00, 0x53, END, 0x45]);
        let other = frame(2, &[0x00, 0x53, 0x16, 0x45]);
        let heartbeat = frame(1, &[]);
        let input = [
            header.clone(),
            begin.clone(),
            detach.clone(),
            end.clone(),
            detach.clone(),
            end.clone(),
            heartbeat.clone(),
            other.clone(),
            begin.clone(),
            detach.clone(),
        ]
        .concat();
        let expected = [
            header,
            begin.clone(),
            detach.clone(),
            end,
            heartbeat,
            other,
            begin,
            detach,
        ]
        .concat();
        assert_eq!(filtered(input).await, expected);
    }

    #[tokio::test]
    async fn an_impossible_size_turns_the_filter_off() {
        let end = frame(1, &[0x00, 0x53, END, 0x45]);
        let late = frame(1, &[0x00, 0x53, 0x16, 0x45]);
        let garbage = vec![0xde; 40];
        let input = [end.clone(), garbage.clone(), late.clone()].concat();
        assert_eq!(filtered(input).await, [end, garbage, late].concat());
    }
}
