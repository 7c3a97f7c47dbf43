//! One AMQP connection over any byte stream (TLS on 5671, or a WebSocket on the HTTPS
//! port): protocol header sniffing, SASL or not, `open` with the hub's limits, then one task
//! per session until the client closes or the emulator shuts down, which closes the
//! connection with `amqp:connection:forced` and a reason.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use fe2o3_amqp::acceptor::{ConnectionAcceptor, ListenerConnectionHandle, SessionAcceptor};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::AmqpContext;
use super::conditions::{self, CONNECTION_FORCED};
use super::connection_auth::{ConnectionAuth, PeerInfo};
use super::dps_x509_open;
use super::frames::FullFields;
use super::header::{Prefixed, ProtocolHeader, read_header};
use super::late_frames::{FramingViolation, LateFrames};
use super::request_response::ReplyLinks;
use super::sasl::IotSasl;
use super::session::{ConnectionContext, SessionContext, run_session};

/// How long a closing connection waits for the client's `close`.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// Links per session (handle-max + 1).
const HANDLE_MAX: u32 = 255;

/// Serves one AMQP connection on `stream` until it ends.
pub(crate) async fn serve<S>(stream: S, peer: PeerInfo, amqp: Arc<AmqpContext>)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let remote = peer.remote;
    let mut shutdown = amqp.shutdown.clone();
    if shutdown.is_shutdown() {
        return;
    }
    let Some((mut connection, auth)) = open(stream, peer, &amqp).await else {
        return;
    };
    // A DPS login refused in SASL (dps_sasl.rs, dps_sasl_tpm.rs) or a DPS X.509 certificate
    // refused before open (dps_x509_open.rs) is closed as soon as it is open, as DPS does.
    if let Some(reason) = auth.open_refusal() {
        let error = conditions::error(conditions::UNAUTHORIZED, reason);
        let _ = tokio::time::timeout(CLOSE_WAIT, connection.close_with_error(error)).await;
        tracing::debug!(%remote, "AMQP connection closed: its credential was refused");
        return;
    }
    tracing::debug!(%remote, "AMQP connection opened");
    let ctx = Arc::new(ConnectionContext {
        amqp: amqp.clone(),
        auth,
        links: Arc::new(AtomicUsize::new(0)),
        devices: Default::default(),
    });
    if accept_sessions(&mut connection, ctx.clone(), &mut shutdown, remote).await {
        finish(&mut connection, remote).await;
    }
    // The devices this connection spoke for are disconnected now, not when the last link
    // task lets go of the context.
    ctx.devices.close_all();
}

