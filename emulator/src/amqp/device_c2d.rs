//! Cloud-to-device messages over AMQP (spec/amqp.md §5.2, §5.4): the device's receiver on
//! `/devices/{id}/messages/devicebound`.
//!
//! Wire format (what Node's `toMessage` reads): `properties` `message-id`, `correlation-id`,
//! `user-id`, `content-type`, `content-encoding`, `absolute-expiry-time` and
//! `to` = `/devices/{id}/messages/devicebound`; application properties are the message's,
//! plus `iothub-ack` when the sender asked for feedback; the body is one Data section.
//! Each delivery is sent unsettled and the device's disposition settles the message:
//!
//! | disposition            | hub operation | feedback                      |
//! |------------------------|---------------|-------------------------------|
//! | `accepted`             | complete      | `Success`                     |
//! | `rejected`             | reject        | `Rejected`                    |
//! | `released`/`modified`  | abandon       | none; delivered again         |
//!
//! The window, redelivery and dead-lettering are the hub's
//! [`C2dDelivery`](crate::hub::c2d::delivery::C2dDelivery), shared with MQTT; what is
//! unsettled when the link goes returns to the queue. A second C2D link for the same device
//! replaces the first, which is detached with `amqp:internal-error` as the real hub does
//! (spec/amqp.md §1.2).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use fe2o3_amqp::acceptor::LinkEndpoint;
use fe2o3_amqp::link::{SendError, Sender};
use fe2o3_amqp::types::messaging::{
    ApplicationProperties, Body, Data, Message, MessageId, Outcome, Properties,
};
use fe2o3_amqp::types::primitives::{Binary, SimpleValue};
use futures_util::StreamExt;

use super::conditions::{self, INTERNAL_ERROR};
use super::device::{DeviceChannel, close_link};
use super::link::LinkSlot;
use super::message::{AnyMessage, timestamp};
use crate::hub::c2d::QueuedC2d;
use crate::hub::c2d::delivery::{C2dDelivery, DropInstead, Outgoing};

type Settling = Pin<Box<dyn Future<Output = (String, Result<Outcome, SendError>)> + Send>>;

/// Sends the device its C2D messages until the link, the connection or the channel ends.
pub(crate) async fn serve(mut sender: Sender, channel: Arc<DeviceChannel>, slot: LinkSlot) {
    let link = sender.name().to_owned();
    let generation = channel.claim_c2d();
    let who = channel.identity.identity_ref();
    let Some((mut delivery, _)) = C2dDelivery::open(channel.hub.clone(), who, false) else {
        drop(slot);
        return;
    };
    delivery.subscribed(true);
    let device_id = delivery.device_id().to_owned();
    tracing::debug!(%link, device = %device_id, "AMQP C2D link attached");
    let mut settling = futures_unordered();
    let mut state = pump(&mut sender, &channel, &mut delivery, &mut settling).await;
    while let Pump::Alive = state {
        tokio::select! {
            settled = settling.next(), if !settling.is_empty() => {
                if let Some((message_id, outcome)) = settled {
                    state = match settle(&mut delivery, &message_id, outcome).await {
                        Ok(()) => pump(&mut sender, &channel, &mut delivery, &mut settling).await,
                        Err(()) => Pump::LinkGone,
                    };
                }
            }
            _ = channel.c2d_available.notified() => {
                if channel.c2d_generation() != generation {
                    let error = conditions::error(
                        INTERNAL_ERROR,
                        "Another AMQP Client has opened a Receive Link for this device",
                    );
                    state = Pump::Closed(Some(error));
                } else {
                    state = pump(&mut sender, &channel, &mut delivery, &mut settling).await;
                }
            }
            reason = channel.closed() => state = Pump::Closed(reason),
            _ = sender.on_detach() => state = Pump::LinkGone,
        }
    }
    if let Pump::Closed(reason) = state {
        close_link(LinkEndpoint::Sender(sender), reason).await;
    }
    tracing::debug!(%link, device = %device_id, "AMQP C2D link ended");
    // Unsettled messages go back to the queue when `delivery` drops.
    drop(slot);
}

fn futures_unordered() -> futures_util::stream::FuturesUnordered<Settling> {
    futures_util::stream::FuturesUnordered::new()
}

