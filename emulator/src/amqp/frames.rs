//! Every performative we send carries all of its fields.
//!
//! AMQP lets an encoder drop trailing null fields of a composite (and `fe2o3-amqp`, like
//! rhea, does: a `close` without error is an empty `list0`). pyamqp — the transport of
//! Python `azure-eventhub`, i.e. of `az iot hub monitor-events` and the Event Hubs samples —
//! decodes a performative into a Python list of exactly the encoded fields and then reads
//! them by position (`frame[9]` of `open`, `frame[13]` of `attach`, the payload of a
//! `transfer` at `frame[11]`), and only understands `list8`/`list32`; it was only ever tested
//! against Azure, whose stack writes every field. So the bytes the engine writes are
//! re-framed here: each performative's list is padded with nulls to its full field count and
//! written as `list8`/`list32` (conformance finding E-4). Other clients are indifferent.
//!
//! [`FullFields`] sits between the AMQP engine and the socket. Reads pass through untouched.
//! A padded frame is at most a couple of dozen bytes longer; frames are only split at the
//! client's max-frame-size for messages larger than it (pyamqp allows 1 MiB), so the padding
//! does not push frames over a limit in practice.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use std::sync::Arc;

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::AsyncWrite;

use super::late_frames::FramingViolation;
use super::unattached_frames::EndedEndpoints;
use crate::net::forward_async_read;

/// Bytes kept for the socket before the engine is made to wait.
const HIGH_WATER: usize = 256 * 1024;

const NULL: u8 = 0x40;
const LIST0: u8 = 0x45;
const LIST8: u8 = 0xc0;
const LIST32: u8 = 0xd0;
const AMQP_FRAME: u8 = 0x00;
const SASL_FRAME: u8 = 0x01;

/// The number of fields of each performative (AMQP 1.0 §2.7, §5.3.3).
fn full_field_count(frame_type: u8, descriptor: u8) -> Option<usize> {
    match (frame_type, descriptor) {
        (AMQP_FRAME, 0x10) => Some(10), // open
        (AMQP_FRAME, 0x11) => Some(8),  // begin
        (AMQP_FRAME, 0x12) => Some(14), // attach
        (AMQP_FRAME, 0x13) => Some(11), // flow
        (AMQP_FRAME, 0x14) => Some(11), // transfer
        (AMQP_FRAME, 0x15) => Some(6),  // disposition
        (AMQP_FRAME, 0x16) => Some(3),  // detach
        (AMQP_FRAME, 0x17) => Some(1),  // end
        (AMQP_FRAME, 0x18) => Some(1),  // close
        (SASL_FRAME, 0x40) => Some(1),  // sasl-mechanisms
        (SASL_FRAME, 0x42) => Some(1),  // sasl-challenge
        (SASL_FRAME, 0x44) => Some(2),  // sasl-outcome
        _ => None,
    }
}

/// A list's encoded fields: count, element bytes, and how many bytes the whole list takes.
fn parse_list(list: &[u8]) -> Option<(usize, &[u8], usize)> {
    match *list.first()? {
        LIST0 => Some((0, &[], 1)),
        LIST8 => {
            let size = usize::from(*list.get(1)?);
            let count = usize::from(*list.get(2)?);
            let elements = list.get(3..2usize.checked_add(size)?)?;
            Some((count, elements, 2 + size))
        }
        LIST32 => {
            let size = u32::from_be_bytes(list.get(1..5)?.try_into().ok()?) as usize;
            let count = u32::from_be_bytes(list.get(5..9)?.try_into().ok()?) as usize;
            let elements = list.get(9..5usize.checked_add(size)?)?;
            Some((count, elements, 5usize.checked_add(size)?))
        }
        _ => None,
    }
}

/// Writes `frame` to `out` with its performative padded to all fields (unchanged when it
/// already has them, or is not a performative this knows).
pub(crate) fn pad_frame(frame: &[u8], out: &mut BytesMut) {
    match padded(frame) {
        Some(padded) => out.extend_from_slice(&padded),
        None => out.extend_from_slice(frame),
    }
}

