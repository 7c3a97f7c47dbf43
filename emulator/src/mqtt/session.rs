//! One MQTT connection, from CONNECT to close.
//!
//! ```text
//! read CONNECT (timeout) → protocol 4? → username → client id matches? → auth
//!   → CONNACK 0, or 1/4/5/3 and close
//! loop: socket bytes → decode every complete packet → handle → replies into one buffer
//!       → one write + flush per read batch
//!       ends on: peer close, DISCONNECT, protocol/ACL violation, keep-alive timeout
//!       (1.5 × keep-alive), SAS expiry, replacement by a newer connection, shutdown
//! ```
//!
//! Requests (DPS register/poll, telemetry) are handled inline by calling the domain; a PUBACK
//! is written only after the domain has stored what it acknowledges.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use rustls_pki_types::CertificateDer;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::MqttContext;
use super::codec::{
    self, CodecError, ConnAck, Connect, ConnectReturnCode, Packet, Protocol, PubAck, Publish, QoS,
    SubAck, SubscribeReasonCode, UnsubAck,
};
use super::properties::{encode_c2d_property_bag, encode_property_bag, parse_property_bag};
use super::routes::{Inbound, Principal, classify_publish, may_subscribe};
use super::topic::filter_matches;
use super::username::{self, ConnectTarget};
use crate::auth::{self, AuthError, Credential, DeviceIdentity};
use crate::dps::attestation::RegistrationIdentity;
use crate::dps::error::DpsError;
use crate::dps::registration::RegistrationReply;
use crate::hub::connections::{ConnectionLease, Outbound};
use crate::hub::error::HubError;
use crate::hub::methods::{MethodCall, MethodRefusal, MethodResponse};
use crate::hub::module::ModuleInput;
use crate::hub::telemetry::IncomingMessage;
use crate::hub::{Hub, IdentityRef};

/// What the transport knows about the peer before MQTT starts.
pub struct PeerInfo {
    pub remote: SocketAddr,
    /// The certificate chain the client sent in the TLS handshake, leaf first (may be empty).
    pub certificates: Vec<CertificateDer<'static>>,
}

enum Client {
    Registration(RegistrationIdentity),
    Device {
        identity: DeviceIdentity,
        hub: Arc<Hub>,
        lease: ConnectionLease,
    },
}

impl Client {
    fn principal(&self) -> Principal<'_> {
        match self {
            Client::Registration(_) => Principal::Registration,
            Client::Device { identity, .. } => Principal::Device {
                device_id: identity.device_id(),
                module_id: identity.module_id(),
            },
        }
    }

    fn expires_at(&self) -> Option<SystemTime> {
        match self {
            Client::Registration(r) => r.expires_at(),
            Client::Device { identity, .. } => identity.expires_at(),
        }
    }

    fn name(&self) -> String {
        match self {
            Client::Registration(r) => format!("dps:{}", r.registration_id()),
            Client::Device { identity, .. } => {
                format!("{}:{}", identity.hub(), identity.connection_key())
            }
        }
    }
}

/// Distinct topic filters one session may hold. The SDKs use four or five; without a cap a
/// client could grow its session (and the cost of every delivery) without bound by
/// subscribing to ever new narrower filters.
const MAX_SUBSCRIPTIONS: usize = 50;

/// Unacknowledged QoS 1 publishes remembered per connection (also keeps packet-id search short).
const MAX_AWAITING_ACK: usize = 256;

type MethodReply = tokio::sync::oneshot::Sender<Result<MethodResponse, MethodRefusal>>;

/// Why a session ended; logged once per connection.
type CloseReason = String;

