//! A device's (or module's) own links on an AMQP connection (spec/amqp.md §5): who may open
//! them, and the one hub connection they share.
//!
//! ```text
//! attach /devices/{id}[/modules/{mid}]/…  ─→ authorise: a live device grant from a CBS
//!        put-token for exactly that identity, or the TLS client certificate (X.509 clients
//!        send no SASL and no CBS) checked by the hub's device authentication
//!     ─→ the connection's DeviceChannel for that identity (created on its first link:
//!        takes the hub's connection lease, which replaces any older connection of the
//!        identity, as MQTT's CONNECT does)
//!     ─→ one task per link: device_telemetry, device_c2d, device_inputs, device_methods,
//!        device_twin (a model id in the attach properties is stored on the twin first:
//!        device_model_id)
//! ```
//!
//! The channel's pump task routes what the hub pushes (C2D available, method calls,
//! desired patches, module inputs) to the link that carries it, and closes every link of the
//! identity when the hub drops the connection (a newer connection, the device disabled or
//! deleted: `amqp:link:detach-forced`) or the token that authorised it expires without
//! renewal (`amqp:unauthorized-access`). The lease is given back when the AMQP connection
//! ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use fe2o3_amqp::acceptor::{LinkEndpoint, ListenerSessionHandle};
use fe2o3_amqp::types::definitions::{Error, Role};
use fe2o3_amqp::types::performatives::Attach;
use tokio::sync::{Notify, mpsc, watch};

use super::address::{Address, DeviceAddress, DeviceLinkKind};
use super::conditions::{self, NOT_ALLOWED, NOT_FOUND, UNAUTHORIZED};
use super::connection_auth::{ConnectionAuth, Grant};
use super::link::{self, Acceptor, LinkSlot};
use super::message::AnyMessage;
use super::session::SessionContext;
use super::{
    device_c2d, device_inputs, device_methods, device_model_id, device_telemetry, device_twin,
};
use crate::auth::Credential;
use crate::hub::connections::Outbound;
use crate::hub::methods::{MethodCall, MethodCorrelation};
use crate::hub::module::ModuleInput;
use crate::hub::{DeviceIdentity, Hub, push_queue};

/// How long a twin request waits for the twin response link to attach.
const REPLY_LINK_WAIT: Duration = Duration::from_secs(5);
/// Condition for links closed because the hub dropped the identity's connection.
const DETACH_FORCED: &str = "amqp:link:detach-forced";

/// The device channels of one AMQP connection, by connection key (`device` or `device/module`).
#[derive(Default)]
pub(crate) struct DeviceChannels {
    channels: Mutex<HashMap<String, Arc<DeviceChannel>>>,
}

impl DeviceChannels {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<DeviceChannel>>> {
        self.channels.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The open channel of `key`, if this connection has one.
    fn open_channel(&self, key: &str) -> Option<Arc<DeviceChannel>> {
        self.lock().get(key).filter(|c| !c.is_closed()).cloned()
    }

    /// The channel of `identity`, created (and attached to the hub) on first use.
    fn channel(
        &self,
        identity: DeviceIdentity,
        hub: Arc<Hub>,
        auth: Arc<ConnectionAuth>,
    ) -> Arc<DeviceChannel> {
        let key = identity.connection_key();
        let mut channels = self.lock();
        if let Some(channel) = channels.get(&key).filter(|c| !c.is_closed()) {
            return channel.clone();
        }
        let lease = hub.connections().attach(&key);
        let (closed, _) = watch::channel(None);
        let channel = Arc::new(DeviceChannel {
            key: key.clone(),
            hub,
            identity,
            lease_id: lease.id,
            closed,
            routes: Mutex::new(Routes::default()),
            methods: Mutex::new(MethodCorrelation::default()),
            c2d_available: Notify::new(),
            twin_attached: Notify::new(),
        });
        tokio::spawn(pump(channel.clone(), lease.outbound, lease.kicked, auth));
        channels.insert(key, channel.clone());
        channel
    }

