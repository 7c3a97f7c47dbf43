//! Module inputs over AMQP (spec/amqp.md §5.2): a module's receiver on
//! `/devices/{id}/modules/{mid}/messages/events` (the same address its telemetry sender uses).
//!
//! Wire format: like a C2D message ([`super::device_c2d::to_amqp`]: `message-id`,
//! `correlation-id`, content type and encoding, application properties, one Data section),
//! with `to` = `/devices/{id}/modules/{mid}/inputs/{input}` and the message annotation
//! `x-opt-input-name` = the input name, which is how Node picks the `inputMessage` handler.
//!
//! Inputs are not queued (the hub's [`ModuleInput`]): the hub learns the message was
//! delivered once it is on the link; the module's disposition is not waited for.

use std::sync::Arc;

use fe2o3_amqp::acceptor::LinkEndpoint;
use fe2o3_amqp::link::Sender;
use fe2o3_amqp::types::messaging::MessageAnnotations;
use fe2o3_amqp::types::primitives::Value;
use tokio::sync::mpsc;

use super::device::{DeviceChannel, close_link};
use super::device_c2d;
use super::link::LinkSlot;
use super::message::AnyMessage;
use crate::hub::c2d::QueuedC2d;
use crate::hub::module::ModuleInput;

/// Inputs queued for one link before the hub is told the module is busy.
const INPUT_QUEUE: usize = 64;

/// Our sender: the module's input messages.
pub(crate) async fn serve(mut sender: Sender, channel: Arc<DeviceChannel>, slot: LinkSlot) {
    let link = sender.name().to_owned();
    let (tx, mut inputs) = mpsc::channel::<Box<ModuleInput>>(INPUT_QUEUE);
    channel.route_inputs(tx);
    tracing::debug!(%link, module = %channel.identity.connection_key(), "AMQP module input link attached");
    loop {
        tokio::select! {
            input = inputs.recv() => {
                let Some(input) = input else { break };
                let message = input_message(&channel, &input);
                match sender.send_batchable(message).await {
                    Ok(_settlement) => {
                        let _ = input.delivered.send(true);
                    }
                    Err(e) => {
                        tracing::debug!(%link, error = %e, "AMQP module input could not be sent");
                        let _ = input.delivered.send(false);
                        break;
                    }
                }
            }
            reason = channel.closed() => {
                close_link(LinkEndpoint::Sender(sender), reason).await;
                break;
            }
            _ = sender.on_detach() => break,
        }
    }
    inputs.close();
    while let Ok(input) = inputs.try_recv() {
        let _ = input.delivered.send(false);
    }
    drop(slot);
}

/// The AMQP message a module receives on input `input.input`.
pub(crate) fn input_message(channel: &DeviceChannel, input: &ModuleInput) -> AnyMessage {
    let identity = &channel.identity;
    let queued = QueuedC2d {
        id: input.message_id.clone(),
        message: input.message.clone(),
        enqueued: std::time::SystemTime::now(),
        in_flight: true,
        delivery_count: 1,
        lock: None,
    };
    let mut message = device_c2d::to_amqp(identity.device_id(), &queued);
    if let Some(properties) = message.properties.as_mut() {
        properties.to = Some(format!(
            "/devices/{}/modules/{}/inputs/{}",
            identity.device_id(),
            identity.module_id().unwrap_or_default(),
            input.input
        ));
    }
    message.message_annotations = Some(
        MessageAnnotations::builder()
            .insert("x-opt-input-name", Value::String(input.input.clone()))
            .build(),
    );
    message
}
