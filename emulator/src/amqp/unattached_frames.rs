//! Frames on a link or session that its sender already ended are dropped, in both
//! directions.
//!
//! Out: `fe2o3-amqp`'s session engine answers a client's `detach` (and `end`) as soon as it
//! reads it, while transfers the link task queued a moment earlier are still waiting in the
//! engine's outgoing queue; they then go out *after* the reply. The AMQP 1.0 spec forbids
//! that (§2.6.3: a detached handle is unattached; §2.5.5: nothing follows `end` on a
//! channel), and rhea — the transport of Node's `@azure/event-hubs`, `azure-iothub` and the
//! device SDK's AMQP transport — takes it badly: a `transfer` for a handle it removed throws
//! "Invalid handle", a frame on a channel whose session it removed throws "received on
//! invalid channel", and either one ends the whole socket.
//!
//! In: clients do the same. pyamqp (Python `azure-eventhub`) sends `detach` for its remaining
//! links *after* `end`, and rhea-promise closes links and sessions concurrently, so a `flow`
//! or `disposition` can follow its own `detach`/`end`. The real hub ignores such frames;
//! `fe2o3-amqp` ends the session with `amqp:session:unattached-handle` (or, for an ended
//! channel, the whole connection with `amqp:not-found`), and the client then waits out its
//! operation time-outs (conformance finding E-5; `eventhub_consumer` / `eventhub_redirect`
//! hung this way in about one full run in four while other devices were sending).
//!
//! So one [`EndedEndpoints`] per direction reads every frame's header: after an `end` on a
//! channel nothing but a new `begin` passes on it; after a `detach` of a handle, its
//! `transfer`, `flow` and a second `detach` are dropped until that handle is attached again.
//! Connection frames (`open`, `close`, on whatever channel), heartbeats and anything this
//! cannot read pass unchanged.

use std::collections::{HashMap, HashSet};

const AMQP_FRAME: u8 = 0x00;
const OPEN: u8 = 0x10;
const CLOSE: u8 = 0x18;
const BEGIN: u8 = 0x11;
const ATTACH: u8 = 0x12;
const FLOW: u8 = 0x13;
const TRANSFER: u8 = 0x14;
const DETACH: u8 = 0x16;
const END: u8 = 0x17;

/// Whose frames an [`EndedEndpoints`] judges (for its log line).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Sender {
    /// The frames the engine writes.
    #[default]
    Emulator,
    /// The frames the client sends.
    Client,
}

/// Which channels and link handles one side has ended, from the frames it sent.
#[derive(Debug, Default)]
pub(crate) struct EndedEndpoints {
    sender: Sender,
    /// Channels we sent `end` on (and no `begin` since).
    ended_channels: HashSet<u16>,
    /// Per channel, the handles we sent `detach` for (and no `attach` since).
    detached: HashMap<u16, HashSet<u32>>,
    /// Frames dropped so far (for the log line and the tests).
    dropped: u64,
}

impl EndedEndpoints {
    pub(crate) fn of(sender: Sender) -> Self {
        EndedEndpoints {
            sender,
            ..Default::default()
        }
    }

    /// Whether `frame` (one complete frame from this side) may go on;
    /// records the `begin`/`end`/`attach`/`detach` it carries.
    pub(crate) fn admit(&mut self, frame: &[u8]) -> bool {
        let Some(header) = SessionFrame::read(frame) else {
            return true;
        };
        let channel = header.channel;
        // Connection-level: never a session's, whatever channel it goes on (rhea and the
        // engine send `close` on channel 0 right after ending session 0).
        if matches!(header.descriptor, OPEN | CLOSE) {
            return true;
        }
        if self.ended_channels.contains(&channel) && header.descriptor != BEGIN {
            return self.drop_frame(&header, None);
        }
        match header.descriptor {
            BEGIN => {
                self.ended_channels.remove(&channel);
                self.detached.remove(&channel);
            }
            END => {
                self.ended_channels.insert(channel);
                self.detached.remove(&channel);
            }
            ATTACH => {
                if let Some(handle) = header.handle() {
                    self.detached
                        .get_mut(&channel)
                        .map(|handles| handles.remove(&handle));
                }
            }
            DETACH | TRANSFER | FLOW => {
                let Some(handle) = header.handle() else {
                    return true;
                };
                let already = self
                    .detached
                    .get(&channel)
                    .is_some_and(|handles| handles.contains(&handle));
                if already {
                    return self.drop_frame(&header, Some(handle));
                }
                if header.descriptor == DETACH {
                    self.detached.entry(channel).or_default().insert(handle);
                }
            }
            _ => {}
        }
        true
    }

