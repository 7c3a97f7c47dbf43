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

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use futures_util::FutureExt as _;
use futures_util::Stream as _;
use futures_util::task::AtomicWaker;
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_stream::wrappers::WatchStream;

use super::MqttContext;
use super::codec::{self, ConnAck, ConnectReturnCode, Packet};
use super::connect::{self, ConnectFailure, Turnaway};
use super::dispatch::Dispatcher;
use crate::faults::FaultAction;
use crate::hub::connections::Outbound;
use crate::hub::push_queue;

/// What the transport knows about the peer before MQTT starts.
pub struct PeerInfo {
    pub remote: SocketAddr,
    /// The certificate chain the client sent in the TLS handshake, leaf first (may be empty).
    pub certificates: Vec<CertificateDer<'static>>,
}

/// Why a session ended; logged once per connection.
pub(super) type CloseReason = String;

/// Runs one connection to completion over any byte stream (TLS, or WebSocket messages).
///
/// The stream is boxed before the session's future is made: an async fn's arguments are
/// stored twice in its future (as captured and as moved into the body), and a TLS stream is
/// 1.2 KB, so every held session would pay for a second, unused copy (docs/benchmarks.md,
/// per-session memory).
pub fn run_session<S>(
    stream: S,
    peer: PeerInfo,
    ctx: Arc<MqttContext>,
) -> impl Future<Output = ()> + use<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    held_session(Box::new(stream), peer, ctx)
}

async fn held_session<S>(mut stream: Box<S>, peer: PeerInfo, ctx: Arc<MqttContext>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // The CONNECT and what it proved are dropped once the session is open: locals of this
    // function would be stored in every held session's future (docs/benchmarks.md, per-session
    // memory). The opening is boxed for the same reason: its state (1.9 KB) lives only while
    // it runs instead of sizing the whole session's future.
    let Some(Opened {
        mut dispatcher,
        rbuf,
        keep_alive,
    }) = Box::pin(open(&mut stream, &peer, &ctx)).await
    else {
        return;
    };
    let mut wakeups = Wakeups::new(&mut dispatcher, &ctx);
    let reason = serve(&mut stream, &mut dispatcher, &mut wakeups, rbuf, keep_alive).await;
    // The outbox's name of the client: the session keeps no copy of its own.
    let name = std::mem::take(&mut dispatcher.out.client);
    // The hub's pushes stop being accepted before the connection is detached.
    drop(wakeups);
    dispatcher.close();
    tracing::info!(remote = %peer.remote, client = %name, %reason, "client disconnected");
    close(&mut stream).await;
}

/// A session past its CONNACK: what [`serve`] needs.
struct Opened {
    dispatcher: Dispatcher,
    /// Packets that arrived behind the CONNECT.
    rbuf: BytesMut,
    keep_alive: Duration,
}

