//! Frames a client sends on a session or link it has already ended are dropped before the
//! AMQP engine sees them ([`super::unattached_frames`] says why and which).
//!
//! Connection frames (`open`, `close` — rhea sends its `close` on channel 0 right after
//! ending session 0), empty frames (heartbeats) and protocol headers always pass.
//!
//! The same look at frame headers finds malformed ones (a size below 8 or above our
//! max-frame-size, a data offset below 2). The engine would just stop reading, without a
//! `close`; so once the connection is open, a malformed frame is recorded in
//! [`FramingViolation`] and the stream ends for the engine, which then closes the connection —
//! and [`super::frames`] gives that `close` the condition `amqp:connection:framing-error` and
//! the reason. Before `open` the bytes pass untouched and the engine refuses them itself.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use tokio::io::{AsyncRead, ReadBuf};

use super::unattached_frames::{EndedEndpoints, Sender};
use crate::net::forward_async_write;

/// Why the client's byte stream was cut: a malformed frame after `open`.
#[derive(Debug, Default)]
pub(crate) struct FramingViolation(Mutex<Option<String>>);

impl FramingViolation {
    pub(crate) fn record(&self, reason: String) {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert(reason);
    }

    pub(crate) fn reason(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

const OPEN: u8 = 0x10;
const CLOSE: u8 = 0x18;

/// The client's side of the stream, minus frames on sessions it ended.
pub(crate) struct LateFrames<S> {
    inner: S,
    /// Read from the socket, not yet judged.
    raw: BytesMut,
    /// Judged, waiting for the engine to read it.
    ready: BytesMut,
    /// The client's ended sessions and links, whose late frames are dropped.
    ended: EndedEndpoints,
    /// Largest frame judged; anything claiming more passes untouched from then on.
    max_frame: usize,
    passthrough: bool,
    /// Whether the client's `open` went through (a `close` can be sent from then on).
    opened: bool,
    /// Set, and the stream ended for the engine, on a malformed frame after `open`.
    violation: Arc<FramingViolation>,
    cut: bool,
}

impl<S> LateFrames<S> {
    pub(crate) fn new(inner: S, max_frame: usize, violation: Arc<FramingViolation>) -> Self {
        LateFrames {
            inner,
            raw: BytesMut::new(),
            ready: BytesMut::new(),
            ended: EndedEndpoints::of(Sender::Client),
            max_frame,
            passthrough: false,
            opened: false,
            violation,
            cut: false,
        }
    }

    /// Moves every complete header and frame from `raw` to `ready`, dropping late frames.
    fn judge(&mut self) {
        loop {
            if self.cut {
                return;
            }
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
            let doff = usize::from(head[4]);
            let problem = if !(8..=self.max_frame).contains(&size) {
                Some(format!(
                    "frame size {size} is outside 8..={} (max-frame-size)",
                    self.max_frame
                ))
            } else if doff < 2 || doff * 4 > size {
                Some(format!(
                    "data offset {doff} does not fit a frame of {size} bytes"
                ))
            } else {
                None
            };
            if let Some(problem) = problem {
                if self.opened {
                    tracing::info!(%problem, "malformed AMQP frame; closing the connection");
                    self.violation.record(problem);
                    self.cut = true;
                    self.raw.clear();
                } else {
                    self.passthrough = true;
                }
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
        let (Some(&doff), Some(&frame_type)) = (frame.get(4), frame.get(5)) else {
            return true;
        };
        let body = frame.get(usize::from(doff) * 4..).unwrap_or_default();
        // Heartbeats and SASL frames are never late.
        if frame_type != 0 || body.is_empty() {
            return true;
        }
        match body {
            [0x00, 0x53, OPEN, ..] => {
                self.opened = true;
                true
            }
            // Connection-level: never the session's, whatever channel it arrives on.
            [0x00, 0x53, CLOSE, ..] => true,
            _ => self.ended.admit(frame),
        }
    }
}

impl<S> std::fmt::Debug for LateFrames<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LateFrames")
            .field("ended", &self.ended)
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
            if this.cut {
                // The engine sees the end of the stream and closes the connection.
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

forward_async_write!(LateFrames, inner);

#[cfg(test)]
mod tests {
    use super::*;

    const BEGIN: u8 = 0x11;
    const END: u8 = 0x17;
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
        let mut filter = LateFrames::new(server, 65_536, Arc::default());
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
        let close = frame(1, &[0x00, 0x53, CLOSE, 0x45]);
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
            end.clone(),
            close.clone(),
        ]
        .concat();
        let expected = [
            header,
            begin.clone(),
            detach.clone(),
            end.clone(),
            heartbeat,
            other,
            begin,
            detach,
            end,
            close,
        ]
        .concat();
        assert_eq!(filtered(input).await, expected);
    }

    #[tokio::test]
    async fn a_links_frames_after_the_clients_detach_are_dropped_until_it_attaches_again() {
        use fe2o3_amqp::types::performatives::Detach;
        let encode = |channel: u16, detach: &Detach| {
            let body = serde_amqp::to_vec(detach).expect("encodes");
            frame(channel, &body)
        };
        let detach_5 = encode(
            1,
            &Detach {
                handle: 5.into(),
                closed: true,
                error: None,
            },
        );
        let detach_6 = encode(
            1,
            &Detach {
                handle: 6.into(),
                closed: true,
                error: None,
            },
        );
        let input = [detach_5.clone(), detach_5.clone(), detach_6.clone()].concat();
        assert_eq!(filtered(input).await, [detach_5, detach_6].concat());
    }

    #[tokio::test]
    async fn a_malformed_frame_after_open_ends_the_stream_and_says_why() {
        let open = frame(0, &[0x00, 0x53, OPEN, 0x45]);
        let after = frame(0, &[0x00, 0x53, 0x16, 0x45]);
        let input = [open.clone(), vec![0, 0, 0, 4, 2, 0, 0, 0], after].concat();
        let (mut client, server) = tokio::io::duplex(1 << 16);
        client.write_all(&input).await.unwrap();
        let violation = Arc::new(FramingViolation::default());
        let mut filter = LateFrames::new(server, 65_536, violation.clone());
        let mut out = Vec::new();
        // The client keeps the socket open: the filter ends the stream by itself.
        filter.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, open);
        assert!(violation.reason().unwrap().contains("frame size 4"));
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
