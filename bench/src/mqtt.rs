//! MQTT 3.1.1 framing for the load generator, written from the OASIS specification (sections
//! 2.2 fixed header, 3.x packets) and nothing else: only the packets a device sends (CONNECT,
//! PUBLISH at QoS 0/1, PUBACK, SUBSCRIBE, PINGREQ, DISCONNECT) are encoded, and only the ones a
//! server sends back are decoded. Any other packet type is surfaced as [`Packet::Other`] so a
//! mode can decide whether it matters.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// A packet the server sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// CONNACK: `code` 0 is accepted, 1–5 are the refusals of MQTT 3.1.1 §3.2.2.3.
    ConnAck {
        session_present: bool,
        code: u8,
    },
    /// PUBLISH from the server (responses on `$dps/registrations/res/…`, C2D…).
    Publish {
        qos: u8,
        packet_id: Option<u16>,
        topic: String,
        payload: Bytes,
    },
    PubAck(u16),
    SubAck {
        packet_id: u16,
        codes: Vec<u8>,
    },
    PingResp,
    /// Any other packet type (high nibble of the first byte); its body is skipped.
    Other(u8),
}

/// Why the bytes from the server are not an MQTT packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The remaining length used more than 4 bytes (§2.2.3).
    LengthTooLong,
    /// A packet whose body is shorter than its fields, or a topic that is not UTF-8.
    Malformed(&'static str),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::LengthTooLong => write!(f, "remaining length longer than 4 bytes"),
            FrameError::Malformed(what) => write!(f, "malformed packet: {what}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// The fields of a CONNECT this generator sends.
pub struct Connect<'a> {
    pub client_id: &'a str,
    pub username: Option<&'a str>,
    pub password: Option<&'a str>,
    pub keep_alive_secs: u16,
    pub clean_session: bool,
}

fn put_length(out: &mut BytesMut, mut len: usize) {
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.put_u8(byte);
        if len == 0 {
            break;
        }
    }
}

fn put_str(out: &mut BytesMut, s: &str) {
    out.put_u16(s.len() as u16);
    out.put_slice(s.as_bytes());
}

/// Appends a CONNECT (protocol level 4) to `out`.
pub fn connect(out: &mut BytesMut, c: &Connect<'_>) {
    let mut flags = 0u8;
    if c.clean_session {
        flags |= 0x02;
    }
    let mut len = 10 + 2 + c.client_id.len();
    if let Some(user) = c.username {
        flags |= 0x80;
        len += 2 + user.len();
    }
    if let Some(pass) = c.password {
        flags |= 0x40;
        len += 2 + pass.len();
    }
    out.put_u8(0x10);
    put_length(out, len);
    put_str(out, "MQTT");
    out.put_u8(4);
    out.put_u8(flags);
    out.put_u16(c.keep_alive_secs);
    put_str(out, c.client_id);
    if let Some(user) = c.username {
        put_str(out, user);
    }
    if let Some(pass) = c.password {
        put_str(out, pass);
    }
}

/// Appends a PUBLISH: QoS 1 with `packet_id`, QoS 0 without.
pub fn publish(out: &mut BytesMut, topic: &str, packet_id: Option<u16>, payload: &[u8]) {
    let id_len = if packet_id.is_some() { 2 } else { 0 };
    out.put_u8(if packet_id.is_some() { 0x32 } else { 0x30 });
    put_length(out, 2 + topic.len() + id_len + payload.len());
    put_str(out, topic);
    if let Some(id) = packet_id {
        out.put_u16(id);
    }
    out.put_slice(payload);
}

/// Appends a PUBACK for a QoS 1 PUBLISH the server sent.
pub fn puback(out: &mut BytesMut, packet_id: u16) {
    out.put_slice(&[0x40, 2]);
    out.put_u16(packet_id);
}

/// Appends a SUBSCRIBE to one filter.
pub fn subscribe(out: &mut BytesMut, packet_id: u16, filter: &str, qos: u8) {
    out.put_u8(0x82);
    put_length(out, 2 + 2 + filter.len() + 1);
    out.put_u16(packet_id);
    put_str(out, filter);
    out.put_u8(qos);
}

/// Appends a DISCONNECT.
pub fn disconnect(out: &mut BytesMut) {
    out.put_slice(&[0xE0, 0]);
}

/// Reads the remaining length at the start of `buf`: `Ok(None)` while more bytes are needed,
/// else the length and how many bytes it took.
fn remaining_length(buf: &[u8]) -> Result<Option<(usize, usize)>, FrameError> {
    let mut len = 0usize;
    for (i, byte) in buf.iter().take(4).enumerate() {
        len |= usize::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((len, i + 1)));
        }
    }
    if buf.len() >= 4 {
        Err(FrameError::LengthTooLong)
    } else {
        Ok(None)
    }
}