/// Reads and answers the CONNECT; `None` when the connection was refused or closed.
async fn open<S>(stream: &mut S, peer: &PeerInfo, ctx: &Arc<MqttContext>) -> Option<Opened>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Empty: the first reads go through `read_some`'s inline buffer, so a connection that
    // has not sent its CONNECT yet holds no read buffer.
    let mut rbuf = BytesMut::new();
    let connect = match connect::read_connect(stream, &mut rbuf, ctx).await {
        Ok(connect) => connect,
        Err(ConnectFailure::Refuse(level)) => {
            tracing::warn!(remote = %peer.remote, level, code = 1, "connection refused: only MQTT 3.1.1 (level 4) is supported");
            refuse(stream, ConnectReturnCode::RefusedProtocolVersion).await;
            return None;
        }
        Err(ConnectFailure::Close(reason)) => {
            tracing::info!(remote = %peer.remote, %reason, "connection closed before CONNECT");
            return None;
        }
    };
    let connect::Accepted { client, fault } = match connect::authenticate(&connect, peer, ctx) {
        Ok(accepted) => accepted,
        Err(Turnaway::Refuse(code)) => {
            refuse(stream, code).await;
            return None;
        }
        Err(Turnaway::Drop) => {
            tracing::info!(remote = %peer.remote, client_id = %connect.client_id, "connection dropped by an iotemu fault before its CONNACK");
            close(stream).await;
            return None;
        }
        Err(Turnaway::Stall) => {
            tracing::info!(remote = %peer.remote, client_id = %connect.client_id, "CONNECT stalled by an iotemu fault: no CONNACK");
            // Boxed, as every rare await here: inline it would size every session's task.
            Box::pin(super::faults::stall(stream, &ctx.shutdown)).await;
            return None;
        }
    };
    // Boxed: a store write awaited once per connection need not size every session's task.
    if let Err(code) = Box::pin(connect::record_model_id(&client, &connect)).await {
        refuse(stream, code).await;
        return None;
    }
    let keep_alive = connect::keep_alive_timeout(&connect, ctx);
    let name = client.name();
    tracing::info!(remote = %peer.remote, client = %name, keep_alive = connect.keep_alive, "client connected");
    let dispatcher = Dispatcher::open(client, ctx.clone(), connect.clean_session);
    match fault.map(|hit| hit.action) {
        // The CONNACK waits in the outbox until the delay has passed.
        Some(FaultAction::Delay(delay)) => {
            Box::pin(crate::faults::hold(delay, &ctx.shutdown)).await;
        }
        Some(FaultAction::Drop { after_ack: true }) => {
            let _ = stream.write_all(dispatcher.out.pending()).await;
            let _ = stream.flush().await;
            dispatcher.close();
            tracing::info!(remote = %peer.remote, client = %name, "connection dropped by an iotemu fault after its CONNACK");
            close(stream).await;
            return None;
        }
        _ => {}
    }
    Some(Opened {
        dispatcher,
        rbuf,
        keep_alive,
    })
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
///
/// Per message this loop does one read, the dispatch and one write: no task hop, and nothing
/// is registered anew per iteration — the one timer (keep-alive and credential expiry) and the
/// wake-ups outlive the iterations, so a stop-and-wait client costs no timer-wheel or notify
/// traffic per message.
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
    let mut deadlines = Deadlines {
        last_heard: Instant::now(),
        keep_alive,
        token_expiry: wakeups.token_deadline,
        clock: wakeups.clock.clone(),
    };
    // Packets a client sent right behind its CONNECT, before seeing the CONNACK (MQTT
    // 3.1.1 §3.1.4 allows it), arrived with it and are already buffered.
    if let Err(reason) = dispatcher.handle_buffered(&mut rbuf).await {
        let _ = stream.write_all(dispatcher.out.pending()).await;
        return reason;
    }
    let timer = tokio::time::sleep_until(deadlines.next());
    tokio::pin!(timer);
    loop {
        // A fault that delays a delivery holds what is pending; the connection reads nothing
        // else meanwhile, as a slow service would behave.
        dispatcher.hold_if_asked().await;
        if let Err(e) = flush(stream, dispatcher).await {
            return format!("write failed: {e}");
        }
        // A fault that drops the connection around a delivery closes it once that is written.
        if let Some(reason) = dispatcher.out.take_closing() {
            return reason;
        }
        if rbuf.is_empty() {
            // Nothing partial is kept: a session waiting for its client holds no read buffer.
            rbuf = BytesMut::new();
        }
        tokio::select! {
            read = read_some(stream, &mut rbuf) => {
                match read {
                    Ok(0) => return "peer closed the connection".into(),
                    Ok(_) => deadlines.last_heard = Instant::now(),
                    Err(e) => return format!("read failed: {e}"),
                }
                if let Err(reason) = dispatcher.handle_buffered(&mut rbuf).await {
                    // Flush what was already answered (e.g. SUBACKs) first.
                    let _ = stream.write_all(dispatcher.out.pending()).await;
                    return reason;
                }
            }
            () = &mut timer => {
                if let Some(reason) = deadlines.passed(Instant::now()) {
                    return reason;
                }
                // The client was heard since the timer was set: wait for the new deadline.
                timer.as_mut().reset(deadlines.next());
            }
            woken = wakeups.next() => match woken {
                Wakeup::Push(pushed) => dispatcher.on_push(pushed),
                Wakeup::Close(reason) => return reason,
                Wakeup::ClockAdvanced => {
                    // The credential's expiry came closer (`crate::clock`).
                    if let Some(reason) = deadlines.passed(Instant::now()) {
                        return reason;
                    }
                    timer.as_mut().reset(deadlines.next());
                }
            },
        }
    }
}

