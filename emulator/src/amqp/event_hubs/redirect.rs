//! The IoT Hub connection-string path (spec/amqp.md §4.6): samples and `az iot hub
//! monitor-events` attach a receiver on the *hub* at `/messages/events/$management` or
//! `/messages/events/ConsumerGroups/{cg}/Partitions/{p}` and expect the hub to answer with
//! the attach followed by a detach carrying `amqp:link:redirect` and an info map with
//! **symbol** keys: `hostname` and `network-host` (strings), `port` (int, the AMQP port
//! actually bound) and `address` = `amqps://{host}:{port}/{entity}/…` keeping the rest of
//! the path — the clients find the Event Hub name with regexes like `:\d+/(.*)/\$management`.
//!
//! The connection must already be authorised for the hub (SASL `PLAIN`
//! `{policy}@sas.root.{hubName}` or a CBS token), as the real hub requires.

use std::sync::Arc;

use fe2o3_amqp::acceptor::ListenerSessionHandle;
use fe2o3_amqp::types::definitions::{Error, Fields};
use fe2o3_amqp::types::performatives::Attach;
use fe2o3_amqp::types::primitives::{Symbol, Value};

use crate::amqp::address::Address;
use crate::amqp::conditions::{self, NOT_FOUND, UNAUTHORIZED};
use crate::amqp::link::{self, Acceptor};
use crate::amqp::session::SessionContext;
use crate::hub::event_hubs::READ_RIGHT;

pub(crate) const REDIRECT: &str = "amqp:link:redirect";

/// The redirect error for `rest` (what followed `messages/events`) of `entity` at
/// `host:port`.
pub(crate) fn redirect_error(host: &str, port: u16, entity: &str, rest: &str) -> Error {
    let address = if rest.is_empty() {
        format!("amqps://{host}:{port}/{entity}/")
    } else {
        format!("amqps://{host}:{port}/{entity}/{rest}")
    };
    let mut info = Fields::new();
    info.insert(Symbol::from("hostname"), Value::String(host.to_owned()));
    info.insert(Symbol::from("network-host"), Value::String(host.to_owned()));
    info.insert(Symbol::from("port"), Value::Int(i32::from(port)));
    info.insert(Symbol::from("address"), Value::String(address));
    Error::new(
        conditions::condition(REDIRECT),
        Some(format!(
            "The IoT Hub's events are served by the Event Hubs-compatible endpoint '{entity}' at {host}:{port}."
        )),
        Some(info),
    )
}

/// Answers a `/messages/events…` attach with the redirect (or why not).
pub(crate) async fn redirect(
    attach: Attach,
    address: &Address,
    rest: &str,
    session: &mut ListenerSessionHandle,
    ctx: &Arc<SessionContext>,
    acceptor: &Acceptor,
) {
    let hint = address
        .host
        .clone()
        .or_else(|| ctx.connection.auth.peer().server_name.clone());
    let access = ctx.connection.auth.service_access(
        hint.as_deref(),
        READ_RIGHT,
        None,
        ctx.connection.auth.now(),
    );
    let error = match access {
        Err(refusal) => conditions::error(UNAUTHORIZED, refusal.0),
        Ok(access) => match ctx.connection.amqp.hubs.get(&access.hub) {
            None => conditions::error(NOT_FOUND, format!("hub '{}' is not served", access.hub)),
            Some(hub) => redirect_error(
                hub.host_name(),
                ctx.connection.amqp.port,
                hub.event_hubs().path(),
                rest,
            ),
        },
    };
    link::refuse(attach, session, acceptor, error).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_matches_the_clients_regexes() {
        let error = redirect_error("localhost", 15671, "localhost", "$management");
        assert_eq!(conditions::symbol_of(&error.condition), REDIRECT);
        let info = error.info.unwrap();
        let get = |k: &str| info.get(&Symbol::from(k)).cloned();
        assert_eq!(
            get("address"),
            Some(Value::String(
                "amqps://localhost:15671/localhost/$management".into()
            ))
        );
        assert_eq!(get("port"), Some(Value::Int(15671)));
        assert_eq!(get("hostname"), Some(Value::String("localhost".into())));
        assert_eq!(get("network-host"), Some(Value::String("localhost".into())));
        let consumer = redirect_error("h", 5671, "e", "ConsumerGroups/$Default/Partitions/0");
        assert_eq!(
            consumer.info.unwrap().get(&Symbol::from("address")),
            Some(&Value::String(
                "amqps://h:5671/e/ConsumerGroups/$Default/Partitions/0".into()
            ))
        );
    }
}
