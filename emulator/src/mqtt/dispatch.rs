//! Routes what arrives on a connection to its API group's handler: each packet from the
//! client (PUBLISH by topic, via [`super::routes`]; SUBSCRIBE, UNSUBSCRIBE, PUBACK, PINGREQ,
//! DISCONNECT) and each push from the hub (desired patch, method call, C2D available, module
//! input). Replies accumulate in the [`Outbox`] for the session loop to write.

use std::sync::Arc;

use bytes::BytesMut;
use tokio::sync::Notify;

use super::MqttContext;
use super::c2d::C2d;
use super::codec::{self, Packet, Publish, QoS, UnsubAck};
use super::connect::{Client, identity_ref};
use super::outbox::Outbox;
use super::routes::{Inbound, classify_publish};
use super::session::CloseReason;
use super::{dps, methods, module_io, telemetry, twin};
use crate::faults::{FaultAction, FaultHit, FaultOperation, Refusal};
use crate::hub::Hub;
use crate::hub::connections::Outbound;
use crate::hub::error::HubError;
use crate::hub::methods::MethodCorrelation;
use crate::hub::push_queue;
use crate::hub::twin::requests::TwinRequest;

/// One connection's state after CONNECT.
pub(super) struct Dispatcher {
    client: Client,
    ctx: Arc<MqttContext>,
    pub out: Outbox,
    /// C2D delivery, for a device (not a module or DPS client).
    c2d: Option<C2d>,
    /// Direct method calls sent to the device and not answered yet.
    methods: MethodCorrelation,
    /// The connection key of a device's or module's persistent session (CleanSession 0),
    /// whose filters the hub keeps for its next connection; `None` for a clean session.
    persistent_session: Option<String>,
}

impl Dispatcher {
    /// The session of an authenticated `client`: restores a persistent session, writes the
    /// CONNACK and whatever C2D is waiting.
    pub(super) fn open(client: Client, ctx: Arc<MqttContext>, clean_session: bool) -> Dispatcher {
        let mut out = Outbox::new(client.name());
        // CleanSession 0 keeps a device's C2D subscription across connections (the SDKs
        // connect that way); CleanSession 1 forgets it.
        let (c2d, c2d_restored) = match client.device() {
            Some((identity, hub)) => {
                C2d::open(hub.clone(), identity_ref(identity), clean_session, &mut out)
            }
            None => (None, false),
        };
        // The hub keeps the rest of the session's filters too (twin responses, desired
        // patches, methods, inputs): the SDKs do not subscribe again when the session is
        // present.
        let (persistent_session, filters_restored) = match client.device() {
            Some((identity, hub)) => {
                restore_session(hub, identity.connection_key(), clean_session, &mut out)
            }
            None => (None, false),
        };
        let session_present = c2d_restored || filters_restored;
        out.write(Packet::ConnAck(codec::ConnAck::new(
            codec::ConnectReturnCode::Success,
            session_present,
        )));
        let mut dispatcher = Dispatcher {
            client,
            ctx,
            out,
            c2d,
            methods: MethodCorrelation::default(),
            persistent_session,
        };
        dispatcher.pump_c2d();
        dispatcher
    }

    pub(super) fn client(&self) -> &Client {
        &self.client
    }

    /// Fires when the hub closes this connection (replaced, device disabled or deleted).
    pub(super) fn kicked(&self) -> Option<Arc<Notify>> {
        match &self.client {
            Client::Device { kicked, .. } => Some(kicked.clone()),
            Client::Registration(_) => None,
        }
    }

    /// What the hub pushes to this device; DPS clients get nothing. Handed out once.
    pub(super) fn take_pushes(&mut self) -> Option<push_queue::Receiver<Outbound>> {
        match &mut self.client {
            Client::Device { pushes, .. } => pushes.take(),
            Client::Registration(_) => None,
        }
    }

    /// The connection ended: the hub no longer counts it, and C2D it did not settle goes
    /// back to the queue (when `self.c2d` drops, after the detach).
    pub(super) fn close(self) {
        if let Client::Device {
            identity,
            hub,
            connection_id,
            ..
        } = &self.client
        {
            hub.connections()
                .detach(&identity.connection_key(), *connection_id);
        }
    }

    /// Handles every complete packet in `rbuf`; an error ends the session.
    pub(super) async fn handle_buffered(&mut self, rbuf: &mut BytesMut) -> Result<(), CloseReason> {
        while let Some(packet) =
            codec::decode(rbuf, self.ctx.limits.max_packet_bytes).map_err(|e| e.to_string())?
        {
            self.handle(packet).await?;
        }
        Ok(())
    }

