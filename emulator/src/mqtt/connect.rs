//! CONNECT → who is connected, or the CONNACK code that refuses them (mqtt-front.md §9).
//!
//! ```text
//! first packet (within the connect timeout) must be CONNECT (0x10), else close without reply
//! protocol level 4 (MQTT 3.1.1)?                 no → CONNACK 1
//! username  {scope}/registrations/{id}/…  (DPS)  | {host}/{device}[/{module}]/?…  (hub)
//! client id == the username's id?                 no → CONNACK 4
//! password = SAS token, or the TLS client certificate chain
//! credential valid?                               no → CONNACK 5 (3: device disabled; 2: bad
//!                                                      registration id)
//! hub.connect fault? (docs/faults.md)             refuse → CONNACK 3 or 5; drop → close;
//!                                                 stall → no answer
//! ```
//!
//! A hub device is attached to the hub's connection registry here (kicking an older
//! connection of the same identity); the session detaches it when it ends. An IoT Plug and
//! Play device names its model as `model-id=<dtmi>` in the username's query (protocol.md §5.2);
//! it is stored on the twin before the CONNACK.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use tokio::io::AsyncRead;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::MqttContext;
use super::codec::{self, CodecError, Connect, ConnectReturnCode, Packet, Protocol};
use super::routes::Principal;
use super::session::PeerInfo;
use super::username::{self, ConnectTarget};
use crate::auth::{AuthError, Credential};
use crate::dps::attestation::RegistrationIdentity;
use crate::faults::{FaultAction, FaultHit};
use crate::hub::ConnectRefused;
use crate::hub::DeviceIdentity;
use crate::hub::connections::{ConnectionLease, Outbound};
use crate::hub::{Hub, IdentityRef, push_queue};

/// Who is connected.
pub(super) enum Client {
    Registration(RegistrationIdentity),
    Device {
        identity: DeviceIdentity,
        hub: Arc<Hub>,
        /// The hub's id of this connection, to detach it.
        connection_id: u64,
        /// Notified when the hub closes this connection.
        kicked: Arc<Notify>,
        /// The hub's pushes, until the session takes them.
        pushes: Option<push_queue::Receiver<Outbound>>,
    },
}

impl Client {
    pub(super) fn principal(&self) -> Principal<'_> {
        match self {
            Client::Registration(_) => Principal::Registration,
            Client::Device { identity, .. } => Principal::Device {
                device_id: identity.device_id(),
                module_id: identity.module_id(),
            },
        }
    }

    pub(super) fn expires_at(&self) -> Option<SystemTime> {
        match self {
            Client::Registration(r) => r.expires_at(),
            Client::Device { identity, .. } => identity.expires_at(),
        }
    }

    /// How the logs name the connection.
    pub(super) fn name(&self) -> String {
        match self {
            Client::Registration(r) => format!("dps:{}", r.registration_id()),
            Client::Device { identity, .. } => {
                format!("{}:{}", identity.hub(), identity.connection_key())
            }
        }
    }

    /// The hub identity, for a device or module.
    pub(super) fn device(&self) -> Option<(&DeviceIdentity, &Arc<Hub>)> {
        match self {
            Client::Device { identity, hub, .. } => Some((identity, hub)),
            Client::Registration(_) => None,
        }
    }
}

/// Shorthand for the identity a [`DeviceIdentity`] names.
pub(super) fn identity_ref(identity: &DeviceIdentity) -> IdentityRef<'_> {
    IdentityRef {
        device_id: identity.device_id(),
        module_id: identity.module_id(),
    }
}

/// Why no session starts: a protocol level to refuse with CONNACK 1, or anything else, which
/// closes the connection without a reply (MQTT 3.1.1 §3.1.4-1).
pub(super) enum ConnectFailure {
    Refuse(u8),
    Close(String),
}

/// Reads until a whole first packet is buffered; it must be a CONNECT. Whatever the client
/// sent behind it stays in `rbuf`.
pub(super) async fn read_connect<S>(
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
        // The session's read: a connection waiting for its CONNECT holds no heap buffer.
        match tokio::time::timeout_at(deadline, super::session::read_some(stream, rbuf)).await {
            Ok(Ok(0)) => return close("peer closed".into()),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return close(e.to_string()),
            Err(_) => return close("no CONNECT within the timeout".into()),
        }
    }
}

/// The server-side keep-alive: 1.5 × the client's, capped by Azure's maximum (which also
/// stands in for a client that asks for none).
pub(super) fn keep_alive_timeout(connect: &Connect, ctx: &MqttContext) -> Duration {
    match connect.keep_alive {
        0 => ctx.limits.max_keep_alive_timeout,
        secs => {
            Duration::from_millis(u64::from(secs) * 1500).min(ctx.limits.max_keep_alive_timeout)
        }
    }
}

