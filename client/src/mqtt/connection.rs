//! The handle to one MQTT connection: performs CONNECT/CONNACK on a fresh byte stream, then
//! hands the stream to the [session task](super::session) and talks to it over a channel.
//!
//! Every request carries a oneshot that the session completes when the server acknowledges
//! (PUBACK for a QoS 1 publish, SUBACK for a subscribe), so callers can await delivery and
//! many requests can be in flight at once from `&self`.
//!
//! The server's QoS 1 publishes are acknowledged by the session as they arrive, except on
//! topics listed in [`ConnectOptions::manual_ack_prefixes`] (C2D and module input messages):
//! those reach the application unacknowledged and [`Connection::acknowledge`] sends the
//! PUBACK when it has dealt with them, so an unfinished message is delivered again.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4::{ConnectReturnCode, Login, Packet};
use rumqttc::mqttbytes::{Error as CodecError, QoS};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};

use super::session::Session;
use super::{MAX_INCOMING_PACKET, MAX_OUTGOING_PACKET, MqttError};

/// How many requests may queue up for the session task before senders wait.
const COMMAND_QUEUE: usize = 64;

/// How many of the server's publishes may wait for the reader before we drop them. Above
/// IoT Hub's 50 pending C2D messages, so a burst of redeliveries fits.
const INCOMING_QUEUE: usize = 128;

/// What goes into the CONNECT packet.
#[derive(Debug, Clone)]
pub(crate) struct ConnectOptions {
    pub client_id: String,
    pub username: String,
    /// A SAS token, or `None` for X.509, whose CONNECT must carry no password at all (no
    /// password flag), not an empty one.
    pub password: Option<String>,
    pub clean_session: bool,
    /// Zero disables keep-alive pings.
    pub keep_alive: Duration,
    /// QoS 1 publishes whose topic starts with one of these are not acknowledged on arrival;
    /// the receiver acknowledges them with [`Connection::acknowledge`].
    pub manual_ack_prefixes: Vec<String>,
}

/// A publish received from the server.
#[derive(Debug, Clone)]
pub(crate) struct IncomingPublish {
    pub topic: String,
    pub payload: Bytes,
    /// The server's DUP flag: it may have sent this message before.
    pub dup: bool,
    /// The packet id still to acknowledge (a QoS 1 publish on a manual-ack topic); `None`
    /// when the session already acknowledged it or it was QoS 0.
    pub pending_ack: Option<u16>,
}

/// A request from a handle to the session task.
pub(super) enum Command {
    /// QoS 1 publish; completed on PUBACK. `dup` marks a resend of a message that an
    /// earlier connection may have delivered.
    Publish {
        topic: String,
        payload: Bytes,
        dup: bool,
        done: oneshot::Sender<Result<(), MqttError>>,
    },
    /// PUBACK for a publish the server sent on a manual-ack topic; completed once written.
    Acknowledge {
        pkid: u16,
        done: oneshot::Sender<Result<(), MqttError>>,
    },
    /// Single-filter QoS 1 subscribe; completed on SUBACK with the granted QoS.
    Subscribe {
        filter: String,
        done: oneshot::Sender<Result<QoS, MqttError>>,
    },
    /// Send DISCONNECT and close; completed once the stream is shut down.
    Disconnect { done: oneshot::Sender<()> },
}

/// Why a connection ended (`None` while it is open), as the session saw it.
pub(crate) type CloseState = Option<String>;

/// Handle to a live MQTT connection. Clones share the connection; dropping the last one
/// disconnects gracefully.
#[derive(Debug, Clone)]
pub(crate) struct Connection {
    commands: mpsc::Sender<Command>,
    closed: watch::Receiver<CloseState>,
}

