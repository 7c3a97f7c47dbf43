//! SUBSCRIBE / UNSUBSCRIBE: the topic filters one connection holds and the QoS granted for
//! each. IoT Hub and DPS grant at most QoS 1 (a QoS 2 request is granted 1); a filter the
//! identity may not use is refused with return code 0x80, as is one beyond
//! [`MAX_SUBSCRIPTIONS`]. Which filters an identity may use is [`super::routes`].

use super::codec::{QoS, SubAck, Subscribe, SubscribeReasonCode};
use super::routes::{Principal, may_subscribe};
use super::topic::filter_matches;

/// Distinct topic filters one session may hold. The SDKs use four or five; without a cap a
/// client could grow its session (and the cost of every delivery) without bound by
/// subscribing to ever new narrower filters.
pub(super) const MAX_SUBSCRIPTIONS: usize = 50;

/// The filters a connection holds, each with its granted QoS.
#[derive(Debug, Default)]
pub(super) struct Subscriptions {
    filters: Vec<(String, QoS)>,
}

impl Subscriptions {
    /// The best QoS of the filters matching `topic` (at most 1); `None` when none does.
    pub(super) fn qos_for(&self, topic: &str) -> Option<QoS> {
        self.filters
            .iter()
            .filter(|(filter, _)| filter_matches(filter, topic))
            .map(|(_, qos)| *qos)
            .max_by_key(|q| *q as u8)
    }

    /// Whether any filter matches `topic`.
    pub(super) fn matches(&self, topic: &str) -> bool {
        self.filters.iter().any(|(f, _)| filter_matches(f, topic))
    }

    /// Whether `filter` itself is held (not whether it matches a topic).
    pub(super) fn holds(&self, filter: &str) -> bool {
        self.filters.iter().any(|(f, _)| f == filter)
    }

    /// Every filter held, with its granted QoS.
    pub(super) fn filters(&self) -> impl Iterator<Item = (&str, QoS)> {
        self.filters.iter().map(|(f, q)| (f.as_str(), *q))
    }

    /// Holds `filter` at `qos` without a SUBSCRIBE (a restored persistent session).
    pub(super) fn restore(&mut self, filter: String, qos: QoS) {
        self.filters.push((filter, qos));
    }

    /// Applies a SUBSCRIBE for `principal`; `client` names the connection in the log.
    pub(super) fn subscribe(
        &mut self,
        principal: Principal<'_>,
        subscribe: Subscribe,
        client: &str,
    ) -> SubAck {
        let mut codes = Vec::with_capacity(subscribe.filters.len());
        for filter in subscribe.filters {
            let held = self.filters.iter().any(|(f, _)| f == &filter.path);
            if !held && self.filters.len() >= MAX_SUBSCRIPTIONS {
                tracing::warn!(client, filter = %filter.path, "subscription refused: {MAX_SUBSCRIPTIONS} filters held already");
                codes.push(SubscribeReasonCode::Failure);
            } else if may_subscribe(principal, &filter.path) {
                let qos = if filter.qos == QoS::AtMostOnce {
                    QoS::AtMostOnce
                } else {
                    QoS::AtLeastOnce
                };
                self.filters.retain(|(f, _)| f != &filter.path);
                self.filters.push((filter.path, qos));
                codes.push(SubscribeReasonCode::Success(qos));
            } else {
                tracing::warn!(client, filter = %filter.path, "subscription refused");
                codes.push(SubscribeReasonCode::Failure);
            }
        }
        SubAck::new(subscribe.pkid, codes)
    }

    /// Drops the filters an UNSUBSCRIBE names (exact strings, as MQTT 3.1.1 compares them).
    pub(super) fn unsubscribe(&mut self, topics: &[String]) {
        self.filters.retain(|(f, _)| !topics.contains(f));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV: Principal<'static> = Principal::Device {
        device_id: "d1",
        module_id: None,
    };

    fn subscribe(filters: &[(&str, QoS)]) -> Subscribe {
        let mut subscribe =
            Subscribe::new_many(filters.iter().map(|(path, qos)| {
                rumqttc::mqttbytes::v4::SubscribeFilter::new((*path).into(), *qos)
            }));
        subscribe.pkid = 7;
        subscribe
    }

    #[test]
    fn grants_at_most_qos_1_and_refuses_foreign_filters() {
        let mut subs = Subscriptions::default();
        let ack = subs.subscribe(
            DEV,
            subscribe(&[
                ("$iothub/twin/res/#", QoS::ExactlyOnce),
                ("$iothub/methods/POST/#", QoS::AtMostOnce),
                ("devices/d2/messages/devicebound/#", QoS::AtLeastOnce),
            ]),
            "test",
        );
        assert_eq!(ack.pkid, 7);
        assert_eq!(
            ack.return_codes,
            vec![
                SubscribeReasonCode::Success(QoS::AtLeastOnce),
                SubscribeReasonCode::Success(QoS::AtMostOnce),
                SubscribeReasonCode::Failure,
            ]
        );
        assert_eq!(
            subs.qos_for("$iothub/twin/res/200/?$rid=1"),
            Some(QoS::AtLeastOnce)
        );
        assert_eq!(
            subs.qos_for("$iothub/methods/POST/m/?$rid=1"),
            Some(QoS::AtMostOnce)
        );
        assert_eq!(subs.qos_for("devices/d2/messages/devicebound/x"), None);
    }

    #[test]
    fn resubscribing_replaces_and_unsubscribing_removes() {
        let mut subs = Subscriptions::default();
        subs.subscribe(
            DEV,
            subscribe(&[("$iothub/twin/res/#", QoS::AtLeastOnce)]),
            "t",
        );
        subs.subscribe(
            DEV,
            subscribe(&[("$iothub/twin/res/#", QoS::AtMostOnce)]),
            "t",
        );
        assert_eq!(subs.qos_for("$iothub/twin/res/200/"), Some(QoS::AtMostOnce));
        subs.unsubscribe(&["$iothub/twin/res/#".to_owned()]);
        assert!(!subs.matches("$iothub/twin/res/200/"));
    }

    #[test]
    fn holds_at_most_the_cap_of_distinct_filters() {
        let mut subs = Subscriptions::default();
        for n in 0..MAX_SUBSCRIPTIONS {
            let filter = format!("$iothub/methods/POST/m{n}/#");
            let ack = subs.subscribe(DEV, subscribe(&[(&filter, QoS::AtMostOnce)]), "t");
            assert_eq!(
                ack.return_codes,
                vec![SubscribeReasonCode::Success(QoS::AtMostOnce)]
            );
        }
        let over = subs.subscribe(
            DEV,
            subscribe(&[("$iothub/twin/res/#", QoS::AtMostOnce)]),
            "t",
        );
        assert_eq!(over.return_codes, vec![SubscribeReasonCode::Failure]);
        let again = subs.subscribe(
            DEV,
            subscribe(&[("$iothub/methods/POST/m0/#", QoS::AtLeastOnce)]),
            "t",
        );
        assert_eq!(
            again.return_codes,
            vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)],
            "a held filter can still be changed"
        );
    }
}
