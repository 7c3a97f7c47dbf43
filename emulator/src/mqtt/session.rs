//! One MQTT connection, from CONNECT to close — the loop, which knows the MQTT wire but no
//! IoT Hub rule:
//!
//! ```text
//! read CONNECT (timeout) → [`connect`](super::connect): CONNACK 0, or 1/4/5/3 and close
//! loop: socket bytes → decode every complete packet → [`dispatch`](super::dispatch) → replies
//!       into one buffer → one write + flush per read batch
//!       ends on: peer close, DISCONNECT, protocol/ACL violation, keep-alive timeout
//!       (1.5 × keep-alive), SAS expiry, replacement by a newer connection, shutdown
//! ```
//!
//! Requests are handled inline by calling the domain; a PUBACK is written only after the
//! domain has stored what it acknowledges.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use super::MqttContext;
use super::codec::{self, ConnAck, ConnectReturnCode, Packet};
use super::connect::{self, ConnectFailure};
use super::dispatch::Dispatcher;
use crate::hub::connections::Outbound;
use crate::shutdown::ShutdownSignal;

/// What the transport knows about the peer before MQTT starts.
pub struct PeerInfo {
    pub remote: SocketAddr,
    /// The certificate chain the client sent in the TLS handshake, leaf first (may be empty).
    pub certificates: Vec<CertificateDer<'static>>,
}

/// Why a session ended; logged once per connection.
pub(super) type CloseReason = String;

/// Runs one connection to completion over any byte stream (TLS, or WebSocket messages).
pub async fn run_session<S>(mut stream: S, peer: PeerInfo, ctx: Arc<MqttContext>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut rbuf = BytesMut::with_capacity(4096);
    let connect = match connect::read_connect(&mut stream, &mut rbuf, &ctx).await {
        Ok(connect) => connect,
        Err(ConnectFailure::Refuse(level)) => {
            tracing::warn!(remote = %peer.remote, level, code = 1, "connection refused: only MQTT 3.1.1 (level 4) is supported");
            refuse(&mut stream, ConnectReturnCode::RefusedProtocolVersion).await;
            return;
        }
        Err(ConnectFailure::Close(reason)) => {
            tracing::info!(remote = %peer.remote, %reason, "connection closed before CONNECT");
            return;
        }
    };
    let client = match connect::authenticate(&connect, &peer, &ctx) {
        Ok(client) => client,
        Err(code) => {
            refuse(&mut stream, code).await;
            return;
        }
    };
    if let Err(code) = connect::record_model_id(&client, &connect).await {
        refuse(&mut stream, code).await;
        return;
    }
    let keep_alive = connect::keep_alive_timeout(&connect, &ctx);
    let name = client.name();
    tracing::info!(remote = %peer.remote, client = %name, keep_alive = connect.keep_alive, "client connected");
    let mut dispatcher = Dispatcher::open(client, ctx.clone(), connect.clean_session);
    let mut wakeups = Wakeups::new(&mut dispatcher, &ctx);
    let reason = serve(&mut stream, &mut dispatcher, &mut wakeups, rbuf, keep_alive).await;
    // The hub's pushes stop being accepted before the connection is detached.
    drop(wakeups);
    dispatcher.close();
    tracing::info!(remote = %peer.remote, client = %name, %reason, "client disconnected");
    close(&mut stream).await;
}

/// Answers CONNECT with a refusal and closes.
async fn refuse<S: AsyncWrite + Unpin>(stream: &mut S, code: ConnectReturnCode) {
    let mut wbuf = BytesMut::new();
    let _ = codec::encode(&Packet::ConnAck(ConnAck::new(code, false)), &mut wbuf);
    let _ = stream.write_all(&wbuf).await;
    close(stream).await;
}

async fn close<S: AsyncWrite + Unpin>(stream: &mut S) {
    // Sends TLS close_notify; a peer that is gone must not hold the task.
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
}

/// Reads, dispatches and writes until something ends the connection.
async fn serve<S>(
    stream: &mut S,
    dispatcher: &mut Dispatcher,
    wakeups: &mut Wakeups,
    mut rbuf: BytesMut,
    keep_alive: Duration,
) -> CloseReason
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut last_heard = Instant::now();
    // Packets a client sent right behind its CONNECT, before seeing the CONNACK (MQTT
    // 3.1.1 §3.1.4 allows it), arrived with it and are already buffered.
    if let Err(reason) = dispatcher.handle_buffered(&mut rbuf).await {
        let _ = stream.write_all(dispatcher.out.pending()).await;
        return reason;
    }
    loop {
        if let Err(e) = flush(stream, dispatcher).await {
            return format!("write failed: {e}");
        }
        tokio::select! {
            read = stream.read_buf(&mut rbuf) => {
                match read {
                    Ok(0) => return "peer closed the connection".into(),
                    Ok(_) => last_heard = Instant::now(),
                    Err(e) => return format!("read failed: {e}"),
                }
                if let Err(reason) = dispatcher.handle_buffered(&mut rbuf).await {
                    // Flush what was already answered (e.g. SUBACKs) first.
                    let _ = stream.write_all(dispatcher.out.pending()).await;
                    return reason;
                }
            }
            _ = tokio::time::sleep_until(last_heard + keep_alive) => {
                return "keep-alive timeout".into();
            }
            woken = wakeups.next() => match woken {
                Wakeup::Push(pushed) => dispatcher.on_push(pushed),
                Wakeup::Close(reason) => return reason,
            },
        }
    }
}

