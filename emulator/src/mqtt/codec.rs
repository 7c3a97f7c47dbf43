//! MQTT 3.1.1 packet framing, delegated to rumqttc's v4 codec and kept behind this module so
//! it can be swapped for an in-tree codec (mqtt-front.md §10).

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
}

/// Takes one complete packet off the front of `buf`, or `None` when more bytes are needed.
pub fn decode(buf: &mut BytesMut, max_packet: usize) -> Result<Option<Packet>, CodecError> {
    match Packet::read(buf, max_packet) {
        Ok(packet) => Ok(Some(packet)),
        Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
        Err(rumqttc::mqttbytes::Error::PayloadSizeLimitExceeded(n)) => Err(CodecError::TooLarge(n)),
        Err(e) => Err(CodecError::Malformed(e.to_string())),
    }
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
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = decode(&mut buf, 4096) {}
        }
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