    /// The AMQP connection ended: every identity it carried is disconnected from its hub.
    pub(crate) fn close_all(&self) {
        let channels: Vec<Arc<DeviceChannel>> = self.lock().drain().map(|(_, c)| c).collect();
        for channel in channels {
            channel.close(None);
        }
    }
}

impl Drop for DeviceChannels {
    fn drop(&mut self) {
        self.close_all();
    }
}

/// Where the hub's pushes for one identity go: the links currently attached for them.
#[derive(Default)]
struct Routes {
    /// The method request link (our sender, the device's receiver).
    methods: Option<mpsc::Sender<MethodCall>>,
    /// The twin response link (our sender), and whether the device asked for desired patches.
    twin: Option<mpsc::Sender<AnyMessage>>,
    desired_subscribed: bool,
    /// The module input link (our sender on the module's events address).
    inputs: Option<mpsc::Sender<Box<ModuleInput>>>,
    /// The C2D link's generation: a newer C2D link replaces the older (spec/amqp.md §1.2).
    c2d_generation: u64,
}

/// One device identity on one AMQP connection.
pub(crate) struct DeviceChannel {
    key: String,
    pub(crate) hub: Arc<Hub>,
    pub(crate) identity: DeviceIdentity,
    lease_id: u64,
    /// `Some(reason)` once closed; the reason is the error its links detach with (`None`
    /// inside when the connection itself is gone).
    closed: watch::Sender<Option<Option<Error>>>,
    routes: Mutex<Routes>,
    /// Method requests sent to the device and not answered yet.
    methods: Mutex<MethodCorrelation>,
    /// A C2D message was queued for the device.
    pub(crate) c2d_available: Notify,
    twin_attached: Notify,
}

impl DeviceChannel {
    fn routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn methods(&self) -> std::sync::MutexGuard<'_, MethodCorrelation> {
        self.methods.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_closed(&self) -> bool {
        self.closed.borrow().is_some()
    }

    /// Ends the identity's connection to the hub; its links detach with `error`.
    fn close(&self, error: Option<Error>) {
        self.hub.connections().detach(&self.key, self.lease_id);
        self.closed.send_if_modified(|closed| {
            if closed.is_some() {
                return false;
            }
            *closed = Some(error);
            true
        });
    }

    /// An injected drop (docs/faults.md): the identity's links detach with
    /// `amqp:connection:forced` naming the fault, as when the hub closes a device's
    /// connection, and the device must attach again.
    pub(crate) fn drop_by_fault(&self, fault_id: &str) {
        tracing::info!(device = %self.key, fault = %fault_id, "device links dropped by an iotemu fault");
        self.close(Some(super::conditions::error(
            super::conditions::CONNECTION_FORCED,
            format!("dropped by iotemu fault {fault_id}"),
        )));
    }

    /// Waits `delay` (an injected fault's), or until the channel closes: then `Err` with the
    /// reason [`DeviceChannel::closed`] gives.
    pub(crate) async fn hold(&self, delay: std::time::Duration) -> Result<(), Option<Error>> {
        tokio::select! {
            () = tokio::time::sleep(delay) => Ok(()),
            reason = self.closed() => Err(reason),
        }
    }

    /// Resolves when the channel closes, with the error a link should detach with (`None`:
    /// the connection is gone, nothing to send).
    pub(crate) async fn closed(&self) -> Option<Error> {
        let mut closed = self.closed.subscribe();
        match closed.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().flatten(),
            Err(_) => None,
        }
    }

    /// The method request link attached; method calls go to it.
    pub(crate) fn route_methods(&self, tx: mpsc::Sender<MethodCall>) {
        self.routes().methods = Some(tx);
    }

    /// The twin response link attached; responses and (when subscribed) desired patches go to
    /// it.
    pub(crate) fn route_twin(&self, tx: mpsc::Sender<AnyMessage>) {
        self.routes().twin = Some(tx);
        self.twin_attached.notify_waiters();
    }

    /// The module input link attached.
    pub(crate) fn route_inputs(&self, tx: mpsc::Sender<Box<ModuleInput>>) {
        self.routes().inputs = Some(tx);
    }

    /// Whether desired-property patches are pushed (twin `PUT` / `DELETE`).
    pub(crate) fn subscribe_desired(&self, subscribed: bool) {
        self.routes().desired_subscribed = subscribed;
    }

