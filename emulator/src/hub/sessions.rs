//! What a persistent MQTT session (CleanSession 0) of a device or module keeps between its
//! connections: every topic filter it was granted. IoT Hub keeps them, and the official SDKs
//! rely on it — the Python (`azure-iot-device` 2.14) and Node (`azure-iot-device-mqtt` 1.16)
//! device clients connect with CleanSession 0 and, seeing session-present, do not subscribe
//! again after a reconnect, so a hub that kept only the C2D subscription would silently drop
//! their twin responses and desired-property patches (conformance `hub_drop_twin`). The C2D
//! subscription also has its own flag (`persistent_c2d`, which governs delivery); this map keeps
//! the whole filter list. Bounded: at most `MAX_SUBSCRIPTIONS` filters per identity, and an
//! identity's entry goes with the identity.

use super::Hub;

impl Hub {
    /// Remembers the filters (with their granted QoS, 0 or 1) a persistent session of
    /// `connection_key` (`device` or `device/module`) holds now; none forgets the session.
    pub(crate) fn remember_session_filters(
        &self,
        connection_key: &str,
        filters: Vec<(String, u8)>,
    ) {
        if filters.is_empty() {
            self.session_filters.remove(connection_key);
        } else {
            self.session_filters
                .insert(connection_key.to_owned(), filters);
        }
    }

    /// The filters the persistent session of `connection_key` held when it last changed them.
    pub(crate) fn session_filters(&self, connection_key: &str) -> Vec<(String, u8)> {
        self.session_filters
            .get(connection_key)
            .map(|filters| filters.clone())
            .unwrap_or_default()
    }

    /// Forgets a session: a clean-session connect, or the identity deleted.
    pub(crate) fn forget_session(&self, connection_key: &str) {
        self.session_filters.remove(connection_key);
    }
}

#[cfg(test)]
mod tests {
    use crate::hub::Hub;

    #[test]
    fn filters_are_kept_per_identity_until_forgotten_or_emptied() {
        let hub = Hub::new("hub.example", Vec::new(), 1);
        hub.remember_session_filters("d1", vec![("$iothub/twin/res/#".into(), 0)]);
        hub.remember_session_filters("d1/m1", vec![("$iothub/methods/POST/#".into(), 1)]);
        assert_eq!(
            hub.session_filters("d1"),
            [("$iothub/twin/res/#".to_owned(), 0)]
        );
        hub.remember_session_filters("d1", Vec::new());
        assert!(hub.session_filters("d1").is_empty(), "none held: forgotten");
        hub.forget_session("d1/m1");
        assert!(hub.session_filters("d1/m1").is_empty());
    }
}