    fn drop_frame(&mut self, header: &SessionFrame<'_>, handle: Option<u32>) -> bool {
        self.dropped = self.dropped.saturating_add(1);
        let channel = header.channel;
        let descriptor = header.descriptor;
        let dropped = self.dropped;
        match self.sender {
            Sender::Emulator => tracing::debug!(
                channel,
                ?handle,
                descriptor,
                dropped,
                "AMQP frame on a link or session we already ended; not sent"
            ),
            Sender::Client => tracing::debug!(
                channel,
                ?handle,
                descriptor,
                dropped,
                "AMQP frame on a link or session the client already ended; dropped"
            ),
        }
        false
    }

    #[cfg(test)]
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// An AMQP frame's channel, performative and the encoded fields of its list.
struct SessionFrame<'a> {
    channel: u16,
    descriptor: u8,
    fields: &'a [u8],
}

impl<'a> SessionFrame<'a> {
    fn read(frame: &'a [u8]) -> Option<Self> {
        let doff = usize::from(*frame.get(4)?).checked_mul(4)?;
        if *frame.get(5)? != AMQP_FRAME {
            return None;
        }
        let channel = u16::from_be_bytes([*frame.get(6)?, *frame.get(7)?]);
        let body = frame.get(doff..)?;
        let (0x00, 0x53, descriptor) = (*body.first()?, *body.get(1)?, *body.get(2)?) else {
            return None;
        };
        let fields = list_elements(body.get(3..)?)?;
        Some(SessionFrame {
            channel,
            descriptor,
            fields,
        })
    }

    /// The link handle the performative names: field 0 of `detach` and `transfer`, field 1
    /// of `attach` (after the name), field 4 of `flow` (absent for a session-only flow).
    fn handle(&self) -> Option<u32> {
        let position = match self.descriptor {
            DETACH | TRANSFER => 0,
            ATTACH => 1,
            FLOW => 4,
            _ => return None,
        };
        let mut rest = self.fields;
        for _ in 0..position {
            rest = skip_value(rest)?;
        }
        read_uint(rest)
    }
}

/// The encoded elements of a `list0`/`list8`/`list32` (possibly followed by a payload).
fn list_elements(list: &[u8]) -> Option<&[u8]> {
    match *list.first()? {
        0x45 => Some(&[]),
        0xc0 => {
            let size = usize::from(*list.get(1)?);
            list.get(3..2usize.checked_add(size)?)
        }
        0xd0 => {
            let size = u32::from_be_bytes(list.get(1..5)?.try_into().ok()?) as usize;
            list.get(9..5usize.checked_add(size)?)
        }
        _ => None,
    }
}

/// The bytes after the first value of `bytes`, for the types the fields before a handle
/// have (null, the uint encodings, strings and symbols).
fn skip_value(bytes: &[u8]) -> Option<&[u8]> {
    let length = match *bytes.first()? {
        0x40 | 0x43 => 1,
        0x52 => 2,
        0x70 => 5,
        0xa1 | 0xa3 => 2usize.checked_add(usize::from(*bytes.get(1)?))?,
        0xb1 | 0xb3 => {
            let n = u32::from_be_bytes(bytes.get(1..5)?.try_into().ok()?) as usize;
            5usize.checked_add(n)?
        }
        _ => return None,
    };
    bytes.get(length..)
}