    /// A new C2D link: returns its generation; older C2D links see they were replaced.
    pub(crate) fn claim_c2d(&self) -> u64 {
        let mut routes = self.routes();
        routes.c2d_generation += 1;
        let generation = routes.c2d_generation;
        drop(routes);
        // Wakes the older link so it notices; the new one pumps anyway.
        self.c2d_available.notify_waiters();
        generation
    }

    pub(crate) fn c2d_generation(&self) -> u64 {
        self.routes().c2d_generation
    }

    /// The twin response link, waiting a little for it to attach (clients attach both twin
    /// links and send at once).
    pub(crate) async fn twin_replies(&self) -> Option<mpsc::Sender<AnyMessage>> {
        let deadline = tokio::time::Instant::now() + REPLY_LINK_WAIT;
        loop {
            let attached = self.twin_attached.notified();
            tokio::pin!(attached);
            attached.as_mut().enable();
            if let Some(tx) = self.routes().twin.clone().filter(|tx| !tx.is_closed()) {
                return Some(tx);
            }
            if tokio::time::timeout_at(deadline, attached).await.is_err() {
                return None;
            }
        }
    }

    /// Routes one push from the hub to the link that carries it; what no link takes is
    /// refused the way the hub expects (a method call: device not online).
    fn push(&self, pushed: Outbound) {
        match pushed {
            // A stored permit: the C2D link may be busy settling and look a moment later.
            Outbound::C2dAvailable => self.c2d_available.notify_one(),
            Outbound::Method(call) => {
                let tx = self.routes().methods.clone();
                match tx {
                    Some(tx) => {
                        if let Err(e) = tx.try_send(call) {
                            let call = match e {
                                mpsc::error::TrySendError::Full(c)
                                | mpsc::error::TrySendError::Closed(c) => c,
                            };
                            call.refuse();
                        }
                    }
                    None => call.refuse(),
                }
            }
            Outbound::DesiredPatch { version, patch } => {
                let tx = {
                    let routes = self.routes();
                    routes.twin.clone().filter(|_| routes.desired_subscribed)
                };
                if let Some(tx) = tx {
                    let _ = tx.try_send(device_twin::desired_patch(version, &patch));
                }
            }
            Outbound::ModuleInput(input) => {
                let tx = self.routes().inputs.clone();
                match tx {
                    Some(tx) => {
                        if let Err(e) = tx.try_send(input) {
                            let input = match e {
                                mpsc::error::TrySendError::Full(i)
                                | mpsc::error::TrySendError::Closed(i) => i,
                            };
                            let _ = input.delivered.send(false);
                        }
                    }
                    None => {
                        let _ = input.delivered.send(false);
                    }
                }
            }
        }
    }
}

/// Runs for the life of a channel: routes pushes, and closes the channel when the hub drops
/// the identity or its credential expires.
async fn pump(
    channel: Arc<DeviceChannel>,
    mut outbound: push_queue::Receiver<Outbound>,
    kicked: Arc<Notify>,
    auth: Arc<ConnectionAuth>,
) {
    let key = channel.key.clone();
    let expires = channel.identity.expires_at();
    let expired = auth.until_expired(move |auth, now| live_until(auth, &key, expires, now));
    tokio::pin!(expired);
    let closed = channel.closed();
    tokio::pin!(closed);
    let forced = || {
        conditions::error(
            DETACH_FORCED,
            "closed by the hub: a newer connection of this identity replaced it (400027), or the device was disabled or deleted",
        )
    };
    loop {
        tokio::select! {
            pushed = outbound.recv() => match pushed {
                Some(pushed) => channel.push(pushed),
                // The hub dropped this connection's entry (replaced or disconnected), which
                // may be seen before the kick itself.
                None => {
                    channel.close(Some(forced()));
                    break;
                }
            },
            _ = kicked.notified() => {
                channel.close(Some(forced()));
                break;
            }
            _ = &mut expired => {
                channel.close(Some(conditions::error(
                    UNAUTHORIZED,
                    "the token that authorised this device has expired (401003)",
                )));
                break;
            }
            _ = &mut closed => break,
        }
    }
    // Method calls still waiting are not answerable any more.
    while let Some(pushed) = outbound.try_recv() {
        if let Outbound::Method(call) = pushed {
            call.refuse();
        }
    }
}