/// How a CONNECT that is not accepted is answered.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Turnaway {
    /// A CONNACK with this code, then close.
    Refuse(ConnectReturnCode),
    /// Close without a CONNACK (an injected drop).
    Drop,
    /// Never answer (an injected stall).
    Stall,
}

/// An accepted CONNECT: who is connected, and an injected fault that acts on its CONNACK
/// (a delay, or a drop right after it).
pub(super) struct Accepted {
    pub(super) client: Client,
    pub(super) fault: Option<FaultHit>,
}

/// CONNECT → identity, or how to turn it away (logged with the reason).
pub(super) fn authenticate(
    connect: &Connect,
    peer: &PeerInfo,
    ctx: &MqttContext,
) -> Result<Accepted, Turnaway> {
    let refuse = |code: ConnectReturnCode, reason: &dyn std::fmt::Display| {
        tracing::warn!(remote = %peer.remote, client_id = %connect.client_id, %reason, code = code as u8, "connection refused");
        Turnaway::Refuse(code)
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
    verify(&target, credential, ctx).map_err(|refused| match refused {
        ConnectRefused::Auth(e) => {
            let code = match e {
                // azure-iot-sdk-c maps 3 to "device disabled".
                AuthError::DeviceDisabled(_) => ConnectReturnCode::ServiceUnavailable,
                // The client id is the registration id, and it can never be valid.
                AuthError::InvalidRegistrationId(_) => ConnectReturnCode::BadClientId,
                _ => ConnectReturnCode::NotAuthorized,
            };
            refuse(code, &e)
        }
        ConnectRefused::Fault(hit) => match hit.action {
            FaultAction::Refuse(refusal) => refuse(
                super::faults::connack_for(refusal),
                &format!("iotemu fault {} refuses the connect", hit.id),
            ),
            FaultAction::Stall => Turnaway::Stall,
            // Only these two are turned away before the attach (`lets_request_through`).
            FaultAction::Drop { .. } | FaultAction::Delay(_) => Turnaway::Drop,
        },
    })
}

/// The IoT Plug and Play model a hub client names in its username's query as `model-id`
/// (percent-encoded), if it is shaped like a DTMI (`dtmi:` then letters, digits, `_`, `:` and
/// one `;version`).
pub(super) fn announced_model_id(connect: &Connect) -> Option<String> {
    let username = &connect.login.as_ref()?.username;
    let (_, query) = username.split_once('?')?;
    let raw = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("model-id="))?;
    let model_id = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()?
        .into_owned();
    crate::hub::twin::is_model_id(&model_id).then_some(model_id)
}

/// Stores the model a connecting device or module announced before it is told it is
/// connected; a store that fails refuses the connection (CONNACK 3, server unavailable).
pub(super) async fn record_model_id(
    client: &Client,
    connect: &Connect,
) -> Result<(), ConnectReturnCode> {
    let (Some((identity, hub)), Some(model_id)) = (client.device(), announced_model_id(connect))
    else {
        return Ok(());
    };
    let stored = match hub.record_model_id(identity_ref(identity), &model_id) {
        Ok(pending) => pending.durable().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.message),
    };
    stored.map_err(|reason| {
        tracing::warn!(client = %client.name(), %reason, "model id not stored; connection refused");
        ConnectReturnCode::ServiceUnavailable
    })
}