impl Connection {
    /// Sends CONNECT on `stream`, waits for CONNACK and starts the session task.
    ///
    /// The caller bounds the time this takes (see [`super::connect`]).
    pub(crate) async fn start<S>(
        mut stream: S,
        options: ConnectOptions,
    ) -> Result<(Self, mpsc::Receiver<IncomingPublish>), MqttError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        check_string("client id", &options.client_id)?;
        check_string("username", &options.username)?;
        if let Some(password) = &options.password {
            check_string("password", password)?;
        }
        let keep_alive = u16::try_from(options.keep_alive.as_secs())
            .map_err(|_| MqttError::Protocol("keep-alive above 65535 s".into()))?;

        let mut connect = rumqttc::mqttbytes::v4::Connect::new(options.client_id);
        connect.keep_alive = keep_alive;
        connect.clean_session = options.clean_session;
        // rumqttc's codec sets the password flag only for a non-empty password, so "none"
        // goes out as an empty one and the flag stays clear, as X.509 requires.
        connect.login = Some(Login {
            username: options.username,
            password: options.password.unwrap_or_default(),
        });
        let mut wbuf = BytesMut::new();
        Packet::Connect(connect)
            .write(&mut wbuf, MAX_OUTGOING_PACKET)
            .map_err(|e| MqttError::Protocol(format!("cannot encode CONNECT: {e}")))?;
        stream.write_all(&wbuf).await?;
        stream.flush().await?;

        let mut rbuf = BytesMut::with_capacity(4096);
        read_connack(&mut stream, &mut rbuf).await?;

        let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
        let (incoming_tx, incoming_rx) = mpsc::channel(INCOMING_QUEUE);
        let (closed_tx, closed) = watch::channel(None);
        let keep_alive = (keep_alive > 0).then(|| Duration::from_secs(u64::from(keep_alive)));
        // Anything the server sent right behind the CONNACK stays in `rbuf` for the session.
        let session = Session::new(
            stream,
            rbuf,
            command_rx,
            incoming_tx,
            closed_tx,
            keep_alive,
            options.manual_ack_prefixes,
        );
        tokio::spawn(session.run());
        Ok((Self { commands, closed }, incoming_rx))
    }

    /// Publishes at QoS 1 and resolves when the server's PUBACK arrives.
    pub(crate) async fn publish(&self, topic: String, payload: Bytes) -> Result<(), MqttError> {
        self.publish_with_dup(topic, payload, false).await
    }

    /// [`publish`](Self::publish) with the DUP flag set as given: set it when resending a
    /// message an earlier connection may already have delivered.
    pub(crate) async fn publish_with_dup(
        &self,
        topic: String,
        payload: Bytes,
        dup: bool,
    ) -> Result<(), MqttError> {
        check_string("topic", &topic)?;
        let (done, result) = oneshot::channel();
        self.send(Command::Publish {
            topic,
            payload,
            dup,
            done,
        })
        .await?;
        result.await.map_err(|_| MqttError::Disconnected)?
    }

    /// Sends the PUBACK for a publish that arrived on a manual-ack topic with this packet id.
    /// Fails with [`MqttError::Disconnected`] once the connection that delivered it is gone.
    pub(crate) async fn acknowledge(&self, pkid: u16) -> Result<(), MqttError> {
        let (done, result) = oneshot::channel();
        self.send(Command::Acknowledge { pkid, done }).await?;
        result.await.map_err(|_| MqttError::Disconnected)?
    }

    /// Subscribes to one filter at QoS 1 and resolves with the granted QoS on SUBACK.
    pub(crate) async fn subscribe(&self, filter: String) -> Result<QoS, MqttError> {
        check_string("topic filter", &filter)?;
        let (done, result) = oneshot::channel();
        self.send(Command::Subscribe { filter, done }).await?;
        result.await.map_err(|_| MqttError::Disconnected)?
    }

    /// Sends DISCONNECT and waits until the stream is closed. Succeeds if already closed.
    pub(crate) async fn disconnect(&self) {
        let (done, finished) = oneshot::channel();
        if self.send(Command::Disconnect { done }).await.is_ok() {
            // An error here only means the session ended some other way, which is fine too.
            let _ = finished.await;
        }
    }

    /// False once the connection has ended for any reason.
    pub(crate) fn is_connected(&self) -> bool {
        self.closed.borrow().is_none()
    }

    /// Resolves when the connection has ended for any reason (server close, error, DISCONNECT).
    /// The hub supervisor learns this from the end of the publish channel instead.
    #[cfg(test)]
    pub(crate) async fn closed(&self) {
        let mut closed = self.closed.clone();
        // An error means the session task is gone, which is also "closed".
        let _ = closed.wait_for(Option::is_some).await;
    }

    /// Why the connection ended, once it has (e.g. "connection closed by the server").
    pub(crate) fn close_reason(&self) -> Option<String> {
        self.closed.borrow().clone()
    }

    /// A handle that does not keep the connection open, for tasks that must publish (method
    /// answers) yet should not outlive the client that owns the connection.
    pub(crate) fn downgrade(&self) -> WeakConnection {
        WeakConnection {
            commands: self.commands.downgrade(),
            closed: self.closed.clone(),
        }
    }

    async fn send(&self, command: Command) -> Result<(), MqttError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| MqttError::Disconnected)
    }
}