/// Until when the connection may act as `key`: the latest live device grant for it, or the
/// credential it was first proven with (an X.509 certificate's end of validity).
fn live_until(
    auth: &ConnectionAuth,
    key: &str,
    first: Option<SystemTime>,
    now: SystemTime,
) -> Option<SystemTime> {
    auth.grants()
        .iter()
        .filter_map(|g| match g {
            Grant::Device(identity) if identity.connection_key() == key => identity.expires_at(),
            _ => None,
        })
        .chain(first)
        .filter(|at| *at > now)
        .max()
}

/// Routes a device link's attach: authorises it and starts the task of its kind, or refuses
/// it with the condition the Node client translates (§7).
pub(crate) async fn on_attach(
    attach: Attach,
    address: &Address,
    session: &mut ListenerSessionHandle,
    ctx: &Arc<SessionContext>,
    acceptor: &Acceptor,
    slot: LinkSlot,
) {
    let Some(target) = DeviceAddress::parse(address) else {
        let error = conditions::error(NOT_FOUND, format!("no device node at '{}'", address.raw));
        link::refuse(attach, session, acceptor, error).await;
        return;
    };
    // The client's role decides the direction: its sender is our receiver.
    let client_sends = attach.role == Role::Sender;
    if !client_sends && target.kind == DeviceLinkKind::Events && target.module_id.is_none() {
        let error = conditions::error(
            NOT_ALLOWED,
            format!("'{}' only takes a sender link", address.path),
        );
        link::refuse(attach, session, acceptor, error).await;
        return;
    }
    if client_sends && target.kind == DeviceLinkKind::C2d {
        let error = conditions::error(
            NOT_ALLOWED,
            format!("'{}' only takes a receiver link", address.path),
        );
        link::refuse(attach, session, acceptor, error).await;
        return;
    }
    let channel = match authorise(&target, address, ctx) {
        Ok(channel) => channel,
        Err(error) => {
            link::refuse(attach, session, acceptor, error).await;
            return;
        }
    };
    let who = channel.identity.identity_ref();
    if let Err(error) = device_model_id::record(&channel.hub, who, &attach).await {
        link::refuse(attach, session, acceptor, error).await;
        return;
    }
    let Some(endpoint) = link::accept(attach, session, acceptor).await else {
        return;
    };
    match (target.kind, endpoint) {
        (DeviceLinkKind::Events, LinkEndpoint::Receiver(receiver)) => {
            tokio::spawn(device_telemetry::serve(receiver, channel, slot));
        }
        (DeviceLinkKind::Events, LinkEndpoint::Sender(sender)) => {
            tokio::spawn(device_inputs::serve(sender, channel, slot));
        }
        (DeviceLinkKind::C2d, LinkEndpoint::Sender(sender)) => {
            tokio::spawn(device_c2d::serve(sender, channel, slot));
        }
        (DeviceLinkKind::Methods, LinkEndpoint::Sender(sender)) => {
            tokio::spawn(device_methods::serve_requests(sender, channel, slot));
        }
        (DeviceLinkKind::Methods, LinkEndpoint::Receiver(receiver)) => {
            tokio::spawn(device_methods::serve_responses(receiver, channel, slot));
        }
        (DeviceLinkKind::Twin, LinkEndpoint::Sender(sender)) => {
            tokio::spawn(device_twin::serve_responses(sender, channel, slot));
        }
        (DeviceLinkKind::Twin, LinkEndpoint::Receiver(receiver)) => {
            tokio::spawn(device_twin::serve_requests(receiver, channel, slot));
        }
        (_, endpoint) => {
            // Excluded above; answered rather than trusted.
            let error = conditions::error(NOT_ALLOWED, "this link direction is not served");
            tokio::spawn(link::close_with_error(endpoint, error));
        }
    }
}

