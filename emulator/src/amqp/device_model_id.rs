//! IoT Plug and Play over AMQP: the model id a device or module announces when it attaches its
//! links. The device SDKs that speak AMQP with a model id (Java, C, .NET) put it in the attach
//! `properties` of their links as `com.microsoft:model-id` (a string), where MQTT clients put
//! `model-id` in the CONNECT username. iotemu keeps it on the identity's twin as `modelId`,
//! exactly as it does for MQTT (`hub::twin_store::record_model_id`), before the link is
//! accepted: a client that sees its link attached finds the model id on its twin.
//!
//! A value that is not a DTMI, or not a string, is ignored (the link is still served), as for
//! MQTT; a model id the store cannot keep refuses the link with `amqp:internal-error`.

use fe2o3_amqp::types::definitions::Error;
use fe2o3_amqp::types::performatives::Attach;
use fe2o3_amqp::types::primitives::{Symbol, Value};

use super::conditions::{self, INTERNAL_ERROR};
use crate::hub::twin::is_model_id;
use crate::hub::{Hub, IdentityRef};

/// The attach property that carries the model id.
pub(crate) const MODEL_ID_PROPERTY: &str = "com.microsoft:model-id";

/// The DTMI an attach announces, if it carries one.
pub(crate) fn announced(attach: &Attach) -> Option<&str> {
    let value = attach
        .properties
        .as_ref()?
        .get(&Symbol::from(MODEL_ID_PROPERTY))?;
    match value {
        Value::String(model_id) if is_model_id(model_id) => Some(model_id),
        _ => None,
    }
}

/// Stores the model id `attach` announces for `who` on `hub` and waits until it is durable;
/// nothing to do without one. The error is the detach the link is refused with.
pub(crate) async fn record(hub: &Hub, who: IdentityRef<'_>, attach: &Attach) -> Result<(), Error> {
    let Some(model_id) = announced(attach) else {
        return Ok(());
    };
    let stored = match hub.record_model_id(who, model_id) {
        Ok(pending) => pending.durable().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.message),
    };
    stored.map_err(|reason| {
        tracing::warn!(device = who.device_id, module = ?who.module_id, %reason, "model id not stored; link refused");
        conditions::error(
            INTERNAL_ERROR,
            format!("the model id could not be stored: {reason}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use fe2o3_amqp::types::definitions::{Fields, Role};

    use super::*;
    use crate::auth::keys::SymmetricKey;

    const THERMOSTAT: &str = "dtmi:com:example:Thermostat;1";

    fn attach(properties: Option<Vec<(&str, Value)>>) -> Attach {
        let mut attach = Attach {
            name: "events".into(),
            handle: 0.into(),
            role: Role::Sender,
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
        attach.properties = properties.map(|pairs| {
            let mut fields = Fields::new();
            for (name, value) in pairs {
                fields.insert(Symbol::from(name), value);
            }
            fields
        });
        attach
    }

    fn key() -> SymmetricKey {
        SymmetricKey::from_base64("c2VydmljZSBrZXkgZm9yIHRlc3RzIG9ubHkgMTIzNA==").unwrap()
    }

    fn device() -> IdentityRef<'static> {
        IdentityRef {
            device_id: "d1",
            module_id: None,
        }
    }

    #[test]
    fn only_a_dtmi_string_under_the_property_is_announced() {
        let with = |value: Value| {
            announced(&attach(Some(vec![(MODEL_ID_PROPERTY, value)]))).map(str::to_owned)
        };
        assert_eq!(
            with(Value::String(THERMOSTAT.into())).as_deref(),
            Some(THERMOSTAT)
        );
        assert_eq!(with(Value::String("not a dtmi".into())), None);
        assert_eq!(with(Value::String(String::new())), None);
        assert_eq!(with(Value::Symbol(Symbol::from(THERMOSTAT))), None);
        assert_eq!(with(Value::Int(1)), None);
        assert_eq!(announced(&attach(None)), None);
        let other = attach(Some(vec![(
            "com.microsoft:client-version",
            Value::String(THERMOSTAT.into()),
        )]));
        assert_eq!(announced(&other), None);
    }

    #[tokio::test]
    async fn an_announced_model_id_is_on_the_twin_and_others_change_nothing() {
        let hub = Hub::new("hub.example", Vec::new(), 1);
        hub.provision_device("d1", key(), key(), None);
        let announcing = attach(Some(vec![(
            MODEL_ID_PROPERTY,
            Value::String(THERMOSTAT.into()),
        )]));
        record(&hub, device(), &announcing).await.unwrap();
        assert_eq!(
            hub.device_twin("d1").unwrap().model_id.as_deref(),
            Some(THERMOSTAT)
        );
        // A link without the property, or with a value that is no DTMI, keeps the model id.
        let etag = hub.device_twin("d1").unwrap().etag;
        for other in [
            attach(None),
            attach(Some(vec![(MODEL_ID_PROPERTY, Value::String("x".into()))])),
        ] {
            record(&hub, device(), &other).await.unwrap();
        }
        let twin = hub.device_twin("d1").unwrap();
        assert_eq!(
            (twin.model_id.as_deref(), twin.etag),
            (Some(THERMOSTAT), etag)
        );

        // A module's links announce the module's model, kept on its module twin only.
        let spec = crate::hub::module::ModuleSpec::from_json("d1", "m1", b"{}").unwrap();
        hub.create_module(spec).unwrap().durable().await.unwrap();
        let module = IdentityRef {
            device_id: "d1",
            module_id: Some("m1"),
        };
        let sensor = attach(Some(vec![(
            MODEL_ID_PROPERTY,
            Value::String("dtmi:com:example:Sensor;2".into()),
        )]));
        record(&hub, module, &sensor).await.unwrap();
        assert_eq!(
            hub.module_twin("d1", "m1").unwrap().model_id.as_deref(),
            Some("dtmi:com:example:Sensor;2")
        );
        assert_eq!(
            hub.device_twin("d1").unwrap().model_id.as_deref(),
            Some(THERMOSTAT)
        );
    }

    use crate::store::failing::FailingStore;

    #[tokio::test]
    async fn a_model_id_the_store_refuses_is_an_internal_error_and_not_kept() {
        let persistence = Arc::new(crate::persistence::Persistence::new(Arc::new(FailingStore)));
        let hub = Hub::new("hub.example", Vec::new(), 1);
        hub.provision_device("d1", key(), key(), None);
        let hub = hub.with_persistence(persistence.clone());
        persistence.activate();
        let announcing = attach(Some(vec![(
            MODEL_ID_PROPERTY,
            Value::String(THERMOSTAT.into()),
        )]));
        let error = record(&hub, device(), &announcing).await.unwrap_err();
        assert_eq!(conditions::symbol_of(&error.condition), INTERNAL_ERROR);
        assert_eq!(hub.device_twin("d1").unwrap().model_id, None);

        let unknown = IdentityRef {
            device_id: "nobody",
            module_id: None,
        };
        let error = record(&hub, unknown, &announcing).await.unwrap_err();
        assert_eq!(conditions::symbol_of(&error.condition), INTERNAL_ERROR);
    }
}