    async fn handle(&mut self, packet: Packet) -> Result<(), CloseReason> {
        match packet {
            Packet::Publish(publish) => self.on_publish(publish).await,
            Packet::Subscribe(subscribe) => {
                let principal = self.client.principal();
                let suback =
                    self.out
                        .subscriptions
                        .subscribe(principal, subscribe, &self.out.client);
                self.out.write(Packet::SubAck(suback));
                self.subscriptions_changed();
                self.pump_c2d();
                Ok(())
            }
            Packet::Unsubscribe(unsubscribe) => {
                self.out.subscriptions.unsubscribe(&unsubscribe.topics);
                self.out
                    .write(Packet::UnsubAck(UnsubAck::new(unsubscribe.pkid)));
                self.subscriptions_changed();
                Ok(())
            }
            Packet::PubAck(ack) => {
                self.out.acknowledged(ack.pkid);
                if let Some(c2d) = &mut self.c2d {
                    // Boxed, as every await below that telemetry does not take: inline, the
                    // rare paths' futures would size every connection's task (per-session
                    // memory, docs/benchmarks.md).
                    Box::pin(c2d.acknowledged(ack.pkid, &mut self.out)).await;
                }
                Ok(())
            }
            Packet::PingReq => {
                self.out.write(Packet::PingResp);
                Ok(())
            }
            Packet::Disconnect => Err("client sent DISCONNECT".into()),
            other => Err(format!("unexpected packet {other:?}")),
        }
    }

    /// Handles a PUBLISH. A write is awaited until it is durable before its PUBACK and reply
    /// go out; meanwhile this connection reads nothing more, so acknowledgments keep their
    /// order.
    async fn on_publish(&mut self, publish: Publish) -> Result<(), CloseReason> {
        if publish.qos == QoS::ExactlyOnce {
            return Err("QoS 2 PUBLISH is not supported by IoT Hub; closing as Azure does".into());
        }
        let Some(route) = classify_publish(self.client.principal(), &publish.topic) else {
            return Err(format!(
                "PUBLISH to a topic this client may not use: {}",
                publish.topic
            ));
        };
        let ack = (publish.qos == QoS::AtLeastOnce).then_some(publish.pkid);
        tracing::debug!(client = %self.out.client, topic = %publish.topic, qos = publish.qos as u8, bytes = publish.payload.len(), "publish received");
        // An injected fault (docs/faults.md) acts before the request (refuse, drop, stall:
        // nothing is stored) or after it was stored and answered (delay, drop after ack).
        let fault = self.hub_fault(&route);
        if let Some(hit) = &fault {
            match hit.action {
                FaultAction::Refuse(refusal) => return self.refuse(&route, refusal, &hit.id, ack),
                FaultAction::Drop { after_ack: false } => {
                    return Err(format!(
                        "dropped by iotemu fault {} before the request",
                        hit.id
                    ));
                }
                FaultAction::Stall => return Ok(()),
                FaultAction::Delay(_) | FaultAction::Drop { after_ack: true } => {}
            }
        }
        self.serve_publish(route, &publish, ack).await?;
        match fault.map(|hit| (hit.action, hit.id)) {
            Some((FaultAction::Delay(delay), _)) => {
                // Boxed: a rare await need not size every session's task.
                Box::pin(crate::faults::hold(delay, &self.ctx.shutdown)).await;
            }
            Some((FaultAction::Drop { after_ack: true }, id)) => {
                // The session writes what was answered (this PUBACK) before it closes.
                return Err(format!("dropped by iotemu fault {id} after the answer"));
            }
            _ => {}
        }
        Ok(())
    }

    /// The hub fault that hits this device request, if any (telemetry and twin requests).
    fn hub_fault(&self, route: &Inbound<'_>) -> Option<FaultHit> {
        let operation = match route {
            Inbound::Telemetry { .. } => FaultOperation::HubTelemetry,
            Inbound::TwinGet { .. } => FaultOperation::HubTwinGet,
            Inbound::TwinReportedPatch { .. } => FaultOperation::HubTwinPatch,
            _ => return None,
        };
        let (identity, hub) = self.client.device()?;
        hub.fault(operation, identity.device_id())
    }