/// The channel of the identity `target` names, if this connection proved it: a live CBS
/// device grant for exactly that identity, or the TLS client certificate.
fn authorise(
    target: &DeviceAddress,
    address: &Address,
    ctx: &SessionContext,
) -> Result<Arc<DeviceChannel>, Error> {
    let connection = &ctx.connection;
    let key = match &target.module_id {
        Some(module) => format!("{}/{module}", target.device_id),
        None => target.device_id.clone(),
    };
    if let Some(channel) = connection.devices.open_channel(&key) {
        return Ok(channel);
    }
    // Grants are kept in the credential clock's frame; a certificate presented now is judged
    // by the wall clock, then its remaining life ages with that clock (`crate::clock`).
    let now = connection.auth.now();
    // The device learns only IoT Hub's 401002 (as over MQTT and HTTPS); the reason is logged.
    let unauthorized = |reason: String| {
        tracing::info!(identity = %key, %reason, "AMQP device link unauthorized");
        conditions::error(UNAUTHORIZED, unauthorized_description())
    };
    let granted = connection
        .auth
        .grants()
        .into_iter()
        .filter_map(|g| match g {
            Grant::Device(identity) if identity.connection_key() == key => Some(identity),
            _ => None,
        })
        .filter(|identity| identity.expires_at().is_some_and(|at| at > now))
        .max_by_key(DeviceIdentity::expires_at);
    let (identity, hub) = match granted {
        Some(identity) => {
            let hub = connection
                .amqp
                .hubs
                .get(identity.hub())
                .cloned()
                .ok_or_else(|| unauthorized(format!("hub '{}' is not served", identity.hub())))?;
            (identity, hub)
        }
        None => {
            let peer = connection.auth.peer();
            if peer.certificates.is_empty() {
                return Err(unauthorized(format!(
                    "no credential for '{key}' on this connection: put a device token on $cbs first (or connect with the device's X.509 certificate)"
                )));
            }
            let host = address.host.clone().or_else(|| peer.server_name.clone());
            // Without a host name (no SNI: a client that dialled an IP address) the only hub
            // is meant, when there is one.
            let hubs = &connection.amqp.hubs;
            let hub = match (host.as_deref(), hubs.all()) {
                (Some(host), _) => hubs.get(host),
                (None, [only]) => Some(only),
                (None, _) => None,
            }
            .cloned()
            .ok_or_else(|| {
                unauthorized(format!(
                    "no hub named '{}' in this emulator",
                    host.unwrap_or_default()
                ))
            })?;
            let identity = hub
                .authenticate_device(
                    &target.device_id,
                    target.module_id.as_deref(),
                    Credential::ClientCertificates(&peer.certificates),
                    SystemTime::now(),
                )
                .map(|identity| identity.shifted(connection.auth.clock_offset()))
                .map_err(|e| unauthorized(e.to_string()))?;
            (identity, hub)
        }
    };
    Ok(connection
        .devices
        .channel(identity, hub, connection.auth.clone()))
}

/// The detach description of a refused device link: IoT Hub's error JSON, the shape the
/// service sends (`{"errorCode":401002,"message":"Unauthorized",…}`: the link terminal
/// exceptions in Azure/azure-iot-sdk-csharp#1251 and #3487).
pub(crate) fn unauthorized_description() -> String {
    let error = crate::hub::error::HubError::unauthorized();
    serde_json::json!({
        "errorCode": error.code,
        "message": error.message,
        "trackingId": uuid::Uuid::new_v4().to_string(),
        "timestampUtc": crate::timefmt::utc_timestamp(SystemTime::now()),
    })
    .to_string()
}

/// Detaches `endpoint` with the reason its channel closed (nothing to send when the
/// connection itself is gone).
pub(crate) async fn close_link(endpoint: LinkEndpoint, reason: Option<Error>) {
    if let Some(error) = reason {
        link::close_with_error(endpoint, error).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_device_link_carries_iot_hub_s_401002_json() {
        let json: serde_json::Value = serde_json::from_str(&unauthorized_description()).unwrap();
        assert_eq!(json["errorCode"], 401002);
        assert_eq!(json["message"], "Unauthorized");
        assert!(json["trackingId"].is_string() && json["timestampUtc"].is_string());
    }
}