/// Runs one connection to completion over any byte stream (TLS today, WebSocket later).
pub async fn run_session<S>(mut stream: S, peer: PeerInfo, ctx: Arc<MqttContext>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut rbuf = BytesMut::with_capacity(4096);
    let connect = match read_connect(&mut stream, &mut rbuf, &ctx).await {
        Ok(connect) => connect,
        Err(ConnectFailure::Refuse(level)) => {
            tracing::warn!(remote = %peer.remote, level, code = 1, "connection refused: only MQTT 3.1.1 (level 4) is supported");
            let mut wbuf = BytesMut::new();
            let refusal = ConnAck::new(ConnectReturnCode::RefusedProtocolVersion, false);
            let _ = codec::encode(&Packet::ConnAck(refusal), &mut wbuf);
            let _ = stream.write_all(&wbuf).await;
            close(&mut stream).await;
            return;
        }
        Err(ConnectFailure::Close(reason)) => {
            tracing::info!(remote = %peer.remote, %reason, "connection closed before CONNECT");
            return;
        }
    };
    let client = match authenticate(&connect, &peer, &ctx) {
        Ok(client) => client,
        Err(code) => {
            let mut wbuf = BytesMut::new();
            let _ = codec::encode(&Packet::ConnAck(ConnAck::new(code, false)), &mut wbuf);
            let _ = stream.write_all(&wbuf).await;
            close(&mut stream).await;
            return;
        }
    };
    let keep_alive = match connect.keep_alive {
        0 => ctx.limits.max_keep_alive_timeout,
        secs => {
            Duration::from_millis(u64::from(secs) * 1500).min(ctx.limits.max_keep_alive_timeout)
        }
    };
    let name = client.name();
    tracing::info!(remote = %peer.remote, client = %name, keep_alive = connect.keep_alive, "client connected");

    let mut session = Session {
        client,
        ctx: ctx.clone(),
        subscriptions: Vec::new(),
        next_packet_id: 0,
        awaiting_ack: Vec::new(),
        c2d_in_flight: HashMap::new(),
        pending_methods: HashMap::new(),
        next_method_id: 0,
        clean_session: true,
        wbuf: BytesMut::new(),
    };
    // CleanSession 0 keeps a device's C2D subscription across connections (the SDKs
    // connect that way); CleanSession 1 forgets it.
    let session_present = session.restore_persistent_session(connect.clean_session);
    let _ = codec::encode(
        &Packet::ConnAck(ConnAck::new(ConnectReturnCode::Success, session_present)),
        &mut session.wbuf,
    );
    session.clean_session = connect.clean_session;
    session.pump_c2d();
    let reason = session.serve(&mut stream, rbuf, keep_alive).await;
    if let Client::Device {
        identity,
        hub,
        lease,
    } = &session.client
    {
        hub.connections()
            .detach(&identity.connection_key(), lease.id);
        // Delivered but not acknowledged: back to the queue for the next connection.
        for message_id in session.c2d_in_flight.values() {
            hub.c2d_release(identity.device_id(), message_id);
        }
    }
    tracing::info!(remote = %peer.remote, client = %name, %reason, "client disconnected");
    close(&mut stream).await;
}

/// Why no session starts: a protocol level to refuse with CONNACK 1, or anything else, which
/// closes the connection without a reply (MQTT 3.1.1 §3.1.4-1).
enum ConnectFailure {
    Refuse(u8),
    Close(String),
}

/// Reads until a whole first packet is buffered; it must be a CONNECT.
async fn read_connect<S>(
    stream: &mut S,
    rbuf: &mut BytesMut,
    ctx: &MqttContext,
) -> Result<Connect, ConnectFailure>
where
    S: AsyncRead + Unpin,
{
    let close = |reason: String| Err(ConnectFailure::Close(reason));
    let deadline = Instant::now() + ctx.limits.connect_timeout;
    loop {
        // Anything but a CONNECT header (type 1, flags 0) is refused from its first byte,
        // instead of waiting for a packet that a non-MQTT peer will never complete.
        if rbuf.first().is_some_and(|b| *b != 0x10) {
            return close("first packet is not CONNECT".into());
        }
        match codec::decode(rbuf, ctx.limits.max_packet_bytes) {
            Ok(Some(Packet::Connect(connect))) => return Ok(connect),
            Ok(Some(other)) => return close(format!("first packet was not CONNECT: {other:?}")),
            Ok(None) => {}
            Err(CodecError::UnsupportedProtocolLevel(level)) => {
                return Err(ConnectFailure::Refuse(level));
            }
            Err(e) => return close(e.to_string()),
        }
        match tokio::time::timeout_at(deadline, stream.read_buf(rbuf)).await {
            Ok(Ok(0)) => return close("peer closed".into()),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return close(e.to_string()),
            Err(_) => return close("no CONNECT within the timeout".into()),
        }
    }
}