/// A `uint` in any of its encodings; `None` for null or anything else.
fn read_uint(bytes: &[u8]) -> Option<u32> {
    match *bytes.first()? {
        0x43 => Some(0),
        0x52 => Some(u32::from(*bytes.get(1)?)),
        0x70 => Some(u32::from_be_bytes(bytes.get(1..5)?.try_into().ok()?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fe2o3_amqp::types::definitions::Role;
    use fe2o3_amqp::types::performatives::{Attach, Begin, Close, Detach, End, Flow, Transfer};
    use serde::Serialize;

    fn frame<T: Serialize>(channel: u16, performative: &T) -> Vec<u8> {
        let body = serde_amqp::to_vec(performative).expect("encodes");
        let size = u32::try_from(8 + body.len()).expect("small");
        let mut out = size.to_be_bytes().to_vec();
        out.extend_from_slice(&[2, AMQP_FRAME]);
        out.extend_from_slice(&channel.to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    fn transfer(handle: u32) -> Transfer {
        Transfer {
            handle: handle.into(),
            delivery_id: Some(7),
            delivery_tag: Some(vec![1, 2, 3, 4].into()),
            message_format: Some(0),
            settled: Some(false),
            more: false,
            rcv_settle_mode: None,
            state: None,
            resume: false,
            aborted: false,
            batchable: true,
        }
    }

    fn flow(handle: Option<u32>) -> Flow {
        Flow {
            next_incoming_id: Some(300),
            incoming_window: 5000,
            next_outgoing_id: 70_000,
            outgoing_window: 5000,
            handle: handle.map(Into::into),
            delivery_count: Some(3),
            link_credit: Some(50),
            available: None,
            drain: false,
            echo: false,
            properties: None,
        }
    }

    fn attach(handle: u32) -> Attach {
        Attach {
            name: "localhost/ConsumerGroups/$Default/Partitions/1-a-long-link-name".into(),
            handle: handle.into(),
            role: Role::Sender,
            snd_settle_mode: Default::default(),
            rcv_settle_mode: Default::default(),
            source: None,
            target: None,
            unsettled: None,
            incomplete_unsettled: false,
            initial_delivery_count: Some(0),
            max_message_size: None,
            offered_capabilities: None,
            desired_capabilities: None,
            properties: None,
        }
    }

    fn detach(handle: u32) -> Detach {
        Detach {
            handle: handle.into(),
            closed: true,
            error: None,
        }
    }

    fn begin() -> Begin {
        Begin {
            remote_channel: Some(4),
            next_outgoing_id: 0,
            incoming_window: 5000,
            outgoing_window: 5000,
            handle_max: 255.into(),
            offered_capabilities: None,
            desired_capabilities: None,
            properties: None,
        }
    }

    #[test]
    fn handles_are_read_from_each_performative_in_every_uint_encoding() {
        for handle in [0, 7, 255, 256, 70_000] {
            let read = |bytes: &[u8]| SessionFrame::read(bytes).and_then(|f| f.handle());
            assert_eq!(read(&frame(3, &transfer(handle))), Some(handle));
            assert_eq!(read(&frame(3, &detach(handle))), Some(handle));
            assert_eq!(read(&frame(3, &attach(handle))), Some(handle));
            assert_eq!(read(&frame(3, &flow(Some(handle)))), Some(handle));
        }
        let session_flow = frame(3, &flow(None));
        assert_eq!(
            SessionFrame::read(&session_flow).and_then(|f| f.handle()),
            None
        );
    }

    #[test]
    fn after_our_detach_the_links_transfers_and_flows_are_dropped_until_it_attaches_again() {
        let mut ended = EndedEndpoints::default();
        assert!(ended.admit(&frame(1, &attach(2))));
        assert!(ended.admit(&frame(1, &transfer(2))));
        assert!(ended.admit(&frame(1, &detach(2))));
        assert!(
            !ended.admit(&frame(1, &transfer(2))),
            "transfer after detach"
        );
        assert!(
            !ended.admit(&frame(1, &flow(Some(2)))),
            "link flow after detach"
        );
        assert!(!ended.admit(&frame(1, &detach(2))), "second detach");
        // Other links, other channels and session-level flows are untouched.
        assert!(ended.admit(&frame(1, &transfer(3))));
        assert!(ended.admit(&frame(2, &transfer(2))));
        assert!(ended.admit(&frame(1, &flow(None))));
        // The handle is reused by a new attach.
        assert!(ended.admit(&frame(1, &attach(2))));
        assert!(ended.admit(&frame(1, &transfer(2))));
        assert_eq!(ended.dropped(), 3);
    }

    #[test]
    fn after_our_end_nothing_but_a_new_begin_goes_out_on_the_channel() {
        let mut ended = EndedEndpoints::default();
        assert!(ended.admit(&frame(4, &begin())));
        assert!(ended.admit(&frame(4, &End { error: None })));
        assert!(!ended.admit(&frame(4, &transfer(0))));
        assert!(!ended.admit(&frame(4, &flow(None))));
        assert!(!ended.admit(&frame(4, &detach(0))));
        assert!(!ended.admit(&frame(4, &End { error: None })));
        assert!(
            ended.admit(&frame(4, &Close { error: None })),
            "the connection's close goes out on any channel"
        );
        assert!(
            ended.admit(&frame(5, &transfer(0))),
            "other channels flow on"
        );
        assert!(ended.admit(&frame(4, &begin())));
        assert!(ended.admit(&frame(4, &attach(0))));
        assert!(ended.admit(&frame(4, &transfer(0))));
        assert_eq!(ended.dropped(), 4);
    }

    #[test]
    fn what_it_cannot_read_passes() {
        let mut ended = EndedEndpoints::default();
        for bytes in [
            &b"AMQP\x00\x01\x00\x00"[..],
            &[0, 0, 0, 8, 2, 0, 0, 0][..],
            &[0, 0, 0, 9, 2, 1, 0, 0, 0x45][..],
            &[0, 0, 0, 12, 2, 0, 0, 1, 0x00, 0x53, 0x14, 0xff][..],
            &[][..],
        ] {
            assert!(ended.admit(bytes));
        }
        assert_eq!(ended.dropped(), 0);
    }
}
