//! How a client reaches DPS or the hub: MQTT straight over TLS, or MQTT inside a secure
//! WebSocket for networks that only let HTTPS out (spec/protocol.md §2.1, §5.1, §11.1).

/// The wire under the MQTT session; both carry exactly the same MQTT packets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Transport {
    /// MQTT 3.1.1 over TLS; port 8883 unless set.
    #[default]
    Mqtt,
    /// MQTT 3.1.1 over a secure WebSocket: `wss://{host}:{port}/$iothub/websocket` with
    /// subprotocol `mqtt`; port 443 unless set. The TLS and the optional client certificate
    /// are the same as for [`Transport::Mqtt`].
    MqttWs,
}

impl Transport {
    /// The port Azure serves this transport on: 8883 for MQTT, 443 for MQTT over WebSocket.
    pub fn default_port(self) -> u16 {
        match self {
            Transport::Mqtt => 8883,
            Transport::MqttWs => 443,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ports_are_azures() {
        assert_eq!(Transport::default(), Transport::Mqtt);
        assert_eq!(Transport::Mqtt.default_port(), 8883);
        assert_eq!(Transport::MqttWs.default_port(), 443);
    }
}
