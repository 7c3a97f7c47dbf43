//! The Event Hubs-shaped link addresses (spec/amqp.md §4.3, §4.4, §4.6), parsed with their
//! names' case kept (an entity or consumer group is named as configured) while the keywords
//! (`ConsumerGroups`, `Partitions`, `$management`, `messages/events`) match in any case.

use crate::amqp::address::Address;

/// What an Event Hubs-shaped address names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EventHubsAddress {
    /// `$management` or `{entity}/$management`: the management request/response node.
    Management { entity: Option<String> },
    /// `{entity}/ConsumerGroups/{cg}/Partitions/{p}`: a partition receiver.
    Consumer {
        entity: String,
        consumer_group: String,
        partition: String,
    },
    /// `{entity}/Partitions/{p}` or `{entity}`: a producer, which the built-in endpoint has
    /// no use for (devices send through IoT Hub).
    Producer { entity: String },
    /// `/messages/events…` on the IoT Hub host: answered with a redirect; `rest` is what
    /// follows `messages/events` (`$management`, `ConsumerGroups/$Default/Partitions/0`, or
    /// nothing).
    IotHubEvents { rest: String },
}

impl EventHubsAddress {
    /// Parses an address the session routed to the Event Hubs node; `None` for others.
    pub(crate) fn parse(address: &Address) -> Option<EventHubsAddress> {
        let segments: Vec<&str> = address.path.split('/').filter(|s| !s.is_empty()).collect();
        let is = |segment: &&str, keyword: &str| segment.eq_ignore_ascii_case(keyword);
        match segments.as_slice() {
            [node] if is(node, "$management") => {
                Some(EventHubsAddress::Management { entity: None })
            }
            [messages, events, rest @ ..] if is(messages, "messages") && is(events, "events") => {
                Some(EventHubsAddress::IotHubEvents {
                    rest: rest.join("/"),
                })
            }
            [entity, node] if is(node, "$management") => Some(EventHubsAddress::Management {
                entity: Some((*entity).to_owned()),
            }),
            [entity, groups, group, partitions, partition]
                if is(groups, "consumergroups") && is(partitions, "partitions") =>
            {
                Some(EventHubsAddress::Consumer {
                    entity: (*entity).to_owned(),
                    consumer_group: (*group).to_owned(),
                    partition: (*partition).to_owned(),
                })
            }
            [entity, partitions, _] if is(partitions, "partitions") => {
                Some(EventHubsAddress::Producer {
                    entity: (*entity).to_owned(),
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Option<EventHubsAddress> {
        EventHubsAddress::parse(&Address::parse(raw))
    }

    #[test]
    fn both_sdk_spellings_and_the_redirect_paths() {
        let consumer = EventHubsAddress::Consumer {
            entity: "MyHub".into(),
            consumer_group: "$Default".into(),
            partition: "3".into(),
        };
        assert_eq!(
            parse("MyHub/ConsumerGroups/$Default/Partitions/3"),
            Some(consumer.clone())
        );
        assert_eq!(
            parse("amqps://host.example/MyHub/consumergroups/$Default/partitions/3"),
            Some(consumer)
        );
        assert_eq!(
            parse("$management"),
            Some(EventHubsAddress::Management { entity: None })
        );
        assert_eq!(
            parse("amqps://h:5671/MyHub/$management"),
            Some(EventHubsAddress::Management {
                entity: Some("MyHub".into())
            })
        );
        assert_eq!(
            parse("amqps://h/messages/events/ConsumerGroups/$Default/Partitions/0"),
            Some(EventHubsAddress::IotHubEvents {
                rest: "ConsumerGroups/$Default/Partitions/0".into()
            })
        );
        assert_eq!(
            parse("/messages/events/$management"),
            Some(EventHubsAddress::IotHubEvents {
                rest: "$management".into()
            })
        );
        assert_eq!(
            parse("MyHub/Partitions/0"),
            Some(EventHubsAddress::Producer {
                entity: "MyHub".into()
            })
        );
        assert_eq!(parse("MyHub/ConsumerGroups/$Default"), None);
        assert_eq!(parse(""), None);
    }
}
