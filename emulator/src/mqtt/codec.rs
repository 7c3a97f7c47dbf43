//! MQTT 3.1.1 packet framing, delegated to rumqttc's v4 codec and kept behind this module so
//! it can be swapped for an in-tree codec (mqtt-front.md §10).
//!
//! rumqttc is lenient where MQTT 3.1.1 says the server MUST close the connection, so every
//! frame is checked here too: the fixed-header flags of each packet type (§2.2.2, §3.8.1-1),
//! the CONNECT reserved flag and flag combinations (§3.1.2-3), the protocol level (§3.1.2-2,
//! answered with CONNACK 1 by the session), packet identifier 0 where one is required
//! (§2.3.1-1), U+0000 in topic names and filters and other strings (§1.5.3) and an
//! UNSUBSCRIBE without topics (§3.10.3-2).

use bytes::BytesMut;
pub use rumqttc::mqttbytes::v4::{
    ConnAck, Connect, ConnectReturnCode, Packet, PubAck, Publish, SubAck, Subscribe,
    SubscribeReasonCode, UnsubAck,
};
pub use rumqttc::mqttbytes::{Protocol, QoS};

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("packet of {0} bytes exceeds the maximum packet size")]
    TooLarge(usize),
    #[error("malformed packet: {0}")]
    Malformed(String),
    /// A CONNECT naming "MQTT" with a level other than 4: answered with CONNACK 1 (§3.1.2-2).
    #[error("unsupported MQTT protocol level {0}")]
    UnsupportedProtocolLevel(u8),
}

fn malformed(reason: &str) -> CodecError {
    CodecError::Malformed(reason.to_owned())
}

/// Takes one complete packet off the front of `buf`, or `None` when more bytes are needed.
pub fn decode(buf: &mut BytesMut, max_packet: usize) -> Result<Option<Packet>, CodecError> {
    // A bad first byte is refused at once rather than after waiting for the frame its length
    // bytes promise (junk such as "GET / HTTP/1.1" would otherwise hold the connection open).
    if let Some(&byte1) = buf.first() {
        check_first_byte(byte1)?;
    }
    let frame_length = match rumqttc::mqttbytes::check(buf.iter(), max_packet) {
        Ok(header) => header.frame_length(),
        Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => return Ok(None),
        Err(rumqttc::mqttbytes::Error::PayloadSizeLimitExceeded(n)) => {
            return Err(CodecError::TooLarge(n));
        }
        Err(e) => return Err(CodecError::Malformed(e.to_string())),
    };
    // A whole frame is buffered: check what rumqttc does not before letting it parse.
    check_frame(buf.get(..frame_length).unwrap_or_default())?;
    match Packet::read(buf, max_packet) {
        Ok(packet) => {
            check_packet(&packet)?;
            Ok(Some(packet))
        }
        Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
        Err(rumqttc::mqttbytes::Error::PayloadSizeLimitExceeded(n)) => Err(CodecError::TooLarge(n)),
        Err(e) => Err(CodecError::Malformed(e.to_string())),
    }
}

/// The packet type and its fixed-header flags (§2.2.1, §2.2.2): types 0 and 15 are
/// reserved; every type but PUBLISH has fixed flags (PUBREL, SUBSCRIBE and UNSUBSCRIBE
/// 0b0010); a PUBLISH may not ask for QoS 3 (§3.3.1-4).
fn check_first_byte(byte1: u8) -> Result<(), CodecError> {
    let (kind, flags) = (byte1 >> 4, byte1 & 0x0f);
    if kind == 0 || kind == 15 {
        return Err(CodecError::Malformed(format!(
            "reserved packet type {kind}"
        )));
    }
    let expected_flags = match kind {
        3 => None,
        6 | 8 | 10 => Some(0b0010),
        _ => Some(0),
    };
    if expected_flags.is_some_and(|expected| flags != expected) {
        return Err(CodecError::Malformed(format!(
            "packet type {kind} with reserved fixed-header flags {flags:#06b}"
        )));
    }
    if kind == 3 && (flags >> 1) & 0b11 == 0b11 {
        return Err(malformed("PUBLISH with QoS 3"));
    }
    Ok(())
}

/// The CONNECT variable header, read from the raw frame (the first byte is checked already).
fn check_frame(frame: &[u8]) -> Result<(), CodecError> {
    if frame.first() == Some(&0x10) {
        check_connect_header(frame)?;
    }
    Ok(())
}