/// The connection's two deadlines, served by one timer: silence longer than the keep-alive
/// timeout (real time), and the credential's expiry (the credential clock, which a test may
/// advance: `Emulator::advance_with_credentials`).
struct Deadlines {
    last_heard: Instant,
    keep_alive: Duration,
    /// In the clock's frame ([`Clock::instant_now`](crate::clock::Clock::instant_now)).
    token_expiry: Option<Instant>,
    clock: crate::clock::Clock,
}

impl Deadlines {
    fn keep_alive_due(&self) -> Instant {
        self.last_heard + self.keep_alive
    }

    /// When, in real time, the credential expires as the clock stands now.
    fn token_expiry_due(&self) -> Option<Instant> {
        self.token_expiry
            .map(|expiry| self.clock.real_instant(expiry))
    }

    /// The earlier deadline.
    fn next(&self) -> Instant {
        let due = self.keep_alive_due();
        self.token_expiry_due()
            .map_or(due, |expiry| expiry.min(due))
    }

    /// Why the connection ends at `now` (real time), if a deadline has passed.
    fn passed(&self, now: Instant) -> Option<CloseReason> {
        if self.token_expiry_due().is_some_and(|expiry| expiry <= now) {
            return Some("SAS token expired (401003)".into());
        }
        (self.keep_alive_due() <= now).then(|| "keep-alive timeout".into())
    }
}

/// Bytes kept inline for a read while no partial packet is buffered: a whole small packet
/// (a stop-and-wait PUBLISH, a PUBACK, a PINGREQ) fits, and an idle session keeps no heap
/// buffer waiting for its client.
const FIRST_READ: usize = 512;
/// Room reserved per read while packets are arriving.
const READ_CHUNK: usize = 4096;

/// Reads what the client sent into `rbuf`; `Ok(0)` is the end of the stream. Cancel-safe:
/// bytes are only taken from the stream in the poll that returns them.
pub(super) async fn read_some<S>(stream: &mut S, rbuf: &mut BytesMut) -> std::io::Result<usize>
where
    S: AsyncRead + Unpin,
{
    if !rbuf.is_empty() {
        // A packet is partly here: read the rest straight into the buffer.
        rbuf.reserve(READ_CHUNK);
        return stream.read_buf(rbuf).await;
    }
    let mut first = [0u8; FIRST_READ];
    let n = stream.read(&mut first).await?;
    rbuf.extend_from_slice(first.get(..n).unwrap_or_default());
    if n == FIRST_READ {
        // More may be waiting already (a burst of publishes): take what is there now, without
        // waiting, so a busy client is read in chunks rather than in small pieces.
        rbuf.reserve(READ_CHUNK);
        if let Some(more) = stream.read_buf(rbuf).now_or_never() {
            let more = more?;
            if more == 0 {
                // The end of the stream is reported on the next read, after these bytes.
                return Ok(n);
            }
            return Ok(n + more);
        }
    }
    Ok(n)
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

/// What wakes a session besides its socket and its deadlines.
enum Wakeup {
    /// The hub pushed something to the device.
    Push(Outbound),
    /// The session must end.
    Close(CloseReason),
    /// The credential clock was advanced: the credential's expiry may have come.
    ClockAdvanced,
}

/// A future made once per session: the hub's kick or the emulator's shutdown.
type Closing = Pin<Box<dyn Future<Output = CloseReason> + Send>>;

/// The session's other wake-up sources: the hub's pushes and kick, and the emulator's
/// shutdown. Made once per session, so waiting on them costs no registration per message,
/// and polled only after one of them woke the session: the session loop asks for the next
/// wake-up on every message, and polling the sources then (two notification checks under
/// their locks and the push queue) was about a seventh of the server's instructions per
/// stop-and-wait message (docs/benchmarks.md).
struct Wakeups {
    /// Replaced by a newer connection, the device disabled or deleted, or shutdown.
    closing: Closing,
    /// The hub's pushes for this device (desired patches, methods, C2D, inputs).
    pushes: Option<push_queue::Receiver<Outbound>>,
    /// When the SAS token (or certificate-less credential) stops being valid, in the
    /// credential clock's frame: the life the token had left when presented, aging with it.
    token_deadline: Option<Instant>,
    clock: crate::clock::Clock,
    /// The clock's advances, watched only by sessions whose credential expires.
    advanced: Option<WatchStream<Duration>>,
    /// What the sources wake: records that they fired, then wakes the session's task.
    fired: Arc<SourcesFired>,
    /// `fired` as a waker, made once.
    sources_waker: Waker,
}

/// Whether a wake-up source fired since the sources were last polled.
struct SourcesFired {
    fired: AtomicBool,
    session: AtomicWaker,
}

impl Wake for SourcesFired {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        self.session.wake();
    }
}