/// The protocol header, then SASL (or not) and `open`, each within the open time-out. `None`
/// when the client gave up, timed out or asked for a protocol iotemu does not speak (it is
/// answered with the header iotemu does speak, as AMQP 1.0 §2.2 asks).
async fn open<S>(
    mut stream: S,
    peer: PeerInfo,
    amqp: &AmqpContext,
) -> Option<(ListenerConnectionHandle, Arc<ConnectionAuth>)>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let remote = peer.remote;
    let limits = amqp.limits;
    let header = match tokio::time::timeout(limits.open_timeout, read_header(&mut stream)).await {
        Ok(Ok(header)) => header,
        Ok(Err(e)) => {
            tracing::debug!(%remote, error = %e, "AMQP connection ended before the protocol header");
            return None;
        }
        Err(_) => {
            tracing::info!(%remote, "AMQP protocol header timed out");
            return None;
        }
    };
    let auth = Arc::new(ConnectionAuth::new(
        peer,
        amqp.hubs.credential_clock().clone(),
    ));
    let builder = ConnectionAcceptor::builder()
        .container_id(format!("iotemu_{}", uuid::Uuid::new_v4().simple()))
        .max_frame_size(limits.max_frame_size)
        .channel_max(limits.channel_max)
        .idle_time_out(limits.idle_timeout_ms);
    let violation = Arc::new(FramingViolation::default());
    let stream = FullFields::new(
        LateFrames::new(
            Prefixed::new(header, stream),
            limits.max_frame_size as usize,
            violation.clone(),
        ),
        violation,
    );
    let opening = async {
        match ProtocolHeader::classify(header) {
            ProtocolHeader::Sasl => {
                let sasl = IotSasl::new(amqp.hubs.clone(), amqp.dps.clone(), auth.clone());
                let acceptor = builder.sasl_acceptor(sasl).build();
                acceptor.accept(stream).await.map_err(|e| e.to_string())
            }
            ProtocolHeader::Plain => {
                // No SASL: a DPS X.509 registration is judged by its certificate now, so a
                // refusal is announced on the `open` itself, as the service does.
                dps_x509_open::judge_client_certificate(amqp, &auth);
                let refusal = auth
                    .open_refusal()
                    .map(|reason| conditions::error(conditions::UNAUTHORIZED, reason));
                let builder = match refusal.as_ref().and_then(conditions::open_error_properties) {
                    Some(properties) => builder.properties(properties),
                    None => builder,
                };
                let acceptor = builder.build();
                acceptor.accept(stream).await.map_err(|e| e.to_string())
            }
            ProtocolHeader::Unsupported(bytes) => {
                let mut stream = stream;
                let _ = stream
                    .write_all(&ProtocolHeader::counter_offer(&bytes))
                    .await;
                let _ = stream.shutdown().await;
                Err(format!("unsupported protocol header {bytes:02x?}"))
            }
        }
    };
    match tokio::time::timeout(limits.open_timeout, opening).await {
        Ok(Ok(connection)) => Some((connection, auth)),
        Ok(Err(reason)) => {
            tracing::info!(%remote, %reason, "AMQP connection refused");
            None
        }
        Err(_) => {
            tracing::info!(%remote, "AMQP SASL/open did not finish in time");
            None
        }
    }
}

/// One task per session the client begins, until the client closes (`true`: the close is
/// still to be answered) or the emulator shuts down (`false`: closed here with
/// `amqp:connection:forced`).
async fn accept_sessions(
    connection: &mut ListenerConnectionHandle,
    ctx: Arc<ConnectionContext>,
    shutdown: &mut crate::shutdown::ShutdownSignal,
    remote: std::net::SocketAddr,
) -> bool {
    let sessions = SessionAcceptor::builder().handle_max(HANDLE_MAX).build();
    loop {
        tokio::select! {
            incoming = connection.next_incoming_session() => {
                let Some(incoming) = incoming else { return true };
                match sessions.accept_incoming_session(incoming, connection).await {
                    Ok(session) => {
                        let session_ctx = Arc::new(SessionContext {
                            connection: ctx.clone(),
                            replies: ReplyLinks::default(),
                        });
                        tokio::spawn(run_session(session, session_ctx));
                    }
                    Err(e) => {
                        tracing::info!(%remote, error = %e, "AMQP session could not begin");
                    }
                }
            }
            _ = shutdown.recv() => {
                let error = conditions::error(CONNECTION_FORCED, "the emulator is shutting down");
                let _ = tokio::time::timeout(CLOSE_WAIT, connection.close_with_error(error)).await;
                tracing::debug!(%remote, "AMQP connection closed for shutdown");
                return false;
            }
        }
    }
}

async fn finish(connection: &mut ListenerConnectionHandle, remote: std::net::SocketAddr) {
    match tokio::time::timeout(CLOSE_WAIT, connection.on_close()).await {
        Ok(Ok(())) => tracing::debug!(%remote, "AMQP connection closed"),
        // A client that drops the socket right after its `close` is the common case.
        Ok(Err(fe2o3_amqp::connection::Error::TransportError(e))) => {
            tracing::debug!(%remote, error = %e, "AMQP connection ended without a clean close")
        }
        Ok(Err(e)) => tracing::info!(%remote, error = %e, "AMQP connection ended with an error"),
        Err(_) => tracing::debug!(%remote, "AMQP connection did not finish closing"),
    }
}