/// A [`Connection`] that does not count towards keeping the session alive: once every strong
/// handle is dropped the session disconnects, and [`WeakConnection::upgrade`] returns `None`.
#[derive(Debug, Clone)]
pub(crate) struct WeakConnection {
    commands: mpsc::WeakSender<Command>,
    closed: watch::Receiver<CloseState>,
}

impl WeakConnection {
    /// A handle whose connection is already gone, for tests of code that holds one.
    #[cfg(test)]
    pub(crate) fn detached() -> Self {
        let (commands, _) = mpsc::channel(1);
        let (_, closed) = watch::channel(Some("detached".to_owned()));
        Self {
            commands: commands.downgrade(),
            closed,
        }
    }

    /// A usable handle, if the owning client still exists.
    pub(crate) fn upgrade(&self) -> Option<Connection> {
        Some(Connection {
            commands: self.commands.upgrade()?,
            closed: self.closed.clone(),
        })
    }
}

/// MQTT strings carry a 16-bit length; the codec would silently truncate a longer one and
/// corrupt the stream, so refuse it before encoding.
fn check_string(what: &str, value: &str) -> Result<(), MqttError> {
    if value.len() > usize::from(u16::MAX) {
        return Err(MqttError::Protocol(format!(
            "{what} is {} bytes, MQTT allows at most 65535",
            value.len()
        )));
    }
    Ok(())
}

/// Reads until the first packet, which must be a CONNACK with return code 0.
async fn read_connack<S>(stream: &mut S, rbuf: &mut BytesMut) -> Result<(), MqttError>
where
    S: AsyncRead + Unpin,
{
    loop {
        match Packet::read(rbuf, MAX_INCOMING_PACKET) {
            Ok(Packet::ConnAck(ack)) if ack.code == ConnectReturnCode::Success => return Ok(()),
            Ok(Packet::ConnAck(ack)) => return Err(MqttError::ConnectionRefused(ack.code as u8)),
            Ok(other) => {
                return Err(MqttError::Protocol(format!(
                    "expected CONNACK, got {other:?}"
                )));
            }
            // Codes 6..=255 are reserved, but they are still a refusal; report the number.
            Err(CodecError::InvalidConnectReturnCode(code)) => {
                return Err(MqttError::ConnectionRefused(code));
            }
            Err(CodecError::InsufficientBytes(_)) => {
                if stream.read_buf(rbuf).await? == 0 {
                    return Err(MqttError::Disconnected);
                }
            }
            Err(e) => return Err(MqttError::Protocol(format!("malformed CONNACK: {e}"))),
        }
    }
}