/// Takes one whole packet off the front of `buf`; `Ok(None)` when it holds only part of one.
pub fn decode(buf: &mut BytesMut) -> Result<Option<Packet>, FrameError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let Some((len, len_bytes)) = remaining_length(buf.get(1..).unwrap_or_default())? else {
        return Ok(None);
    };
    let header = 1 + len_bytes;
    if buf.len() < header + len {
        return Ok(None);
    }
    buf.advance(header);
    let mut body = buf.split_to(len).freeze();
    let packet = match first >> 4 {
        2 => {
            if body.len() < 2 {
                return Err(FrameError::Malformed("CONNACK shorter than 2 bytes"));
            }
            Packet::ConnAck {
                session_present: body.get_u8() & 1 == 1,
                code: body.get_u8(),
            }
        }
        3 => {
            let qos = (first >> 1) & 3;
            if body.len() < 2 {
                return Err(FrameError::Malformed("PUBLISH without a topic length"));
            }
            let topic_len = usize::from(body.get_u16());
            if body.len() < topic_len {
                return Err(FrameError::Malformed(
                    "PUBLISH topic longer than the packet",
                ));
            }
            let topic = String::from_utf8(body.split_to(topic_len).to_vec())
                .map_err(|_| FrameError::Malformed("PUBLISH topic is not UTF-8"))?;
            let packet_id = if qos > 0 {
                if body.len() < 2 {
                    return Err(FrameError::Malformed("PUBLISH without its packet id"));
                }
                Some(body.get_u16())
            } else {
                None
            };
            Packet::Publish {
                qos,
                packet_id,
                topic,
                payload: body,
            }
        }
        4 => {
            if body.len() < 2 {
                return Err(FrameError::Malformed("PUBACK shorter than 2 bytes"));
            }
            Packet::PubAck(body.get_u16())
        }
        9 => {
            if body.len() < 2 {
                return Err(FrameError::Malformed("SUBACK shorter than 2 bytes"));
            }
            let packet_id = body.get_u16();
            Packet::SubAck {
                packet_id,
                codes: body.to_vec(),
            }
        }
        13 => Packet::PingResp,
        other => Packet::Other(other),
    };
    Ok(Some(packet))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_matches_the_specification_example_layout() {
        let mut out = BytesMut::new();
        connect(
            &mut out,
            &Connect {
                client_id: "dev",
                username: Some("u"),
                password: Some("pw"),
                keep_alive_secs: 60,
                clean_session: true,
            },
        );
        let expected: &[u8] = &[
            0x10, 22, 0, 4, b'M', b'Q', b'T', b'T', 4, 0xC2, 0, 60, 0, 3, b'd', b'e', b'v', 0, 1,
            b'u', 0, 2, b'p', b'w',
        ];
        assert_eq!(&out[..], expected);
    }

    #[test]
    fn qos1_publish_carries_its_packet_id_and_qos0_does_not() {
        let mut out = BytesMut::new();
        publish(&mut out, "t/x", Some(7), b"hi");
        assert_eq!(
            &out[..],
            &[0x32, 9, 0, 3, b't', b'/', b'x', 0, 7, b'h', b'i']
        );
        out.clear();
        publish(&mut out, "t", None, b"");
        assert_eq!(&out[..], &[0x30, 3, 0, 1, b't']);
    }

    #[test]
    fn long_bodies_use_multi_byte_remaining_lengths_and_round_trip() {
        let payload = vec![0xAB; 200_000];
        let mut out = BytesMut::new();
        publish(&mut out, "a/b", Some(65_535), &payload);
        // 200,000 + topic 5 + id 2 needs three length bytes.
        assert_eq!(&out[1..4], &[0xC7, 0x9A, 0x0C]);
        // The server's PUBLISH has the same shape: decode our own bytes back.
        let packet = decode(&mut out).unwrap().unwrap();
        assert_eq!(
            packet,
            Packet::Publish {
                qos: 1,
                packet_id: Some(65_535),
                topic: "a/b".into(),
                payload: Bytes::from(payload),
            }
        );
        assert!(out.is_empty());
    }

    #[test]
    fn decode_waits_for_a_whole_packet_and_leaves_the_next_one() {
        let mut buf = BytesMut::from(&[0x40, 2, 0][..]);
        assert_eq!(decode(&mut buf), Ok(None));
        buf.extend_from_slice(&[9, 0x20, 2, 1, 0, 0x90]);
        assert_eq!(decode(&mut buf), Ok(Some(Packet::PubAck(9))));
        assert_eq!(
            decode(&mut buf),
            Ok(Some(Packet::ConnAck {
                session_present: true,
                code: 0
            }))
        );
        assert_eq!(decode(&mut buf), Ok(None));
        buf.extend_from_slice(&[3, 0, 5, 0x80]);
        assert_eq!(
            decode(&mut buf),
            Ok(Some(Packet::SubAck {
                packet_id: 5,
                codes: vec![0x80]
            }))
        );
    }

    #[test]
    fn bad_server_bytes_are_errors_not_panics() {
        let mut too_long = BytesMut::from(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01][..]);
        assert_eq!(decode(&mut too_long), Err(FrameError::LengthTooLong));
        let mut short_connack = BytesMut::from(&[0x20, 1, 0][..]);
        assert!(matches!(
            decode(&mut short_connack),
            Err(FrameError::Malformed(_))
        ));
        let mut topic_overrun = BytesMut::from(&[0x30, 3, 0, 9, b'x'][..]);
        assert!(matches!(
            decode(&mut topic_overrun),
            Err(FrameError::Malformed(_))
        ));
        let mut ping = BytesMut::from(&[0xD0, 0, 0xE0, 0][..]);
        assert_eq!(decode(&mut ping), Ok(Some(Packet::PingResp)));
        assert_eq!(decode(&mut ping), Ok(Some(Packet::Other(14))));
    }
}