/// The CONNECT variable header: protocol name and level, then the connect flags.
fn check_connect_header(frame: &[u8]) -> Result<(), CodecError> {
    // The remaining length is 1–4 bytes, each but the last with its top bit set.
    let length_bytes = frame
        .iter()
        .skip(1)
        .take(4)
        .position(|b| b & 0x80 == 0)
        .ok_or_else(|| malformed("bad remaining length"))?
        + 1;
    let header = frame
        .get(1 + length_bytes..)
        .ok_or_else(|| malformed("CONNECT without a variable header"))?;
    let name_len = match header {
        [hi, lo, ..] => usize::from(u16::from_be_bytes([*hi, *lo])),
        _ => return Err(malformed("CONNECT without a protocol name")),
    };
    let name = header
        .get(2..2 + name_len)
        .ok_or_else(|| malformed("CONNECT protocol name overruns the packet"))?;
    let (Some(&level), Some(&flags)) = (header.get(2 + name_len), header.get(3 + name_len)) else {
        return Err(malformed("CONNECT without protocol level and flags"));
    };
    if name != b"MQTT" {
        // §3.1.2-1: another protocol name (MQIsdp is MQTT 3.1) may simply be disconnected.
        return Err(malformed("CONNECT protocol name is not MQTT"));
    }
    if level != 4 {
        return Err(CodecError::UnsupportedProtocolLevel(level));
    }
    let will = flags & 0b0000_0100 != 0;
    let will_qos = (flags >> 3) & 0b11;
    let will_retain = flags & 0b0010_0000 != 0;
    let password = flags & 0b0100_0000 != 0;
    let username = flags & 0b1000_0000 != 0;
    if flags & 0b0000_0001 != 0 {
        return Err(malformed("CONNECT reserved flag is set"));
    }
    if will_qos == 3 || (!will && (will_qos != 0 || will_retain)) {
        return Err(malformed("CONNECT will flags are inconsistent"));
    }
    if password && !username {
        return Err(malformed(
            "CONNECT has a password flag without a user name flag",
        ));
    }
    Ok(())
}

/// Rules on the decoded packet: packet identifiers, strings and empty topic lists.
fn check_packet(packet: &Packet) -> Result<(), CodecError> {
    let no_nul = |what: &str, s: &str| {
        if s.contains('\0') {
            Err(CodecError::Malformed(format!("U+0000 in {what}")))
        } else {
            Ok(())
        }
    };
    let nonzero = |pkid: u16| {
        if pkid == 0 {
            Err(malformed("packet identifier 0"))
        } else {
            Ok(())
        }
    };
    match packet {
        Packet::Connect(connect) => {
            no_nul("the client id", &connect.client_id)?;
            if let Some(login) = &connect.login {
                no_nul("the user name", &login.username)?;
            }
            if let Some(will) = &connect.last_will {
                no_nul("the will topic", &will.topic)?;
            }
        }
        Packet::Publish(publish) => {
            no_nul("a topic name", &publish.topic)?;
            if publish.qos != QoS::AtMostOnce {
                nonzero(publish.pkid)?;
            }
        }
        Packet::Subscribe(subscribe) => {
            nonzero(subscribe.pkid)?;
            for filter in &subscribe.filters {
                no_nul("a topic filter", &filter.path)?;
            }
        }
        Packet::Unsubscribe(unsubscribe) => {
            nonzero(unsubscribe.pkid)?;
            if unsubscribe.topics.is_empty() {
                return Err(malformed("UNSUBSCRIBE without topic filters"));
            }
            for topic in &unsubscribe.topics {
                no_nul("a topic filter", topic)?;
            }
        }
        Packet::PubAck(ack) => nonzero(ack.pkid)?,
        _ => {}
    }
    Ok(())
}

