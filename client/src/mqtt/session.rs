//! The task that owns one MQTT byte stream after CONNACK.
//!
//! It is the only place that reads or writes the stream, so no locking is needed: requests
//! arrive on a channel, acknowledgements complete the oneshot stored under their packet id,
//! and the server's publishes go out on another channel after we PUBACK them. Writes are
//! batched: everything produced while handling one wake-up goes out in a single write.
//!
//! When the session ends — server close, error, keep-alive timeout, DISCONNECT, or the handle
//! being dropped — every pending request fails with [`MqttError::Disconnected`] and the
//! `closed` state takes the reason, which is what the hub client's supervisor waits on.

use std::collections::HashMap;
use std::time::Duration;

use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{Packet, PubAck, Publish, Subscribe, SubscribeReasonCode};
use rumqttc::mqttbytes::{Error as CodecError, QoS};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::connection::{CloseState, Command, IncomingPublish};
use super::packet_ids::PacketIds;
use super::{MAX_INCOMING_PACKET, MAX_OUTGOING_PACKET, MqttError};

/// Requests awaiting acknowledgement at once; beyond this the session stops taking commands,
/// so callers are slowed down instead of memory growing.
const MAX_IN_FLIGHT: usize = 128;

/// Free space kept in the read buffer before each read.
const READ_CHUNK: usize = 8 * 1024;

/// Upper bound on a graceful close (DISCONNECT + TLS close_notify) so a stuck peer cannot
/// hang `disconnect()`.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// A request waiting for its acknowledgement.
enum Pending {
    Publish(oneshot::Sender<Result<(), MqttError>>),
    Subscribe(oneshot::Sender<Result<QoS, MqttError>>),
}

impl Pending {
    fn fail(self, error: MqttError) {
        // The requester may have given up (dropped its future); nothing to tell then.
        match self {
            Pending::Publish(done) => {
                let _ = done.send(Err(error));
            }
            Pending::Subscribe(done) => {
                let _ = done.send(Err(error));
            }
        }
    }
}

/// The loop's orderly ending: we sent DISCONNECT, carrying the completion to signal if a
/// `disconnect()` call (rather than dropping the handle) asked for it.
type ClientClosed = Option<oneshot::Sender<()>>;

pub(super) struct Session<S> {
    stream: S,
    rbuf: BytesMut,
    wbuf: BytesMut,
    commands: mpsc::Receiver<Command>,
    incoming: mpsc::Sender<IncomingPublish>,
    closed: watch::Sender<CloseState>,
    pending: HashMap<u16, Pending>,
    /// Topic prefixes whose QoS 1 publishes the receiver acknowledges itself.
    manual_ack_prefixes: Vec<String>,
    ids: PacketIds,
    keep_alive: Option<Duration>,
    last_sent: Instant,
    /// When the unanswered PINGREQ went out, if one is outstanding.
    ping_sent: Option<Instant>,
}