/// Writes and flushes what the dispatcher has answered, if anything.
async fn flush<S>(stream: &mut S, dispatcher: &mut Dispatcher) -> std::io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    if dispatcher.out.pending().is_empty() {
        return Ok(());
    }
    stream.write_all(dispatcher.out.pending()).await?;
    stream.flush().await?;
    dispatcher.out.written();
    Ok(())
}

/// What wakes a session besides its socket.
enum Wakeup {
    /// The hub pushed something to the device.
    Push(Outbound),
    /// The session must end.
    Close(CloseReason),
}

/// The session's other wake-up sources: the hub's pushes and kick, the credential's expiry
/// and the emulator's shutdown.
struct Wakeups {
    shutdown: ShutdownSignal,
    /// Replaced by a newer connection, or the device was disabled or deleted.
    kicked: Option<Arc<Notify>>,
    /// The hub's pushes for this device (desired patches, methods, C2D, inputs).
    pushes: Option<mpsc::Receiver<Outbound>>,
    /// When the SAS token (or certificate-less credential) stops being valid.
    token_deadline: Option<Instant>,
}

impl Wakeups {
    fn new(dispatcher: &mut Dispatcher, ctx: &MqttContext) -> Wakeups {
        // Checked: a credential valid for millennia must not overflow the clock; no
        // representable deadline means none to enforce.
        let token_deadline = dispatcher.client().expires_at().and_then(|at| {
            let left = at
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO);
            Instant::now().checked_add(left)
        });
        Wakeups {
            shutdown: ctx.shutdown.clone(),
            kicked: dispatcher.kicked(),
            pushes: dispatcher.take_pushes(),
            token_deadline,
        }
    }

    /// The next wake-up. Cancel-safe: the session drops it whenever the socket wins.
    async fn next(&mut self) -> Wakeup {
        loop {
            tokio::select! {
                _ = async {
                    match self.token_deadline {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => return Wakeup::Close("SAS token expired (401003)".into()),
                _ = async {
                    match &self.kicked {
                        Some(kicked) => kicked.notified().await,
                        None => std::future::pending().await,
                    }
                } => return Wakeup::Close("closed by the hub: a newer connection replaced it (400027), or the device was disabled or deleted".into()),
                pushed = async {
                    match self.pushes.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => match pushed {
                    Some(pushed) => return Wakeup::Push(pushed),
                    None => self.pushes = None,
                },
                _ = self.shutdown.recv() => return Wakeup::Close("emulator shutting down".into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::mqtt::codec::{ConnectReturnCode, Packet, QoS, SubscribeReasonCode};
    use crate::mqtt::test_support::{DEVICE, World};

    #[tokio::test]
    async fn a_valid_device_is_accepted_and_answers_pings() {
        let world = World::start().await;
        let (mut device, ack) = world.device(true).await;
        assert_eq!(ack.code, ConnectReturnCode::Success);
        assert!(world.hub().connections().is_connected(DEVICE));
        device.send(Packet::PingReq).await;
        assert!(matches!(device.recv().await, Some(Packet::PingResp)));
        device.disconnect().await;
        assert!(!world.hub().connections().is_connected(DEVICE), "detached");
    }

    #[tokio::test]
    async fn disconnect_ends_the_session() {
        let world = World::start().await;
        let (mut device, _) = world.device(true).await;
        device.send(Packet::Disconnect).await;
        assert!(device.recv().await.is_none());
        device.disconnect().await;
    }

    #[tokio::test]
    async fn a_foreign_subscription_is_refused_and_a_foreign_publish_closes() {
        let world = World::start().await;
        let (mut device, _) = world.device(true).await;
        let ack = device
            .subscribe("devices/other/messages/devicebound/#", QoS::AtLeastOnce)
            .await;
        assert_eq!(ack.return_codes, vec![SubscribeReasonCode::Failure]);
        device
            .publish("devices/other/messages/events/", QoS::AtLeastOnce, 1, "x")
            .await;
        assert!(device.recv().await.is_none(), "closed");
        device.disconnect().await;
    }

    #[tokio::test]
    async fn qos_2_closes_the_connection() {
        let world = World::start().await;
        let (mut device, _) = world.device(true).await;
        device
            .publish("devices/d1/messages/events/", QoS::ExactlyOnce, 1, "x")
            .await;
        assert!(device.recv().await.is_none());
        device.disconnect().await;
    }

    #[tokio::test]
    async fn a_newer_connection_replaces_the_older() {
        let world = World::start().await;
        let (mut first, _) = world.device(true).await;
        let (second, _) = world.device(true).await;
        assert!(first.recv().await.is_none(), "the first is closed");
        first.disconnect().await;
        assert!(
            world.hub().connections().is_connected(DEVICE),
            "the second stays"
        );
        second.disconnect().await;
    }

    #[tokio::test]
    async fn a_dps_client_may_not_use_hub_topics() {
        let world = World::start().await;
        let (mut client, ack) = world.registration().await;
        assert_eq!(ack.code, ConnectReturnCode::Success);
        let ack = client
            .subscribe("$iothub/twin/res/#", QoS::AtMostOnce)
            .await;
        assert_eq!(ack.return_codes, vec![SubscribeReasonCode::Failure]);
        client
            .publish("$iothub/twin/GET/?$rid=1", QoS::AtMostOnce, 0, "")
            .await;
        assert!(client.recv().await.is_none());
        client.disconnect().await;
    }
}