impl Wakeups {
    fn new(dispatcher: &mut Dispatcher, ctx: &MqttContext) -> Wakeups {
        // The token's expiry was computed by the client's clock, which advancing ours did not
        // move: its remaining life is taken by the wall clock, then ages with the credential
        // clock (`Hubs::credential_clock`). Checked: a credential valid for millennia must
        // not overflow the clock; no representable deadline means none to enforce.
        let clock = ctx.hubs.credential_clock().clone();
        let token_deadline = dispatcher.client().expires_at().and_then(|at| {
            let left = at
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO);
            clock.instant_now().checked_add(left)
        });
        let advanced = token_deadline.map(|_| WatchStream::from_changes(clock.subscribe()));
        let kicked = dispatcher.kicked();
        let mut shutdown = ctx.shutdown.clone();
        let closing: Closing = Box::pin(async move {
            let kicked = async {
                match kicked {
                    Some(kicked) => kicked.notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = kicked => "closed by the hub: a newer connection replaced it (400027), or the device was disabled or deleted".into(),
                () = shutdown.recv() => "emulator shutting down".into(),
            }
        });
        // Fired at first, so the first wait polls (and so registers with) every source.
        let fired = Arc::new(SourcesFired {
            fired: AtomicBool::new(true),
            session: AtomicWaker::new(),
        });
        Wakeups {
            closing,
            pushes: dispatcher.take_pushes(),
            token_deadline,
            clock,
            advanced,
            sources_waker: Waker::from(fired.clone()),
            fired,
        }
    }

    /// The next wake-up. Cancel-safe: the session drops it whenever the socket wins.
    async fn next(&mut self) -> Wakeup {
        std::future::poll_fn(|cx| {
            // Registered before the flag is read: a source firing in between still wakes us.
            self.fired.session.register(cx.waker());
            if !self.fired.fired.swap(false, Ordering::AcqRel) {
                return Poll::Pending;
            }
            let Wakeups {
                closing,
                pushes,
                advanced,
                sources_waker,
                ..
            } = self;
            let woken = poll_sources(
                closing,
                pushes,
                advanced,
                &mut Context::from_waker(sources_waker),
            );
            if woken.is_ready() {
                // More may be ready behind this one (a queued push wakes nobody again), so
                // the next wait polls the sources again.
                self.fired.fired.store(true, Ordering::Release);
            }
            woken
        })
        .await
    }
}