fn padded(frame: &[u8]) -> Option<Vec<u8>> {
    let doff = usize::from(*frame.get(4)?);
    let frame_type = *frame.get(5)?;
    let body_start = doff.checked_mul(4)?;
    let header = frame.get(4..body_start)?;
    let body = frame.get(body_start..)?;
    let (0x00, 0x53, descriptor) = (*body.first()?, *body.get(1)?, *body.get(2)?) else {
        return None;
    };
    let full = full_field_count(frame_type, descriptor)?;
    let list = body.get(3..)?;
    let (count, elements, list_len) = parse_list(list)?;
    if count >= full && *list.first()? != LIST0 {
        return None;
    }
    let payload = list.get(list_len..)?;
    let missing = full.saturating_sub(count);
    let elements_len = elements.len() + missing;
    let mut new_list = Vec::with_capacity(elements_len + 9);
    match (
        u8::try_from(elements_len + 1),
        u8::try_from(full.max(count)),
    ) {
        (Ok(size), Ok(count8)) => {
            new_list.extend_from_slice(&[LIST8, size, count8]);
        }
        _ => {
            let size = u32::try_from(elements_len + 4).ok()?;
            let count32 = u32::try_from(full.max(count)).ok()?;
            new_list.push(LIST32);
            new_list.extend_from_slice(&size.to_be_bytes());
            new_list.extend_from_slice(&count32.to_be_bytes());
        }
    }
    new_list.extend_from_slice(elements);
    new_list.resize(new_list.len() + missing, NULL);
    let size = u32::try_from(4 + header.len() + 3 + new_list.len() + payload.len()).ok()?;
    let mut out = Vec::with_capacity(size as usize);
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(header);
    out.extend_from_slice(&[0x00, 0x53, descriptor]);
    out.extend_from_slice(&new_list);
    out.extend_from_slice(payload);
    Some(out)
}

/// Moves every complete protocol header and frame from `staged` to `out`, padded; a
/// `close` is replaced by a framing-error close when `violation` holds a reason, and frames
/// on links or sessions we already ended are dropped ([`EndedEndpoints`]).
fn restage(
    staged: &mut BytesMut,
    out: &mut BytesMut,
    violation: &FramingViolation,
    ended: &mut EndedEndpoints,
) {
    loop {
        if staged.starts_with(b"AMQP") {
            if staged.len() < 8 {
                return;
            }
            out.extend_from_slice(&staged.split_to(8));
            continue;
        }
        let Some(size) = staged
            .get(..4)
            .and_then(|s| s.try_into().ok())
            .map(|s: [u8; 4]| u32::from_be_bytes(s) as usize)
        else {
            return;
        };
        if size < 8 {
            // Not a frame: nothing to understand, pass the rest on as it is.
            out.extend_from_slice(&staged.split_to(staged.len()));
            return;
        }
        if staged.len() < size {
            return;
        }
        let frame = staged.split_to(size);
        if !ended.admit(&frame) {
            continue;
        }
        if is_close(&frame)
            && let Some(close) = violation.reason().and_then(|r| framing_error_close(&r))
        {
            pad_frame(&close, out);
            continue;
        }
        pad_frame(&frame, out);
    }
}

/// The `close` we send when the client's frames were malformed (see
/// [`super::late_frames`]): `amqp:connection:framing-error` with the reason.
fn framing_error_close(reason: &str) -> Option<Vec<u8>> {
    let close = fe2o3_amqp::types::performatives::Close {
        error: Some(super::conditions::error(
            super::conditions::FRAMING_ERROR,
            reason.to_owned(),
        )),
    };
    let body = serde_amqp::to_vec(&close).ok()?;
    let size = u32::try_from(8 + body.len()).ok()?;
    let mut frame = size.to_be_bytes().to_vec();
    frame.extend_from_slice(&[2, AMQP_FRAME, 0, 0]);
    frame.extend_from_slice(&body);
    Some(frame)
}

fn is_close(frame: &[u8]) -> bool {
    let doff = frame.get(4).map_or(0, |d| usize::from(*d) * 4);
    frame.get(5) == Some(&AMQP_FRAME) && frame.get(doff..doff + 3) == Some(&[0x00, 0x53, 0x18][..])
}

/// The engine's stream, with performatives padded on the way out.
pub(crate) struct FullFields<S> {
    inner: S,
    /// A malformed client frame ended the connection: its `close` says so.
    violation: Arc<FramingViolation>,
    /// Written by the engine, not yet a complete frame.
    staged: BytesMut,
    /// Padded, not yet accepted by the socket.
    out: BytesMut,
    /// Our ended links and sessions, whose late frames are not sent.
    ended: EndedEndpoints,
}

impl<S> FullFields<S> {
    pub(crate) fn new(inner: S, violation: Arc<FramingViolation>) -> Self {
        FullFields {
            inner,
            violation,
            staged: BytesMut::new(),
            out: BytesMut::new(),
            ended: EndedEndpoints::default(),
        }
    }
}

impl<S> std::fmt::Debug for FullFields<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FullFields")
            .field("staged", &self.staged.len())
            .field("out", &self.out.len())
            .finish_non_exhaustive()
    }
}

impl<S: AsyncWrite + Unpin> FullFields<S> {
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out.advance(n.min(self.out.len()));
        }
        Poll::Ready(Ok(()))
    }
}

forward_async_read!(FullFields, inner);