/// CONNECT → identity, or the CONNACK code to refuse with (logged with the reason).
fn authenticate(
    connect: &Connect,
    peer: &PeerInfo,
    ctx: &MqttContext,
) -> Result<Client, ConnectReturnCode> {
    let refuse = |code: ConnectReturnCode, reason: &dyn std::fmt::Display| {
        tracing::warn!(remote = %peer.remote, client_id = %connect.client_id, %reason, code = code as u8, "connection refused");
        code
    };
    if connect.protocol != Protocol::V4 {
        return Err(refuse(
            ConnectReturnCode::RefusedProtocolVersion,
            &"only MQTT 3.1.1 is supported",
        ));
    }
    let (user, password) = connect
        .login
        .as_ref()
        .map(|l| (l.username.as_str(), l.password.as_str()))
        .unwrap_or(("", ""));
    let Some(target) = username::parse(user) else {
        return Err(refuse(
            ConnectReturnCode::BadUserNamePassword,
            &format!("unrecognised username '{user}'"),
        ));
    };
    if connect.client_id != target.expected_client_id() {
        return Err(refuse(
            ConnectReturnCode::BadUserNamePassword,
            &format!(
                "client id '{}' does not match the username's '{}'",
                connect.client_id,
                target.expected_client_id()
            ),
        ));
    }
    let credential = if !password.is_empty() {
        Credential::Sas(password)
    } else if !peer.certificates.is_empty() {
        Credential::ClientCertificates(&peer.certificates)
    } else {
        Credential::None
    };
    let now = SystemTime::now();
    let result = match &target {
        ConnectTarget::Dps {
            id_scope,
            registration_id,
        } => ctx
            .dps
            .authenticate_registration(id_scope, registration_id, credential, now)
            .map(Client::Registration),
        ConnectTarget::Hub {
            host,
            device_id,
            module_id,
        } => auth::authenticate_device(
            &ctx.hubs,
            host,
            device_id,
            module_id.as_deref(),
            credential,
            now,
        )
        .and_then(|identity| {
            let hub = ctx
                .hubs
                .get(identity.hub())
                .cloned()
                .ok_or_else(|| AuthError::UnknownHub(identity.hub().to_owned()))?;
            let lease = hub.connections().attach(&identity.connection_key());
            Ok(Client::Device {
                identity,
                hub,
                lease,
            })
        }),
    };
    result.map_err(|e| {
        let code = match e {
            // azure-iot-sdk-c maps 3 to "device disabled".
            AuthError::DeviceDisabled(_) => ConnectReturnCode::ServiceUnavailable,
            // The client id is the registration id, and it can never be valid.
            AuthError::InvalidRegistrationId(_) => ConnectReturnCode::BadClientId,
            _ => ConnectReturnCode::NotAuthorized,
        };
        refuse(code, &e)
    })
}

async fn close<S: AsyncWrite + Unpin>(stream: &mut S) {
    // Sends TLS close_notify; a peer that is gone must not hold the task.
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
}

struct Session {
    client: Client,
    ctx: Arc<MqttContext>,
    subscriptions: Vec<(String, QoS)>,
    next_packet_id: u16,
    /// Packet ids of our QoS 1 publishes the client has not acknowledged yet.
    awaiting_ack: Vec<u16>,
    /// Cloud-to-device messages out for delivery, by packet id (completed on PUBACK).
    c2d_in_flight: HashMap<u16, String>,
    /// Whether this connection asked for a clean session.
    clean_session: bool,
    /// Direct method calls sent to the device, by `$rid`, waiting for its answer.
    pending_methods: HashMap<String, MethodReply>,
    next_method_id: u64,
    wbuf: BytesMut,
}

