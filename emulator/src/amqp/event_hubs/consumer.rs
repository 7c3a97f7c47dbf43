//! Partition receivers (spec/amqp.md §4.4): the client's receiver link on
//! `{entity}/ConsumerGroups/{cg}/Partitions/{p}` is our sender. The attach carries the start
//! position as a selector filter (two encodings: symbol descriptor from pyamqp, ulong
//! `0x0000468C00000004` from core-amqp), an optional owner level (`com.microsoft:epoch`) and
//! optionally the runtime-metric capability, which we echo.
//!
//! Events go out as the client grants credit, unsettled (the clients accept them; the
//! outcome changes nothing, checkpoints are the client's), and new ones as they arrive. The
//! link ends when the client detaches, a receiver with a higher epoch takes its place
//! (`amqp:link:stolen`), or the token that allowed it expires (`amqp:unauthorized-access`).

use std::sync::Arc;

use fe2o3_amqp::acceptor::LinkEndpoint;
use fe2o3_amqp::link::Sender;
use fe2o3_amqp::types::messaging::Source;
use fe2o3_amqp::types::performatives::Attach;
use fe2o3_amqp::types::primitives::{Symbol, Value};
use serde_amqp::descriptor::Descriptor;

use super::event_message::event_message;
use crate::amqp::conditions;
use crate::amqp::link::{LinkSlot, close_with_error};
use crate::amqp::session::SessionContext;
use crate::hub::Hub;
use crate::hub::event_hubs::{Consumer, READ_RIGHT};

/// The filter key and symbol descriptor of the selector filter.
pub(crate) const SELECTOR_FILTER: &str = "apache.org:selector-filter:string";
/// The same filter's numeric descriptor (core-amqp).
pub(crate) const SELECTOR_FILTER_CODE: u64 = 0x0000_468C_0000_0004;
pub(crate) const EPOCH: &str = "com.microsoft:epoch";
pub(crate) const RUNTIME_METRIC: &str = "com.microsoft:enable-receiver-runtime-metric";

/// Events read from the partition per wake-up; sending each still waits for credit.
const BATCH: usize = 256;

/// The selector string of a receiver's source, `None` without a selector filter; `Err`
/// when a selector filter is present but is not a string.
pub(crate) fn selector(source: Option<&Source>) -> Result<Option<String>, &'static str> {
    let Some(filters) = source.and_then(|s| s.filter.as_ref()) else {
        return Ok(None);
    };
    for (key, value) in filters.iter() {
        let by_key = key.as_str() == SELECTOR_FILTER;
        let (described_as_selector, inner) = match value {
            Value::Described(described) => {
                let is_selector = match &described.descriptor {
                    Descriptor::Name(name) => name.as_str() == SELECTOR_FILTER,
                    Descriptor::Code(code) => *code == SELECTOR_FILTER_CODE,
                };
                (is_selector, &described.value)
            }
            other => (false, other),
        };
        if by_key || described_as_selector {
            return match inner {
                Value::String(text) => Ok(Some(text.clone())),
                Value::Symbol(text) => Ok(Some(text.as_str().to_owned())),
                _ => Err("the selector filter's value must be a string"),
            };
        }
    }
    Ok(None)
}

/// The receiver's owner level, `Err` when `com.microsoft:epoch` is not an integer.
pub(crate) fn epoch(attach: &Attach) -> Result<Option<i64>, &'static str> {
    let Some(value) = attach
        .properties
        .as_ref()
        .and_then(|p| p.get(&Symbol::from(EPOCH)))
    else {
        return Ok(None);
    };
    match value {
        Value::Long(n) => Ok(Some(*n)),
        Value::Int(n) => Ok(Some(i64::from(*n))),
        Value::Short(n) => Ok(Some(i64::from(*n))),
        Value::Byte(n) => Ok(Some(i64::from(*n))),
        Value::Uint(n) => Ok(Some(i64::from(*n))),
        Value::Ulong(n) => i64::try_from(*n)
            .map(Some)
            .map_err(|_| "the epoch is too large"),
        Value::Null => Ok(None),
        _ => Err("com.microsoft:epoch must be a long"),
    }
}

/// Whether the client asked for the last-enqueued-event delivery annotations.
pub(crate) fn wants_runtime_metric(attach: &Attach) -> bool {
    attach
        .desired_capabilities
        .as_ref()
        .is_some_and(|caps| caps.iter().any(|c| c.as_str() == RUNTIME_METRIC))
}

/// What a consumer link needs besides its sender.
pub(crate) struct ConsumerLink {
    pub hub: Arc<Hub>,
    pub consumer: Consumer,
    pub consumer_group: String,
    pub partition: String,
    /// `{host}/{entity}/consumergroups/{cg}/partitions/{p}`: what the token must cover.
    pub resource: String,
    pub runtime_metric: bool,
}