impl<S> Session<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    pub(super) fn new(
        stream: S,
        rbuf: BytesMut,
        commands: mpsc::Receiver<Command>,
        incoming: mpsc::Sender<IncomingPublish>,
        closed: watch::Sender<CloseState>,
        keep_alive: Option<Duration>,
        manual_ack_prefixes: Vec<String>,
    ) -> Self {
        Self {
            stream,
            rbuf,
            wbuf: BytesMut::with_capacity(4096),
            commands,
            incoming,
            closed,
            pending: HashMap::new(),
            manual_ack_prefixes,
            ids: PacketIds::default(),
            keep_alive,
            last_sent: Instant::now(),
            ping_sent: None,
        }
    }

    pub(super) async fn run(mut self) {
        let end = self.run_loop().await;
        let reason = match &end {
            Ok(_) => "closed by the client".to_owned(),
            Err(MqttError::Disconnected) => "connection closed by the server".to_owned(),
            Err(MqttError::Timeout) => "no answer to a keep-alive ping".to_owned(),
            Err(error) => error.to_string(),
        };
        // Set the reason first, so anyone woken by a failed request already sees it closed.
        self.closed.send_replace(Some(reason));
        for (_, pending) in self.pending.drain() {
            pending.fail(MqttError::Disconnected);
        }
        self.commands.close();
        while let Ok(command) = self.commands.try_recv() {
            fail_command(command);
        }
        match end {
            Ok(done) => {
                tracing::debug!("MQTT connection closed by the client");
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
            Err(MqttError::Disconnected) => tracing::debug!("MQTT connection closed by the server"),
            Err(error) => tracing::warn!(%error, "MQTT connection ended"),
        }
    }

    async fn run_loop(&mut self) -> Result<ClientClosed, MqttError> {
        // Anything that arrived together with the CONNACK.
        self.process_incoming()?;
        self.flush().await?;
        loop {
            // Read in reasonably large chunks; a no-op when the space is already there.
            self.rbuf.reserve(READ_CHUNK);
            let ping_at = self.next_ping_at();
            let accept_commands = self.pending.len() < MAX_IN_FLIGHT;
            tokio::select! {
                read = self.stream.read_buf(&mut self.rbuf) => {
                    if read? == 0 {
                        return Err(MqttError::Disconnected);
                    }
                    self.process_incoming()?;
                }
                command = self.commands.recv(), if accept_commands => {
                    let Some(command) = command else {
                        // Every handle is gone: leave politely.
                        return self.close(None).await;
                    };
                    if let Some(done) = self.take_commands(command) {
                        self.flush().await?;
                        return self.close(Some(done)).await;
                    }
                }
                () = sleep_until(ping_at), if ping_at.is_some() => self.keep_alive_due()?,
            }
            self.flush().await?;
        }
    }

    /// Encodes `first` and whatever else is already queued (up to the in-flight window), so a
    /// burst of sends becomes one write. Returns the completion of a DISCONNECT request.
    fn take_commands(&mut self, first: Command) -> Option<oneshot::Sender<()>> {
        let mut next = Some(first);
        while let Some(command) = next.take() {
            match command {
                Command::Disconnect { done } => return Some(done),
                Command::Publish {
                    topic,
                    payload,
                    dup,
                    done,
                } => self.start_publish(topic, payload, dup, done),
                Command::Subscribe { filter, done } => self.start_subscribe(filter, done),
                Command::Acknowledge { pkid, done } => {
                    let _ = done.send(self.encode(Packet::PubAck(PubAck::new(pkid))));
                }
            }
            if self.pending.len() < MAX_IN_FLIGHT {
                next = self.commands.try_recv().ok();
            }
        }
        None
    }

    fn start_publish(
        &mut self,
        topic: String,
        payload: bytes::Bytes,
        dup: bool,
        done: oneshot::Sender<Result<(), MqttError>>,
    ) {
        let Some(pkid) = self.allocate_id() else {
            let _ = done.send(Err(MqttError::Protocol("no free packet id".into())));
            return;
        };
        let mut publish = Publish::from_bytes(topic, QoS::AtLeastOnce, payload);
        publish.pkid = pkid;
        publish.dup = dup;
        match self.encode(Packet::Publish(publish)) {
            Ok(()) => {
                self.pending.insert(pkid, Pending::Publish(done));
            }
            Err(error) => {
                let _ = done.send(Err(error));
            }
        }
    }

    fn start_subscribe(&mut self, filter: String, done: oneshot::Sender<Result<QoS, MqttError>>) {
        let Some(pkid) = self.allocate_id() else {
            let _ = done.send(Err(MqttError::Protocol("no free packet id".into())));
            return;
        };
        let mut subscribe = Subscribe::new(filter, QoS::AtLeastOnce);
        subscribe.pkid = pkid;
        match self.encode(Packet::Subscribe(subscribe)) {
            Ok(()) => {
                self.pending.insert(pkid, Pending::Subscribe(done));
            }
            Err(error) => {
                let _ = done.send(Err(error));
            }
        }
    }

    fn allocate_id(&mut self) -> Option<u16> {
        let pending = &self.pending;
        self.ids.allocate(|id| pending.contains_key(&id))
    }

    /// Appends `packet` to the write buffer; on failure the buffer is left as it was, so a
    /// request the codec refuses cannot corrupt the stream for the others.
    fn encode(&mut self, packet: Packet) -> Result<(), MqttError> {
        let before = self.wbuf.len();
        packet
            .write(&mut self.wbuf, MAX_OUTGOING_PACKET)
            .map(|_| ())
            .map_err(|e| {
                self.wbuf.truncate(before);
                MqttError::Protocol(format!("cannot encode packet: {e}"))
            })
    }

    /// Handles every complete packet in the read buffer.
    fn process_incoming(&mut self) -> Result<(), MqttError> {
        loop {
            match Packet::read(&mut self.rbuf, MAX_INCOMING_PACKET) {
                Ok(packet) => self.handle(packet)?,
                Err(CodecError::InsufficientBytes(_)) => return Ok(()),
                Err(e) => return Err(MqttError::Protocol(format!("malformed packet: {e}"))),
            }
        }
    }

    fn handle(&mut self, packet: Packet) -> Result<(), MqttError> {
        // Any traffic proves the link is alive, so an outstanding ping no longer matters.
        self.ping_sent = None;
        match packet {
            Packet::PubAck(ack) => match self.pending.remove(&ack.pkid) {
                Some(Pending::Publish(done)) => {
                    let _ = done.send(Ok(()));
                }
                Some(other) => {
                    other.fail(MqttError::Protocol("PUBACK answered a SUBSCRIBE".into()))
                }
                None => tracing::debug!(pkid = ack.pkid, "PUBACK for no pending publish"),
            },
            Packet::SubAck(ack) => match self.pending.remove(&ack.pkid) {
                Some(Pending::Subscribe(done)) => {
                    let result = match ack.return_codes.first() {
                        Some(SubscribeReasonCode::Success(qos)) => Ok(*qos),
                        Some(SubscribeReasonCode::Failure) => Err(MqttError::Protocol(
                            "subscription rejected by the server (SUBACK 0x80)".into(),
                        )),
                        None => Err(MqttError::Protocol("SUBACK without return code".into())),
                    };
                    let _ = done.send(result);
                }
                Some(other) => other.fail(MqttError::Protocol("SUBACK answered a PUBLISH".into())),
                None => tracing::debug!(pkid = ack.pkid, "SUBACK for no pending subscribe"),
            },
            Packet::Publish(publish) => self.receive_publish(publish)?,
            Packet::PingResp => {}
            // Not part of MQTT 3.1.1 server behaviour, but if a server sends it, it is leaving.
            Packet::Disconnect => return Err(MqttError::Disconnected),
            other => {
                return Err(MqttError::Protocol(format!(
                    "unexpected packet from server: {other:?}"
                )));
            }
        }
        Ok(())
    }

    fn receive_publish(&mut self, publish: Publish) -> Result<(), MqttError> {
        let mut pending_ack = None;
        match publish.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce if self.is_manual_ack(&publish.topic) => {
                pending_ack = Some(publish.pkid);
            }
            QoS::AtLeastOnce => self.encode(Packet::PubAck(PubAck::new(publish.pkid)))?,
            // We only ever subscribe at QoS 1, so the server may not send QoS 2.
            QoS::ExactlyOnce => {
                return Err(MqttError::Protocol("server sent a QoS 2 publish".into()));
            }
        }
        let message = IncomingPublish {
            topic: publish.topic,
            payload: publish.payload,
            dup: publish.dup,
            pending_ack,
        };
        match self.incoming.try_send(message) {
            Ok(()) => {}
            // Nobody is listening (e.g. a DPS exchange that has finished).
            Err(mpsc::error::TrySendError::Closed(message)) => {
                tracing::debug!(topic = %message.topic, "dropping unexpected publish");
            }
            // Blocking here would stall acknowledgements and pings for every request. A
            // message left unacknowledged is delivered again on the next connection.
            Err(mpsc::error::TrySendError::Full(message)) => {
                tracing::warn!(
                    topic = %message.topic,
                    acknowledged = message.pending_ack.is_none(),
                    "publishes are not being read; dropping one"
                );
            }
        }
        Ok(())
    }

    fn is_manual_ack(&self, topic: &str) -> bool {
        self.manual_ack_prefixes
            .iter()
            .any(|prefix| topic.starts_with(prefix.as_str()))
    }

    fn next_ping_at(&self) -> Option<Instant> {
        let keep_alive = self.keep_alive?;
        Some(match self.ping_sent {
            // Waiting for PINGRESP: give it one keep-alive period.
            Some(sent) => sent + keep_alive,
            // MQTT requires a packet from us at least once per keep-alive period.
            None => self.last_sent + keep_alive,
        })
    }

    fn keep_alive_due(&mut self) -> Result<(), MqttError> {
        if self.ping_sent.is_some() {
            return Err(MqttError::Timeout);
        }
        self.encode(Packet::PingReq)?;
        self.ping_sent = Some(Instant::now());
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), MqttError> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        self.stream.write_all(&self.wbuf).await?;
        self.stream.flush().await?;
        self.wbuf.clear();
        self.last_sent = Instant::now();
        Ok(())
    }

    /// Sends DISCONNECT and shuts the stream down (TLS close_notify), bounded in time.
    async fn close(&mut self, done: ClientClosed) -> Result<ClientClosed, MqttError> {
        let graceful = async {
            self.encode(Packet::Disconnect)?;
            self.flush().await?;
            self.stream.shutdown().await?;
            Ok::<_, MqttError>(())
        };
        match tokio::time::timeout(SHUTDOWN_TIMEOUT, graceful).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::debug!(%error, "error while disconnecting"),
            Err(_) => tracing::debug!("disconnect timed out"),
        }
        Ok(done)
    }
}

/// Answers a request that arrived after the session ended.
fn fail_command(command: Command) {
    match command {
        Command::Publish { done, .. } => {
            let _ = done.send(Err(MqttError::Disconnected));
        }
        Command::Subscribe { done, .. } => {
            let _ = done.send(Err(MqttError::Disconnected));
        }
        Command::Acknowledge { done, .. } => {
            let _ = done.send(Err(MqttError::Disconnected));
        }
        Command::Disconnect { done } => {
            let _ = done.send(());
        }
    }
}

/// `sleep_until` for an optional deadline; the select guard keeps the `None` case from ever
/// being polled, the far-future value only satisfies the type.
fn sleep_until(at: Option<Instant>) -> tokio::time::Sleep {
    let far = Instant::now() + Duration::from_secs(86_400 * 365);
    tokio::time::sleep_until(at.unwrap_or(far))
}
