//! The built-in Event Hubs-compatible endpoint (spec/amqp.md §4): where backends read the
//! hub's telemetry. Every attach whose address is Event Hubs-shaped arrives in
//! [`on_attach`]:
//!
//! * `$management` and `{entity}/$management` — the management request/response node
//!   (serve it with [`super::request_response::serve`] and a
//!   [`super::request_response::RequestHandler`]);
//! * `{entity}/ConsumerGroups/{cg}/Partitions/{p}` (with or without `amqps://host/`) —
//!   partition receivers;
//! * `/messages/events…` on the IoT Hub host — the connection-string path, answered with an
//!   `amqp:link:redirect` detach.
//!
//! Authorisation is this module's: CBS grants for `sb://{host}/{entity}/…` audiences are in
//! `ctx.connection.auth` ([`super::connection_auth::ConnectionAuth::service_access`] with a
//! `resource`, or [`super::connection_auth::ConnectionAuth::grants`]).

use std::sync::Arc;

use fe2o3_amqp::acceptor::ListenerSessionHandle;
use fe2o3_amqp::types::performatives::Attach;

use super::address::Address;
use super::conditions::{self, NOT_IMPLEMENTED};
use super::link::{self, LinkSlot};
use super::session::SessionContext;

/// Handles one Event Hubs-shaped attach: answer it (`link::accept` / `link::refuse`) and
/// spawn the link's task, which keeps `slot` for as long as the link lives. The hubs are
/// `ctx.connection.amqp.hubs`; the session must not be held up (accept, then spawn).
pub async fn on_attach(
    attach: Attach,
    address: Address,
    session: &mut ListenerSessionHandle,
    ctx: &Arc<SessionContext>,
    slot: LinkSlot,
) {
    let acceptor = link::acceptor(ctx.connection.amqp.limits.max_message_size);
    let error = conditions::error(
        NOT_IMPLEMENTED,
        format!(
            "the Event Hubs-compatible endpoint ('{}') is not available yet",
            address.raw
        ),
    );
    link::refuse(attach, session, &acceptor, error).await;
    drop(slot);
}