/// Polls every wake-up source with `cx` (the sources' waker).
fn poll_sources(
    closing: &mut Closing,
    pushes: &mut Option<push_queue::Receiver<Outbound>>,
    advanced: &mut Option<WatchStream<Duration>>,
    cx: &mut Context<'_>,
) -> Poll<Wakeup> {
    if let Poll::Ready(reason) = closing.as_mut().poll(cx) {
        return Poll::Ready(Wakeup::Close(reason));
    }
    if let Some(stream) = advanced {
        match Pin::new(stream).poll_next(cx) {
            Poll::Ready(Some(_)) => return Poll::Ready(Wakeup::ClockAdvanced),
            // The clock is gone with its emulator: no advance comes any more.
            Poll::Ready(None) => *advanced = None,
            Poll::Pending => {}
        }
    }
    if let Some(receiver) = pushes {
        match receiver.poll_recv(cx) {
            Poll::Ready(Some(pushed)) => return Poll::Ready(Wakeup::Push(pushed)),
            // The hub dropped its sender (the device was detached): nothing more comes.
            Poll::Ready(None) => *pushes = None,
            Poll::Pending => {}
        }
    }
    Poll::Pending
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

    #[test]
    fn one_timer_serves_keep_alive_and_token_expiry() {
        use super::Deadlines;
        use std::time::Duration;
        let start = tokio::time::Instant::now();
        let secs = Duration::from_secs;
        let clock = crate::clock::Clock::default();
        let mut deadlines = Deadlines {
            last_heard: start,
            keep_alive: secs(90),
            token_expiry: Some(start + secs(60)),
            clock: clock.clone(),
        };
        assert_eq!(deadlines.next(), start + secs(60), "the earlier deadline");
        assert_eq!(deadlines.passed(start + secs(59)), None);
        assert!(
            deadlines
                .passed(start + secs(60))
                .unwrap()
                .contains("401003")
        );
        // Advancing the credential clock brings the token's expiry closer, not keep-alive's.
        clock.advance(secs(30)).unwrap();
        assert_eq!(deadlines.next(), start + secs(30));
        assert!(
            deadlines
                .passed(start + secs(30))
                .unwrap()
                .contains("401003")
        );
        deadlines.token_expiry = None;
        assert_eq!(deadlines.next(), start + secs(90));
        // Heard from since the timer was set: the keep-alive deadline moves.
        deadlines.last_heard = start + secs(80);
        assert_eq!(deadlines.passed(start + secs(90)), None);
        assert_eq!(deadlines.next(), start + secs(170));
        assert_eq!(
            deadlines.passed(start + secs(170)).as_deref(),
            Some("keep-alive timeout")
        );
    }

    /// One timer serves keep-alive and token expiry and is reset only when it fires early: a
    /// deadline that passed while the client kept talking moves on, and silence still ends
    /// the session.
    #[tokio::test]
    async fn keep_alive_still_closes_a_session_after_traffic() {
        use std::sync::Arc;
        use std::time::Duration;
        let mut world = World::start().await;
        // A 2 s keep-alive timeout (the cap; the test client asks for 60 s), and traffic every
        // 0.5 s for 3 s: the first deadline passes while the client is talking.
        let ctx = &world.ctx;
        world.ctx = Arc::new(crate::mqtt::MqttContext {
            dps: ctx.dps.clone(),
            hubs: ctx.hubs.clone(),
            limits: crate::mqtt::MqttLimits {
                max_keep_alive_timeout: Duration::from_secs(2),
                ..ctx.limits
            },
            shutdown: ctx.shutdown.clone(),
        });
        let (mut device, _) = world.device(true).await;
        for pkid in 1..=6u16 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            device
                .publish("devices/d1/messages/events/", QoS::AtLeastOnce, pkid, "x")
                .await;
            assert!(
                matches!(device.recv().await, Some(Packet::PubAck(a)) if a.pkid == pkid),
                "open while the client talks"
            );
        }
        assert!(device.recv().await.is_none(), "closed after 2 s of silence");
        device.disconnect().await;
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

    /// A stream as large as a TLS stream (1.2 KB inline), to show what a session's future
    /// holds of it.
    struct Padded {
        inner: tokio::io::DuplexStream,
        _tls_sized: [u8; 1216],
    }

    impl tokio::io::AsyncRead for Padded {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    impl tokio::io::AsyncWrite for Padded {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
        }
        fn poll_flush(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.inner).poll_flush(cx)
        }
        fn poll_shutdown(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    /// Every held session pays for its future's size (docs/benchmarks.md, per-session
    /// memory): the stream is kept once, outside it, so a larger stream does not grow it,
    /// and the CONNECT opening does not size it either.
    #[tokio::test]
    async fn a_session_future_holds_its_stream_outside_and_stays_small() {
        let world = World::start().await;
        let peer = || super::PeerInfo {
            remote: ([127, 0, 0, 1], 40000).into(),
            certificates: Vec::new(),
        };
        let (_client, small) = tokio::io::duplex(64);
        let small = super::run_session(small, peer(), world.ctx.clone());
        let (_client, inner) = tokio::io::duplex(64);
        let padded = Padded {
            inner,
            _tls_sized: [0; 1216],
        };
        let large = super::run_session(padded, peer(), world.ctx.clone());
        assert_eq!(
            std::mem::size_of_val(&small),
            std::mem::size_of_val(&large),
            "the stream's size does not reach the session's future"
        );
        // Serving (the largest state that persists) is about 2 KB; the opening alone was
        // 1.9 KB more when it was inline.
        assert!(
            std::mem::size_of_val(&large) < 3 * 1024,
            "session future: {} bytes",
            std::mem::size_of_val(&large)
        );
    }
}