/// Checks the credential against what the username names; a hub device is attached to its
/// hub's connections.
fn verify(
    target: &ConnectTarget,
    credential: Credential<'_>,
    ctx: &MqttContext,
) -> Result<Accepted, ConnectRefused> {
    let now = SystemTime::now();
    match target {
        ConnectTarget::Dps {
            id_scope,
            registration_id,
        } => ctx
            .dps
            .authenticate_registration(id_scope, registration_id, credential, now)
            .map(|who| Accepted {
                client: Client::Registration(who),
                fault: None,
            })
            .map_err(ConnectRefused::Auth),
        ConnectTarget::Hub {
            host,
            device_id,
            module_id,
        } => ctx
            .hubs
            .connect_device(host, device_id, module_id.as_deref(), credential, now)
            .map(|connected| {
                let ConnectionLease {
                    id,
                    kicked,
                    outbound,
                } = connected.lease;
                Accepted {
                    client: Client::Device {
                        identity: connected.identity,
                        hub: connected.hub,
                        connection_id: id,
                        kicked,
                        pushes: Some(outbound),
                    },
                    fault: connected.fault,
                }
            }),
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::mqtt::session::{PeerInfo, run_session};
    use crate::mqtt::test_support::World;

    fn peer() -> PeerInfo {
        PeerInfo {
            remote: ([127, 0, 0, 1], 40000).into(),
            certificates: Vec::new(),
        }
    }

    /// Sends `bytes` as the whole connection and returns everything the session answered.
    async fn exchange(world: &World, bytes: &[u8]) -> Vec<u8> {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let session = tokio::spawn(run_session(server, peer(), world.ctx.clone()));
        client.write_all(bytes).await.unwrap();
        client.shutdown().await.unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        session.await.unwrap();
        answer
    }

    fn connect(client_id: &str, username: &str, password: &str) -> Vec<u8> {
        let mut connect = Connect::new(client_id);
        connect.protocol = Protocol::V4;
        connect.set_login(username, password);
        let mut buf = BytesMut::new();
        codec::encode(&Packet::Connect(connect), &mut buf).unwrap();
        buf.to_vec()
    }

    fn connack(answer: &[u8]) -> ConnectReturnCode {
        let mut buf = BytesMut::from(answer);
        match codec::decode(&mut buf, 1024) {
            Ok(Some(Packet::ConnAck(ack))) => ack.code,
            other => panic!("CONNACK expected, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn refusals_carry_the_azure_connack_codes() {
        let world = World::start().await;
        let host = world.hub().host_name().to_owned();
        let user = format!("{host}/d1/?api-version=2021-04-12");
        let bad_sas = exchange(
            &world,
            &connect("d1", &user, "SharedAccessSignature sr=x&sig=y&se=1"),
        )
        .await;
        assert_eq!(connack(&bad_sas), ConnectReturnCode::NotAuthorized);
        let wrong_client = exchange(&world, &connect("d2", &user, "x")).await;
        assert_eq!(
            connack(&wrong_client),
            ConnectReturnCode::BadUserNamePassword
        );
        let unknown_user = exchange(&world, &connect("d1", "nobody", "x")).await;
        assert_eq!(
            connack(&unknown_user),
            ConnectReturnCode::BadUserNamePassword
        );
    }

    #[test]
    fn the_model_id_comes_from_the_username_query_when_it_is_a_dtmi() {
        let with = |username: &str| {
            let mut connect = Connect::new("d1");
            connect.set_login(username, "x");
            announced_model_id(&connect)
        };
        assert_eq!(
            with(
                "h/d1/?api-version=2020-09-30&model-id=dtmi%3Acom%3Aexample%3AThermostat%3B1&DeviceClientType=x"
            ),
            Some("dtmi:com:example:Thermostat;1".into())
        );
        assert_eq!(
            with("h/d1/?api-version=2021-04-12&DeviceClientType=x&model-id=dtmi:a:b;2"),
            Some("dtmi:a:b;2".into())
        );
        for none in [
            "h/d1/?api-version=2021-04-12",
            "h/d1/?model-id=notadtmi",
            "h/d1/?model-id=dtmi%3A",
            "h/d1/?model-id=dtmi%3Aa%20b",
            "h/d1/?model-id=%FF",
            "h/d1/",
        ] {
            assert_eq!(with(none), None, "{none}");
        }
    }

    #[tokio::test]
    async fn a_model_id_is_on_the_twin_once_connack_is_sent() {
        let world = World::start().await;
        let (_device, _) = world
            .device_with_username_query("&model-id=dtmi%3Acom%3Aexample%3AThermostat%3B1")
            .await;
        let twin = world
            .hub()
            .device_twin(crate::mqtt::test_support::DEVICE)
            .unwrap();
        assert_eq!(
            twin.model_id.as_deref(),
            Some("dtmi:com:example:Thermostat;1")
        );
    }

    #[tokio::test]
    async fn anything_but_connect_first_is_closed_without_a_reply() {
        let world = World::start().await;
        assert!(exchange(&world, b"GET / HTTP/1.1\r\n\r\n").await.is_empty());
        assert!(
            exchange(&world, &[0xC0, 0x00]).await.is_empty(),
            "PINGREQ first"
        );
        assert!(exchange(&world, &[]).await.is_empty());
    }

    #[tokio::test]
    async fn another_protocol_level_is_refused_with_code_1() {
        let world = World::start().await;
        // CONNECT with protocol "MQTT" level 5 and nothing else.
        let level_5 = [
            0x10, 0x0D, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x3C, 0x00, 0x00,
            0x00,
        ];
        let answer = exchange(&world, &level_5).await;
        assert_eq!(connack(&answer), ConnectReturnCode::RefusedProtocolVersion);
    }
}
