//! Module inputs over MQTT (what IoT Edge routes to a module): a module subscribed to
//! `devices/{deviceId}/modules/{moduleId}/inputs/#` receives a message for input `{name}` on
//! `devices/{deviceId}/modules/{moduleId}/inputs/{name}/{property bag}`. Inputs are not
//! queued, so the hub learns at once whether the module got it. A module's outputs are
//! telemetry with `$.on` ([`super::telemetry`]).

use super::outbox::Outbox;
use super::properties::encode_property_bag;
use crate::hub::DeviceIdentity;
use crate::hub::module::ModuleInput;

/// Publishes `input` to the connected module if it subscribed to its inputs; the hub is told
/// whether it went out. A device (not a module) never has inputs.
pub(super) fn deliver(
    identity: Option<&DeviceIdentity>,
    input: Box<ModuleInput>,
    out: &mut Outbox,
) {
    let Some((identity, module_id)) =
        identity.and_then(|identity| identity.module_id().map(|m| (identity, m)))
    else {
        let _ = input.delivered.send(false);
        return;
    };
    let path = format!(
        "devices/{}/modules/{module_id}/inputs/{}",
        identity.device_id(),
        input.input
    );
    let bag = encode_property_bag(&input.message_id, &input.message, &format!("/{path}"));
    let topic = format!("{path}/{bag}");
    let subscribed = out.subscriptions.matches(&topic);
    if subscribed {
        out.deliver(topic, input.message.body.clone());
    }
    let _ = input.delivered.send(subscribed);
}

#[cfg(test)]
mod tests {
    use tokio::sync::oneshot;

    use super::*;
    use crate::hub::c2d::C2dMessage;

    fn input() -> (Box<ModuleInput>, oneshot::Receiver<bool>) {
        let (delivered, answer) = oneshot::channel();
        let input = ModuleInput {
            input: "in1".into(),
            message_id: "m-1".into(),
            message: C2dMessage::new("payload"),
            delivered,
        };
        (Box::new(input), answer)
    }

    #[test]
    fn a_connection_that_is_not_a_module_has_no_inputs() {
        let mut out = Outbox::new("test".into());
        let (input, mut answer) = input();
        deliver(None, input, &mut out);
        assert_eq!(answer.try_recv(), Ok(false));
        assert!(out.pending().is_empty());
    }
}