/// Appends `packet` to `buf`.
pub fn encode(packet: &Packet, buf: &mut BytesMut) -> Result<(), CodecError> {
    packet
        .write(buf, usize::MAX)
        .map(|_| ())
        .map_err(|e| CodecError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn publish_round_trips_and_partial_input_waits(
            topic in "[a-z$/%.=&0-9]{1,80}",
            payload in proptest::collection::vec(any::<u8>(), 0..512),
            pkid in 1u16..,
            split in 0usize..600,
        ) {
            let mut publish = Publish::new(topic, QoS::AtLeastOnce, payload);
            publish.pkid = pkid;
            let packet = Packet::Publish(publish);
            let mut wire = BytesMut::new();
            encode(&packet, &mut wire).unwrap();
            let split = split.min(wire.len());
            let mut head = BytesMut::from(&wire[..split]);
            if split < wire.len() {
                prop_assert!(decode(&mut head, 1 << 20).unwrap().is_none());
            }
            let mut all = wire.clone();
            prop_assert_eq!(decode(&mut all, 1 << 20).unwrap(), Some(packet));
            prop_assert!(all.is_empty());
        }

        #[test]
        fn a_bad_first_byte_is_refused_without_waiting_for_its_frame(
            byte1 in prop_oneof![0x00u8..=0x0f, 0xf0u8..=0xff, Just(0x47u8), Just(0x36u8), Just(0x81u8)],
        ) {
            // A length promising 127 more bytes that never come.
            let mut buf = BytesMut::from(&[byte1, 0x7f][..]);
            prop_assert!(matches!(decode(&mut buf, 4096), Err(CodecError::Malformed(_))));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = decode(&mut buf, 4096) {}
        }
    }

    fn decoded(bytes: &[u8]) -> Result<Option<Packet>, CodecError> {
        decode(&mut BytesMut::from(bytes), 1 << 20)
    }

    /// `CONNECT` "MQTT" with the given level and flags, keep-alive 60, client id "c".
    fn connect_with(level: u8, flags: u8) -> Vec<u8> {
        let mut wire = vec![0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', level, flags, 0, 60];
        wire.extend_from_slice(&[0, 1, b'c']);
        wire
    }

    #[test]
    fn connect_header_rules() {
        assert!(matches!(
            decoded(&connect_with(4, 0x02)),
            Ok(Some(Packet::Connect(_)))
        ));
        for level in [0u8, 3, 5, 6] {
            assert!(matches!(
                decoded(&connect_with(level, 0x02)),
                Err(CodecError::UnsupportedProtocolLevel(l)) if l == level
            ));
        }
        // Reserved flag; will QoS 3; will QoS or retain without a will; password alone.
        for flags in [0x03, 0x1e, 0x0a, 0x22, 0x42] {
            assert!(
                matches!(
                    decoded(&connect_with(4, flags)),
                    Err(CodecError::Malformed(_))
                ),
                "{flags:#04x}"
            );
        }
        let mut mqisdp = vec![0x10, 15, 0, 6];
        mqisdp.extend_from_slice(b"MQIsdp");
        mqisdp.extend_from_slice(&[3, 0x02, 0, 60, 0, 1, b'c']);
        assert!(matches!(decoded(&mqisdp), Err(CodecError::Malformed(_))));
        // Truncated variable headers are malformed, not panics.
        for cut in [2usize, 4, 8, 9] {
            let mut wire = connect_with(4, 0x02)[..cut].to_vec();
            wire[1] = (cut - 2) as u8;
            assert!(decoded(&wire).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn fixed_header_flags_are_checked_per_type() {
        assert!(matches!(decoded(&[0xc0, 0x00]), Ok(Some(Packet::PingReq))));
        for first in [0xc1u8, 0xe8, 0x41, 0x80, 0x83, 0xa0, 0x11] {
            assert!(
                matches!(
                    decoded(&[first, 0x02, 0x00, 0x01]),
                    Err(CodecError::Malformed(_))
                ),
                "{first:#04x}"
            );
        }
    }

    #[test]
    fn packet_ids_nul_and_empty_unsubscribe() {
        // PUBLISH QoS 1 to "t" with packet id 0, then with id 1.
        assert!(decoded(&[0x32, 0x06, 0, 1, b't', 0, 0, b'x']).is_err());
        assert!(decoded(&[0x32, 0x06, 0, 1, b't', 0, 1, b'x']).is_ok());
        // QoS 0 carries no packet id at all.
        assert!(decoded(&[0x30, 0x04, 0, 1, b't', b'x']).is_ok());
        assert!(decoded(&[0x30, 0x05, 0, 2, b't', 0, b'x']).is_err());
        // SUBSCRIBE: id 0; NUL in the filter; a good one.
        assert!(decoded(&[0x82, 0x06, 0, 0, 0, 1, b't', 1]).is_err());
        assert!(decoded(&[0x82, 0x06, 0, 1, 0, 1, 0, 1]).is_err());
        assert!(decoded(&[0x82, 0x06, 0, 1, 0, 1, b't', 1]).is_ok());
        // UNSUBSCRIBE: no topic; id 0; a good one.
        assert!(decoded(&[0xa2, 0x02, 0, 1]).is_err());
        assert!(decoded(&[0xa2, 0x05, 0, 0, 0, 1, b't']).is_err());
        assert!(decoded(&[0xa2, 0x05, 0, 1, 0, 1, b't']).is_ok());
        // PUBACK for packet id 0.
        assert!(decoded(&[0x40, 0x02, 0, 0]).is_err());
    }

    #[test]
    fn oversize_packets_are_refused_before_buffering() {
        let packet = Packet::Publish(Publish::new("t", QoS::AtMostOnce, vec![0u8; 5000]));
        let mut wire = BytesMut::new();
        encode(&packet, &mut wire).unwrap();
        let mut head = BytesMut::from(&wire[..10]);
        assert!(matches!(
            decode(&mut head, 4096),
            Err(CodecError::TooLarge(_))
        ));
    }
}