/// Sends what the window allows; `false` when the link can no longer send. A device that
/// grants no credit holds a send here; the channel closing still ends the link.
async fn pump(
    sender: &mut Sender,
    channel: &DeviceChannel,
    delivery: &mut C2dDelivery,
    settling: &mut futures_util::stream::FuturesUnordered<Settling>,
) -> Pump {
    while let Some(next) = delivery.next_delivery() {
        let Outgoing {
            queued,
            hold,
            drop_after,
        } = match next {
            Ok(outgoing) => outgoing,
            Err(DropInstead { fault_id }) => {
                channel.drop_by_fault(&fault_id);
                // Closed now (the drop set the reason): nothing more is sent on this link.
                return Pump::Closed(channel.closed().await);
            }
        };
        if let Some(delay) = hold
            && let Err(reason) = channel.hold(delay).await
        {
            return Pump::Closed(reason);
        }
        let id = queued.id.clone();
        let message = to_amqp(delivery.device_id(), &queued);
        let sent = tokio::select! {
            sent = sender.send_batchable(message) => sent,
            reason = channel.closed() => return Pump::Closed(reason),
        };
        match sent {
            Ok(outcome) => {
                settling.push(Box::pin(async move { (id, outcome.await) }));
                if let Some(fault_id) = drop_after {
                    // Sent; the links go before the device settles it.
                    channel.drop_by_fault(&fault_id);
                    return Pump::Closed(channel.closed().await);
                }
            }
            Err(e) => {
                tracing::debug!(message_id = %id, error = %e, "AMQP C2D message could not be sent");
                return Pump::LinkGone;
            }
        }
    }
    Pump::Alive
}

/// How a [`pump`] ended.
enum Pump {
    Alive,
    LinkGone,
    /// The channel closed while a send waited for credit: the link is to be detached.
    Closed(Option<fe2o3_amqp::types::definitions::Error>),
}

/// Applies the device's disposition; `Err` when the link failed (the message then stays
/// in flight and returns to the queue with the link).
async fn settle(
    delivery: &mut C2dDelivery,
    message_id: &str,
    outcome: Result<Outcome, SendError>,
) -> Result<(), ()> {
    let device = delivery.device_id().to_owned();
    match outcome {
        Ok(Outcome::Accepted(_)) => {
            tracing::debug!(%device, message_id, "C2D message completed over AMQP");
            delivery.complete(message_id).await;
        }
        Ok(Outcome::Rejected(_)) => {
            tracing::debug!(%device, message_id, "C2D message rejected over AMQP");
            delivery.reject(message_id).await;
        }
        Ok(_) => {
            tracing::debug!(%device, message_id, "C2D message abandoned over AMQP");
            delivery.abandon(message_id);
        }
        Err(e) => {
            tracing::debug!(%device, message_id, error = %e, "C2D delivery not settled");
            return Err(());
        }
    }
    Ok(())
}

/// The AMQP message a device receives for `queued`.
pub(crate) fn to_amqp(device_id: &str, queued: &QueuedC2d) -> AnyMessage {
    let m = &queued.message;
    let mut app = ApplicationProperties::default();
    for (name, value) in &m.properties {
        app.0
            .insert(name.clone(), SimpleValue::String(value.clone()));
    }
    if let Some(ack) = &m.ack {
        app.0
            .insert("iothub-ack".to_owned(), SimpleValue::String(ack.clone()));
    }
    Message::builder()
        .properties(Properties {
            message_id: Some(MessageId::String(queued.id.clone())),
            correlation_id: m.correlation_id.clone().map(MessageId::String),
            user_id: m
                .user_id
                .as_ref()
                .map(|u| Binary::from(u.as_bytes().to_vec())),
            content_type: m.content_type.clone().map(Into::into),
            content_encoding: m.content_encoding.clone().map(Into::into),
            absolute_expiry_time: m.expiry.map(timestamp),
            to: Some(format!("/devices/{device_id}/messages/devicebound")),
            ..Default::default()
        })
        .application_properties(app)
        .body(Body::Data(vec![Data(Binary::from(m.body.to_vec()))].into()))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::c2d::C2dMessage;

    #[test]
    fn a_queued_message_keeps_its_ids_properties_and_ack() {
        let mut message = C2dMessage::new("hello");
        message.correlation_id = Some("c-1".into());
        message.ack = Some("full".into());
        message.properties.insert("color".into(), "red".into());
        let queued = QueuedC2d {
            id: "m-1".into(),
            message,
            enqueued: std::time::SystemTime::now(),
            in_flight: true,
            delivery_count: 1,
            lock: None,
        };
        let amqp = to_amqp("d1", &queued);
        let properties = amqp.properties.clone().unwrap();
        assert_eq!(properties.message_id, Some(MessageId::String("m-1".into())));
        assert_eq!(
            properties.correlation_id,
            Some(MessageId::String("c-1".into()))
        );
        assert_eq!(
            properties.to.as_deref(),
            Some("/devices/d1/messages/devicebound")
        );
        let app = amqp.application_properties.clone().unwrap();
        assert_eq!(
            app.0.get("iothub-ack"),
            Some(&SimpleValue::String("full".into()))
        );
        assert_eq!(app.0.get("color"), Some(&SimpleValue::String("red".into())));
        assert!(matches!(&amqp.body, Body::Data(batch) if batch.len() == 1));
    }
}
