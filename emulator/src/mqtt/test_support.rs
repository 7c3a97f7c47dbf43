//! Drives a real session over an in-memory pipe for the handlers' tests: an emulator with
//! the quickstart fixture, a device `d1` with a known key, and a minimal MQTT client.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::task::JoinHandle;

use super::codec::{self, ConnAck, Connect, Packet, Protocol, Publish, QoS, SubAck, Subscribe};
use super::session::{PeerInfo, run_session};
use super::{MqttContext, MqttLimits};
use crate::Emulator;
use crate::auth::keys::SymmetricKey;
use crate::auth::sas::build_token;
use crate::hub::Hub;
use crate::shutdown::Shutdown;

pub(super) const DEVICE: &str = "d1";
const KEY: &str = "c2VydmljZSBrZXkgZm9yIHRlc3RzIG9ubHkgMTIzNA==";
/// The quickstart enrollment (fixtures.rs) and its key.
pub(super) const REGISTRATION_ID: &str = "symm-key-python-device-008";
const ENROLLMENT_KEY: &str =
    "sbDDeEzRuEuGKag+kQKV+T1QGakRtHpsERLP0yPjwR93TrpEgEh/Y07CXstfha6dhIPWvdD1nRxK5T0KGKA+nQ==";
/// Guards against a hang only; no test asserts on time.
const PATIENCE: Duration = Duration::from_secs(10);
const FAR_FUTURE: u64 = 4_000_000_000;

/// An emulator whose sessions the tests run themselves.
pub(super) struct World {
    pub emulator: Emulator,
    pub ctx: Arc<MqttContext>,
    _shutdown: Shutdown,
}

impl World {
    pub(super) async fn start() -> World {
        let emulator = Emulator::builder()
            .quickstart_fixture()
            .retry_after(0)
            .without_https()
            .start()
            .await
            .expect("the emulator starts");
        let key = SymmetricKey::from_base64(KEY).expect("test key");
        emulator
            .default_hub()
            .provision_device(DEVICE, key.clone(), key, None);
        let shutdown = Shutdown::new();
        let ctx = Arc::new(MqttContext {
            dps: emulator.dps().clone(),
            hubs: emulator.hubs().clone(),
            limits: MqttLimits::default(),
            shutdown: shutdown.signal(),
        });
        World {
            emulator,
            ctx,
            _shutdown: shutdown,
        }
    }

    pub(super) fn hub(&self) -> &Arc<Hub> {
        self.emulator.default_hub()
    }

    /// Connects device `d1` with a valid SAS token.
    pub(super) async fn device(&self, clean_session: bool) -> (TestClient, ConnAck) {
        self.device_connect(clean_session, "").await
    }

    /// Connects device `d1` (clean session) with `extra` appended to its username's query.
    pub(super) async fn device_with_username_query(&self, extra: &str) -> (TestClient, ConnAck) {
        self.device_connect(true, extra).await
    }

    async fn device_connect(&self, clean_session: bool, extra: &str) -> (TestClient, ConnAck) {
        let host = self.hub().host_name().to_owned();
        let key = SymmetricKey::from_base64(KEY).expect("test key");
        let token = build_token(
            &format!("{host}/devices/{DEVICE}"),
            key.as_bytes(),
            None,
            FAR_FUTURE,
        );
        let username = format!("{host}/{DEVICE}/?api-version=2021-04-12{extra}");
        TestClient::connect(self, DEVICE, &username, &token, clean_session).await
    }

    /// Connects the quickstart registration to DPS.
    pub(super) async fn registration(&self) -> (TestClient, ConnAck) {
        let scope = self.emulator.id_scope().to_owned();
        let key = SymmetricKey::from_base64(ENROLLMENT_KEY).expect("enrollment key");
        let token = build_token(
            &format!("{scope}/registrations/{REGISTRATION_ID}"),
            key.as_bytes(),
            None,
            FAR_FUTURE,
        );
        let username = format!("{scope}/registrations/{REGISTRATION_ID}/api-version=2021-06-01");
        TestClient::connect(self, REGISTRATION_ID, &username, &token, true).await
    }
}