    /// A refusal fault's answer: a twin request gets its error response; telemetry, which
    /// MQTT cannot refuse one message of, closes the connection without a PUBACK, as IoT Hub
    /// does with a D2C message it refuses. Nothing is stored either way.
    fn refuse(
        &mut self,
        route: &Inbound<'_>,
        refusal: Refusal,
        fault_id: &str,
        ack: Option<u16>,
    ) -> Result<(), CloseReason> {
        match route {
            Inbound::TwinGet { rid } | Inbound::TwinReportedPatch { rid } => {
                self.out.ack(ack);
                twin::error(&mut self.out, rid, &HubError::from_fault(refusal, fault_id));
                Ok(())
            }
            _ => Err(format!(
                "telemetry refused by iotemu fault {fault_id} ({})",
                refusal.status()
            )),
        }
    }

    /// Serves a PUBLISH by its route.
    async fn serve_publish(
        &mut self,
        route: Inbound<'_>,
        publish: &Publish,
        ack: Option<u16>,
    ) -> Result<(), CloseReason> {
        let out = &mut self.out;
        match (route, &self.client) {
            (Inbound::DpsRegister { rid }, Client::Registration(who)) => {
                dps::register(&self.ctx.dps, who, rid, &publish.payload, ack, out);
            }
            (Inbound::DpsPoll { rid, operation_id }, Client::Registration(who)) => {
                Box::pin(dps::poll(&self.ctx.dps, who, rid, &operation_id, ack, out)).await;
            }
            (Inbound::Telemetry { property_bag }, Client::Device { identity, hub, .. }) => {
                let body = publish.payload.clone();
                telemetry::publish(hub, identity, property_bag, publish.retain, body, ack, out)?;
            }
            (Inbound::TwinGet { rid }, Client::Device { identity, hub, .. }) => {
                Box::pin(twin::request(
                    hub,
                    identity,
                    TwinRequest::Get,
                    rid,
                    ack,
                    out,
                ))
                .await;
            }
            (Inbound::TwinReportedPatch { rid }, Client::Device { identity, hub, .. }) => {
                let request = TwinRequest::PatchReported(&publish.payload);
                Box::pin(twin::request(hub, identity, request, rid, ack, out)).await;
            }
            (Inbound::MethodResponse { rid, status }, Client::Device { .. }) => {
                methods::response(&mut self.methods, rid, status, &publish.payload, ack, out);
            }
            (route, _) => return Err(format!("request {route:?} from the wrong kind of client")),
        }
        Ok(())
    }

    /// Something the hub pushed to this device.
    pub(super) fn on_push(&mut self, pushed: Outbound) {
        match pushed {
            Outbound::DesiredPatch { version, patch } => {
                twin::push_desired(&mut self.out, version, patch)
            }
            Outbound::Method(call) => methods::request(&mut self.methods, call, &mut self.out),
            Outbound::C2dAvailable => self.pump_c2d(),
            Outbound::ModuleInput(input) => {
                let identity = self.client.device().map(|(identity, _)| identity);
                module_io::deliver(identity, input, &mut self.out);
            }
        }
    }

    /// Waits out a hold a fault put on what is pending (cut short by shutdown).
    pub(super) async fn hold_if_asked(&mut self) {
        if let Some(delay) = self.out.take_hold() {
            Box::pin(crate::faults::hold(delay, &self.ctx.shutdown)).await;
        }
    }

    fn pump_c2d(&mut self) {
        if let Some(c2d) = &mut self.c2d {
            c2d.pump(&mut self.out);
        }
    }

    fn subscriptions_changed(&self) {
        if let Some(c2d) = &self.c2d {
            c2d.subscriptions_changed(&self.out);
        }
        if let (Some(key), Some((_, hub))) = (&self.persistent_session, self.client.device()) {
            let filters = self.out.subscriptions.filters();
            hub.remember_session_filters(
                key,
                filters.map(|(f, q)| (f.to_owned(), q as u8)).collect(),
            );
        }
    }
}

/// A clean session forgets what the identity's persistent session held; a persistent one gets
/// its remembered filters back (those C2D did not restore already). Returns the session's key
/// when it is persistent, and whether any filter came back.
fn restore_session(
    hub: &Hub,
    key: String,
    clean_session: bool,
    out: &mut Outbox,
) -> (Option<String>, bool) {
    if clean_session {
        hub.forget_session(&key);
        return (None, false);
    }
    let mut restored = false;
    for (filter, qos) in hub.session_filters(&key) {
        if !out.subscriptions.holds(&filter) {
            let qos = if qos == 0 {
                QoS::AtMostOnce
            } else {
                QoS::AtLeastOnce
            };
            out.subscriptions.restore(filter, qos);
            restored = true;
        }
    }
    (Some(key), restored)
}