/// Sends the partition's events until the link ends.
pub(crate) async fn serve(
    mut sender: Sender,
    link: ConsumerLink,
    session: Arc<SessionContext>,
    slot: LinkSlot,
) {
    let ConsumerLink {
        hub,
        mut consumer,
        consumer_group,
        partition,
        resource,
        runtime_metric,
    } = link;
    let name = sender.name().to_owned();
    let auth = session.connection.auth.clone();
    let host = hub.host_name().to_owned();
    let expired = auth.until_expired(move |auth, now| {
        auth.service_access(Some(&host), READ_RIGHT, Some(&resource), now)
            .ok()
            .map(|a| a.expires_at)
    });
    tokio::pin!(expired);
    tracing::debug!(link = %name, %consumer_group, %partition, next = consumer.reader.next_sequence_number(), "Event Hubs consumer attached");
    let entity = hub.event_hubs().path().to_owned();
    let ending = 'serving: loop {
        let batch = tokio::select! {
            batch = consumer.reader.read(BATCH) => batch,
            refusal = consumer.lease.displaced() => break 'serving Some(conditions::error(
                refusal.condition(),
                refusal.description(&consumer_group, consumer.reader.partition().id()),
            )),
            _ = &mut expired => break 'serving Some(expired_error()),
            _ = sender.on_detach() => break 'serving None,
        };
        for event in batch {
            let runtime = runtime_metric.then(|| consumer.reader.partition().properties());
            let message = event_message(&event, runtime.as_ref());
            tokio::select! {
                sent = sender.send_batchable(message) => match sent {
                    // The client's outcome changes nothing (Event Hubs keeps no cursor).
                    Ok(_outcome) => {}
                    Err(e) => {
                        tracing::debug!(link = %name, error = %e, "Event Hubs consumer link ended while sending");
                        break 'serving None;
                    }
                },
                refusal = consumer.lease.displaced() => break 'serving Some(conditions::error(
                    refusal.condition(),
                    refusal.description(&consumer_group, consumer.reader.partition().id()),
                )),
                _ = &mut expired => break 'serving Some(expired_error()),
            }
        }
    };
    if let Some(error) = ending {
        tracing::info!(link = %name, %entity, %consumer_group, %partition, condition = %conditions::symbol_of(&error.condition), "Event Hubs consumer detached by the emulator");
        close_with_error(LinkEndpoint::Sender(sender), error).await;
    }
    drop(consumer);
    drop(slot);
}

fn expired_error() -> fe2o3_amqp::types::definitions::Error {
    conditions::error(
        conditions::UNAUTHORIZED,
        "the token that authorised this link has expired",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use fe2o3_amqp::types::primitives::{Array, OrderedMap};
    use serde_amqp::described::Described;

    fn source_with(value: Value) -> Source {
        let mut filter = OrderedMap::new();
        filter.insert(Symbol::from(SELECTOR_FILTER), value);
        Source::builder().filter(filter).build()
    }

    #[test]
    fn both_filter_encodings_give_the_selector() {
        let text = "amqp.annotation.x-opt-offset > '-1'";
        for descriptor in [
            Descriptor::Name(Symbol::from(SELECTOR_FILTER)),
            Descriptor::Code(SELECTOR_FILTER_CODE),
        ] {
            let value = Value::Described(Box::new(Described {
                descriptor,
                value: Value::String(text.into()),
            }));
            assert_eq!(selector(Some(&source_with(value))), Ok(Some(text.into())));
        }
        assert_eq!(selector(None), Ok(None));
        assert_eq!(selector(Some(&Source::default())), Ok(None));
        assert!(selector(Some(&source_with(Value::Long(5)))).is_err());
    }

    #[test]
    fn epochs_and_capabilities_from_the_attach() {
        let mut attach = Attach {
            name: "r".into(),
            handle: 0.into(),
            role: fe2o3_amqp::types::definitions::Role::Receiver,
            snd_settle_mode: Default::default(),
            rcv_settle_mode: Default::default(),
            source: None,
            target: None,
            unsettled: None,
            incomplete_unsettled: false,
            initial_delivery_count: None,
            max_message_size: None,
            offered_capabilities: None,
            desired_capabilities: None,
            properties: None,
        };
        assert_eq!(epoch(&attach), Ok(None));
        assert!(!wants_runtime_metric(&attach));
        let mut properties = OrderedMap::new();
        properties.insert(Symbol::from(EPOCH), Value::Long(7));
        attach.properties = Some(properties.clone());
        assert_eq!(epoch(&attach), Ok(Some(7)));
        properties.insert(Symbol::from(EPOCH), Value::String("x".into()));
        attach.properties = Some(properties);
        assert!(epoch(&attach).is_err());
        attach.desired_capabilities = Some(Array::from(vec![
            Symbol::from("com.microsoft:georeplication"),
            Symbol::from(RUNTIME_METRIC),
        ]));
        assert!(wants_runtime_metric(&attach));
    }
}