impl Session {
    async fn serve<S>(
        &mut self,
        stream: &mut S,
        mut rbuf: BytesMut,
        keep_alive: Duration,
    ) -> CloseReason
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut shutdown = self.ctx.shutdown.clone();
        let kicked = match &self.client {
            Client::Device { lease, .. } => Some(lease.kicked.clone()),
            Client::Registration(_) => None,
        };
        // The hub's pushes for this device (desired patches); DPS clients get none.
        let mut outbound = match &mut self.client {
            Client::Device { lease, .. } => Some(std::mem::replace(
                &mut lease.outbound,
                tokio::sync::mpsc::channel(1).1,
            )),
            Client::Registration(_) => None,
        };
        // Checked: a credential valid for millennia must not overflow the clock; no
        // representable deadline means none to enforce.
        let token_deadline = self.client.expires_at().and_then(|at| {
            let left = at
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO);
            Instant::now().checked_add(left)
        });
        let mut last_heard = Instant::now();
        // Packets a client sent right behind its CONNECT, before seeing the CONNACK (MQTT
        // 3.1.1 §3.1.4 allows it), arrived with it and are already buffered.
        if let Err(reason) = self.handle_buffered(&mut rbuf).await {
            let _ = stream.write_all(&self.wbuf).await;
            return reason;
        }
        loop {
            if !self.wbuf.is_empty() {
                if let Err(e) = stream.write_all(&self.wbuf).await {
                    return format!("write failed: {e}");
                }
                if let Err(e) = stream.flush().await {
                    return format!("write failed: {e}");
                }
                self.wbuf.clear();
            }
            tokio::select! {
                read = stream.read_buf(&mut rbuf) => {
                    match read {
                        Ok(0) => return "peer closed the connection".into(),
                        Ok(_) => last_heard = Instant::now(),
                        Err(e) => return format!("read failed: {e}"),
                    }
                    if let Err(reason) = self.handle_buffered(&mut rbuf).await {
                        // Flush what was already answered (e.g. SUBACKs) first.
                        let _ = stream.write_all(&self.wbuf).await;
                        return reason;
                    }
                }
                _ = tokio::time::sleep_until(last_heard + keep_alive) => {
                    return "keep-alive timeout".into();
                }
                _ = async {
                    match token_deadline {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => return "SAS token expired (401003)".into(),
                _ = async {
                    match &kicked {
                        Some(kicked) => kicked.notified().await,
                        None => std::future::pending().await,
                    }
                } => return "closed by the hub: a newer connection replaced it (400027), or the device was disabled or deleted".into(),
                pushed = async {
                    match outbound.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => match pushed {
                    Some(Outbound::DesiredPatch { version, patch }) => {
                        self.deliver(
                            format!("$iothub/twin/PATCH/properties/desired/?$version={version}"),
                            patch.to_string().into(),
                        );
                    }
                    Some(Outbound::Method(call)) => self.start_method(call),
                    Some(Outbound::C2dAvailable) => self.pump_c2d(),
                    Some(Outbound::ModuleInput(input)) => self.deliver_module_input(input),
                    None => outbound = None,
                },
                _ = shutdown.recv() => return "emulator shutting down".into(),
            }
        }
    }

    /// Handles every complete packet in `rbuf`, replies going to `wbuf`; an error ends the
    /// session.
    async fn handle_buffered(&mut self, rbuf: &mut BytesMut) -> Result<(), CloseReason> {
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
                let mut codes = Vec::with_capacity(subscribe.filters.len());
                for filter in subscribe.filters {
                    let held = self.subscriptions.iter().any(|(f, _)| f == &filter.path);
                    if !held && self.subscriptions.len() >= MAX_SUBSCRIPTIONS {
                        tracing::warn!(client = %self.client.name(), filter = %filter.path, "subscription refused: {MAX_SUBSCRIPTIONS} filters held already");
                        codes.push(SubscribeReasonCode::Failure);
                    } else if may_subscribe(principal, &filter.path) {
                        // IoT Hub and DPS grant at most QoS 1.
                        let qos = if filter.qos == QoS::AtMostOnce {
                            QoS::AtMostOnce
                        } else {
                            QoS::AtLeastOnce
                        };
                        self.subscriptions.retain(|(f, _)| f != &filter.path);
                        self.subscriptions.push((filter.path, qos));
                        codes.push(SubscribeReasonCode::Success(qos));
                    } else {
                        tracing::warn!(client = %self.client.name(), filter = %filter.path, "subscription refused");
                        codes.push(SubscribeReasonCode::Failure);
                    }
                }
                self.write(Packet::SubAck(SubAck::new(subscribe.pkid, codes)));
                self.remember_c2d_subscription();
                self.pump_c2d();
                Ok(())
            }
            Packet::Unsubscribe(unsubscribe) => {
                self.subscriptions
                    .retain(|(f, _)| !unsubscribe.topics.contains(f));
                self.write(Packet::UnsubAck(UnsubAck::new(unsubscribe.pkid)));
                self.remember_c2d_subscription();
                Ok(())
            }
            Packet::PubAck(ack) => {
                self.awaiting_ack.retain(|id| *id != ack.pkid);
                if let (Some(message_id), Client::Device { identity, hub, .. }) =
                    (self.c2d_in_flight.remove(&ack.pkid), &self.client)
                {
                    let (hub, device_id) = (hub.clone(), identity.device_id().to_owned());
                    // Nothing is acknowledged to the device; a completion that is not stored
                    // leaves the message queued, to be delivered again.
                    let completed = match hub.c2d_complete(&device_id, &message_id) {
                        Ok(pending) => pending.durable().await.map_err(HubError::from),
                        Err(e) => Err(e),
                    };
                    if let Err(e) = completed {
                        tracing::error!(device_id, message_id, error = %e, "a C2D completion could not be stored");
                    }
                    self.pump_c2d();
                }
                Ok(())
            }
            Packet::PingReq => {
                self.write(Packet::PingResp);
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
        tracing::debug!(client = %self.client.name(), topic = %publish.topic, qos = publish.qos as u8, bytes = publish.payload.len(), "publish received");
        match (route, &self.client) {
            (Inbound::DpsRegister { rid }, Client::Registration(who)) => {
                let reply = self.ctx.dps.register(who, &publish.payload);
                self.ack(ack);
                self.reply_dps(rid, reply);
            }
            (Inbound::DpsPoll { rid, operation_id }, Client::Registration(who)) => {
                let dps = self.ctx.dps.clone();
                let reply = match dps.operation_status(who, &operation_id) {
                    Ok(pending) => pending.durable().await.map_err(DpsError::from),
                    Err(e) => Err(e),
                };
                self.ack(ack);
                self.reply_dps(rid, reply);
            }
            (Inbound::Telemetry { property_bag }, Client::Device { identity, hub, .. }) => {
                let (system, properties) = parse_property_bag(property_bag)?;
                let mut properties = properties;
                if publish.retain {
                    // RETAIN is not kept; IoT Hub forwards it as a property instead.
                    properties.insert("mqtt-retain".into(), "true".into());
                }
                let message = IncomingMessage {
                    body: publish.payload,
                    system,
                    properties,
                };
                hub.accept_telemetry(identity, message)
                    .map_err(|e| format!("telemetry refused: {e}"))?;
                self.ack(ack);
            }
            (Inbound::TwinGet { rid }, Client::Device { identity, hub, .. }) => {
                let who = IdentityRef {
                    device_id: identity.device_id(),
                    module_id: identity.module_id(),
                };
                let result = hub.twin_of(who).map(|t| t.device_view());
                self.ack(ack);
                match result {
                    Ok(view) => self.deliver(
                        format!("$iothub/twin/res/200/?$rid={rid}"),
                        view.to_string().into(),
                    ),
                    Err(e) => self.twin_error(rid, &e),
                }
            }
            (Inbound::TwinReportedPatch { rid }, Client::Device { identity, hub, .. }) => {
                let hub = hub.clone();
                let result = match hub.patch_reported(identity, &publish.payload) {
                    Ok(pending) => pending.durable().await.map_err(HubError::from),
                    Err(e) => Err(e),
                };
                self.ack(ack);
                match result {
                    // 204 with an empty body and the new version (protocol.md §5.6).
                    Ok(version) => self.deliver(
                        format!("$iothub/twin/res/204/?$rid={rid}&$version={version}"),
                        Bytes::new(),
                    ),
                    Err(e) => self.twin_error(rid, &e),
                }
            }
            (Inbound::MethodResponse { rid, status }, Client::Device { .. }) => {
                self.ack(ack);
                // An answer to nothing pending (late, or made up) is dropped, as IoT Hub does.
                if let Some(reply) = self.pending_methods.remove(rid) {
                    let payload = if publish.payload.iter().all(u8::is_ascii_whitespace) {
                        Value::Null
                    } else {
                        serde_json::from_slice(&publish.payload).unwrap_or_else(|_| {
                            Value::String(String::from_utf8_lossy(&publish.payload).into_owned())
                        })
                    };
                    let status = status.parse().unwrap_or(500);
                    let _ = reply.send(Ok(MethodResponse { status, payload }));
                }
            }
            (route, _) => return Err(format!("request {route:?} from the wrong kind of client")),
        }
        Ok(())
    }

    /// The QoS at which C2D messages reach this device, if it subscribed to them.
    fn c2d_qos(&self) -> Option<QoS> {
        let Client::Device { identity, .. } = &self.client else {
            return None;
        };
        if identity.module_id().is_some() {
            return None;
        }
        let topic = format!("devices/{}/messages/devicebound/", identity.device_id());
        self.subscriptions
            .iter()
            .filter(|(filter, _)| filter_matches(filter, &topic))
            .map(|(_, qos)| *qos)
            .max_by_key(|q| *q as u8)
    }

    /// Delivers queued C2D messages while the device is subscribed, a few in flight at a
    /// time; each stays queued until its PUBACK.
    fn pump_c2d(&mut self) {
        const WINDOW: usize = 16;
        let Some(qos) = self.c2d_qos() else { return };
        let Client::Device { identity, hub, .. } = &self.client else {
            return;
        };
        let (device_id, hub) = (identity.device_id().to_owned(), hub.clone());
        while self.c2d_in_flight.len() < WINDOW {
            let Some(queued) = hub.c2d_take(&device_id) else {
                break;
            };
            let topic = format!(
                "devices/{device_id}/messages/devicebound/{}",
                encode_c2d_property_bag(&device_id, &queued)
            );
            let mut publish = Publish::from_bytes(topic, qos, queued.message.body.clone());
            publish.dup = queued.delivery_count > 1;
            if qos == QoS::AtLeastOnce {
                publish.pkid = self.allocate_packet_id();
                self.awaiting_ack.push(publish.pkid);
                self.c2d_in_flight.insert(publish.pkid, queued.id.clone());
            } else {
                // At QoS 0 nothing will acknowledge it: sent is done. Nobody is told, so the
                // completion is not waited for (it is durable with the next fsync).
                match hub.c2d_complete(&device_id, &queued.id) {
                    Ok(pending) => drop(pending.into_value_unawaited()),
                    Err(e) => {
                        tracing::error!(device_id, error = %e, "a QoS 0 C2D completion could not be stored")
                    }
                }
            }
            self.write(Packet::Publish(publish));
        }
    }

    /// With CleanSession 0, whether the device is subscribed to C2D outlives the connection.
    fn remember_c2d_subscription(&self) {
        if let Client::Device { identity, hub, .. } = &self.client
            && !self.clean_session
        {
            hub.set_persistent_c2d_subscription(identity.device_id(), self.c2d_qos().is_some());
        }
    }

    /// Restores a persistent C2D subscription; returns the CONNACK's session-present flag.
    fn restore_persistent_session(&mut self, clean_session: bool) -> bool {
        let Client::Device { identity, hub, .. } = &self.client else {
            return false;
        };
        if identity.module_id().is_some() {
            return false;
        }
        let device_id = identity.device_id().to_owned();
        if clean_session {
            hub.set_persistent_c2d_subscription(&device_id, false);
            return false;
        }
        if !hub.has_persistent_c2d_subscription(&device_id) {
            return false;
        }
        self.subscriptions.push((
            format!("devices/{device_id}/messages/devicebound/#"),
            QoS::AtLeastOnce,
        ));
        true
    }

    /// Publishes a message to one of a module's inputs, if it subscribed to them; the hub
    /// learns whether it went out.
    fn deliver_module_input(&mut self, input: Box<ModuleInput>) {
        let Client::Device { identity, .. } = &self.client else {
            let _ = input.delivered.send(false);
            return;
        };
        let Some(module_id) = identity.module_id() else {
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
        let subscribed = self
            .subscriptions
            .iter()
            .any(|(f, _)| filter_matches(f, &topic));
        if subscribed {
            self.deliver(topic, input.message.body.clone());
        }
        let _ = input.delivered.send(subscribed);
    }

    /// Sends a method request to the device if it subscribed to methods (404103 otherwise).
    /// Method requests are QoS 0 (iot-mqtt-connect-to-iot-hub.md).
    fn start_method(&mut self, call: MethodCall) {
        self.next_method_id += 1;
        let rid = format!("{:x}", self.next_method_id);
        let topic = format!("$iothub/methods/POST/{}/?$rid={rid}", call.name);
        if !self
            .subscriptions
            .iter()
            .any(|(f, _)| filter_matches(f, &topic))
        {
            let _ = call.reply.send(Err(MethodRefusal::NotSubscribed));
            return;
        }
        self.write(Packet::Publish(Publish::new(
            topic,
            QoS::AtMostOnce,
            call.payload.to_string(),
        )));
        self.pending_methods.insert(rid, call.reply);
    }

    /// Twin errors travel as the status in the topic and `{"errorCode","message"}` (Node only
    /// looks at the body).
    fn twin_error(&mut self, rid: &str, error: &HubError) {
        let body = serde_json::json!({ "errorCode": error.code, "message": error.message });
        self.deliver(
            format!("$iothub/twin/res/{}/?$rid={rid}", error.status()),
            body.to_string().into(),
        );
    }

    fn ack(&mut self, packet_id: Option<u16>) {
        if let Some(id) = packet_id {
            self.write(Packet::PubAck(PubAck::new(id)));
        }
    }

    /// `$dps/registrations/res/{status}/?$rid=…[&retry-after=…]` — `$rid` must come first,
    /// the Python SDK drops anything before it (protocol.md §2.5).
    fn reply_dps(&mut self, rid: &str, reply: Result<RegistrationReply, DpsError>) {
        let (status, retry_after, body) = match reply {
            Ok(r) => (
                r.status,
                r.retry_after,
                serde_json::to_vec(&r.body).unwrap_or_default(),
            ),
            Err(e) => {
                tracing::info!(client = %self.client.name(), error = %e, "DPS request failed");
                (
                    e.status(),
                    e.retry_after(),
                    e.to_json().to_string().into_bytes(),
                )
            }
        };
        let mut topic = format!("$dps/registrations/res/{status}/?$rid={rid}");
        if let Some(seconds) = retry_after {
            topic.push_str(&format!("&retry-after={seconds}"));
        }
        self.deliver(topic, body.into());
    }

    /// Publishes to the client at the best QoS of its matching subscriptions (max 1); not at
    /// all if it has none, as a broker would.
    fn deliver(&mut self, topic: String, payload: Bytes) {
        let qos = self
            .subscriptions
            .iter()
            .filter(|(filter, _)| filter_matches(filter, &topic))
            .map(|(_, qos)| *qos)
            .max_by_key(|q| *q as u8);
        let Some(qos) = qos else {
            tracing::debug!(client = %self.client.name(), %topic, "no subscription matches; response dropped");
            return;
        };
        tracing::debug!(client = %self.client.name(), %topic, qos = qos as u8, body = %String::from_utf8_lossy(&payload), "publish sent");
        let mut publish = Publish::from_bytes(topic, qos, payload);
        if qos == QoS::AtLeastOnce {
            if self.awaiting_ack.len() >= MAX_AWAITING_ACK {
                // A client that never acknowledges must not grow this without bound.
                self.awaiting_ack.remove(0);
            }
            publish.pkid = self.allocate_packet_id();
            self.awaiting_ack.push(publish.pkid);
        }
        self.write(Packet::Publish(publish));
    }

    fn allocate_packet_id(&mut self) -> u16 {
        loop {
            self.next_packet_id = self.next_packet_id.wrapping_add(1).max(1);
            if !self.awaiting_ack.contains(&self.next_packet_id) {
                return self.next_packet_id;
            }
        }
    }

    fn write(&mut self, packet: Packet) {
        if let Err(e) = codec::encode(&packet, &mut self.wbuf) {
            tracing::error!(error = %e, "could not encode an outgoing packet");
        }
    }
}