/// The device's end of the pipe.
pub(super) struct TestClient {
    stream: DuplexStream,
    rbuf: BytesMut,
    session: JoinHandle<()>,
}

impl TestClient {
    async fn connect(
        world: &World,
        client_id: &str,
        username: &str,
        password: &str,
        clean_session: bool,
    ) -> (TestClient, ConnAck) {
        let (client, server) = tokio::io::duplex(1 << 20);
        let peer = PeerInfo {
            remote: ([127, 0, 0, 1], 40000).into(),
            certificates: Vec::new(),
        };
        let session = tokio::spawn(run_session(server, peer, world.ctx.clone()));
        let mut client = TestClient {
            stream: client,
            rbuf: BytesMut::new(),
            session,
        };
        let mut connect = Connect::new(client_id);
        connect.protocol = Protocol::V4;
        connect.keep_alive = 60;
        connect.clean_session = clean_session;
        connect.set_login(username, password);
        client.send(Packet::Connect(connect)).await;
        match client.recv().await {
            Some(Packet::ConnAck(ack)) => (client, ack),
            other => panic!("CONNACK expected, got {other:?}"),
        }
    }

    pub(super) async fn send(&mut self, packet: Packet) {
        let mut buf = BytesMut::new();
        codec::encode(&packet, &mut buf).expect("encodes");
        self.stream.write_all(&buf).await.expect("session reads");
    }

    /// Sends `packets` in one write, as a client with many in flight does.
    pub(super) async fn send_together(&mut self, packets: Vec<Packet>) {
        let mut buf = BytesMut::new();
        for packet in &packets {
            codec::encode(packet, &mut buf).expect("encodes");
        }
        self.stream.write_all(&buf).await.expect("session reads");
    }

    /// Sends `packet` in writes of `piece` bytes, letting the session run between them.
    pub(super) async fn send_in_pieces(&mut self, packet: Packet, piece: usize) {
        let mut buf = BytesMut::new();
        codec::encode(&packet, &mut buf).expect("encodes");
        for chunk in buf.chunks(piece) {
            self.stream.write_all(chunk).await.expect("session reads");
            tokio::task::yield_now().await;
        }
    }

    /// The next packet from the session; `None` once it closed the connection.
    pub(super) async fn recv(&mut self) -> Option<Packet> {
        loop {
            if let Some(packet) = codec::decode(&mut self.rbuf, 1 << 20).expect("decodes") {
                return Some(packet);
            }
            let read = tokio::time::timeout(PATIENCE, self.stream.read_buf(&mut self.rbuf))
                .await
                .expect("the session answers or closes");
            if read.expect("pipe reads") == 0 {
                return None;
            }
        }
    }

    /// The next PUBLISH, anything else being a test failure.
    pub(super) async fn recv_publish(&mut self) -> Publish {
        match self.recv().await {
            Some(Packet::Publish(publish)) => publish,
            other => panic!("PUBLISH expected, got {other:?}"),
        }
    }

    pub(super) async fn subscribe(&mut self, filter: &str, qos: QoS) -> SubAck {
        let mut subscribe = Subscribe::new(filter, qos);
        subscribe.pkid = 1;
        self.send(Packet::Subscribe(subscribe)).await;
        match self.recv().await {
            Some(Packet::SubAck(ack)) => ack,
            other => panic!("SUBACK expected, got {other:?}"),
        }
    }

    pub(super) async fn publish(
        &mut self,
        topic: &str,
        qos: QoS,
        pkid: u16,
        body: impl Into<Bytes>,
    ) {
        let mut publish = Publish::from_bytes(topic, qos, body.into());
        publish.pkid = pkid;
        self.send(Packet::Publish(publish)).await;
    }

    /// Closes the pipe and waits for the session to finish.
    pub(super) async fn disconnect(self) {
        drop(self.stream);
        tokio::time::timeout(PATIENCE, self.session)
            .await
            .expect("the session ends")
            .expect("the session does not panic");
    }
}