impl<S: AsyncWrite + Unpin> AsyncWrite for FullFields<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.out.len() >= HIGH_WATER {
            ready!(this.poll_drain(cx))?;
        }
        this.staged.put_slice(buf);
        restage(
            &mut this.staged,
            &mut this.out,
            &this.violation,
            &mut this.ended,
        );
        // Start sending now; what the socket does not take yet goes on the next call.
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(frame_type: u8, body: &[u8]) -> Vec<u8> {
        let mut f = ((8 + body.len()) as u32).to_be_bytes().to_vec();
        f.extend_from_slice(&[2, frame_type, 0, 0]);
        f.extend_from_slice(body);
        f
    }

    fn pad(bytes: &[u8]) -> Vec<u8> {
        let mut staged = BytesMut::from(bytes);
        let mut out = BytesMut::new();
        restage(
            &mut staged,
            &mut out,
            &FramingViolation::default(),
            &mut EndedEndpoints::default(),
        );
        assert!(staged.is_empty());
        out.to_vec()
    }

    #[test]
    fn an_empty_close_gets_its_one_field() {
        let close = frame(0, &[0x00, 0x53, 0x18, LIST0]);
        assert_eq!(
            pad(&close),
            frame(0, &[0x00, 0x53, 0x18, LIST8, 2, 1, NULL])
        );
    }

    #[test]
    fn a_transfer_is_padded_before_its_payload() {
        // transfer: handle 0 (uint0), delivery-id 1 (smalluint), then the payload.
        let mut body = vec![0x00, 0x53, 0x14, LIST8, 4, 2, 0x43, 0x52, 1];
        body.extend_from_slice(b"PAYLOAD");
        let padded = pad(&frame(0, &body));
        let mut expected = vec![0x00, 0x53, 0x14, LIST8, 4 + 9, 11, 0x43, 0x52, 1];
        expected.extend_from_slice(&[NULL; 9]);
        expected.extend_from_slice(b"PAYLOAD");
        assert_eq!(padded, frame(0, &expected));
        assert!(padded.ends_with(b"PAYLOAD"));
    }

    #[test]
    fn headers_heartbeats_full_and_unknown_frames_pass_unchanged() {
        let header = b"AMQP\x00\x01\x00\x00".to_vec();
        let heartbeat = vec![0, 0, 0, 8, 2, 0, 0, 0];
        let full_end = frame(0, &[0x00, 0x53, 0x17, LIST8, 2, 1, NULL]);
        let unknown = frame(0, &[0x00, 0x53, 0x77, LIST0]);
        let all = [header, heartbeat, unknown, full_end].concat();
        assert_eq!(pad(&all), all);
    }

    #[test]
    fn a_long_list_becomes_list32() {
        // attach with a 250-byte name (str8), 1 field of 14.
        let mut elements = vec![0xa1, 250];
        elements.extend_from_slice(&[b'n'; 250]);
        let mut body = vec![0x00, 0x53, 0x12, LIST8, (elements.len() + 1) as u8, 1];
        body.extend_from_slice(&elements);
        let padded = pad(&frame(0, &body));
        let list = &padded[8 + 3..];
        assert_eq!(list[0], LIST32);
        let (count, els, _) = parse_list(list).unwrap();
        assert_eq!(count, 14);
        assert_eq!(els.len(), elements.len() + 13);
    }

    #[test]
    fn a_close_after_a_framing_violation_carries_the_reason() {
        let violation = FramingViolation::default();
        violation.record("frame size 4 is outside 8..=65536 (max-frame-size)".into());
        let mut staged = BytesMut::from(&frame(0, &[0x00, 0x53, 0x18, LIST0])[..]);
        let mut out = BytesMut::new();
        restage(
            &mut staged,
            &mut out,
            &violation,
            &mut EndedEndpoints::default(),
        );
        let body = &out[8..];
        let close: fe2o3_amqp::types::performatives::Close = serde_amqp::from_slice(body).unwrap();
        let error = close.error.unwrap();
        assert_eq!(
            crate::amqp::conditions::symbol_of(&error.condition),
            "amqp:connection:framing-error"
        );
        assert!(error.description.unwrap().contains("frame size 4"));
    }

    #[test]
    fn partial_frames_wait_for_the_rest() {
        let close = frame(0, &[0x00, 0x53, 0x18, LIST0]);
        let mut staged = BytesMut::from(&close[..5]);
        let mut out = BytesMut::new();
        restage(
            &mut staged,
            &mut out,
            &FramingViolation::default(),
            &mut EndedEndpoints::default(),
        );
        assert!(out.is_empty());
        staged.extend_from_slice(&close[5..]);
        restage(
            &mut staged,
            &mut out,
            &FramingViolation::default(),
            &mut EndedEndpoints::default(),
        );
        assert_eq!(
            out.len(),
            close.len() + 3,
            "list0 became list8 with one null"
        );
    }
}
