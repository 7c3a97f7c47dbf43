//! [`DeviceClient`]: one device's connection to IoT Hub, authenticated with a SAS token made
//! from the device key, or with an X.509 client certificate, over MQTT or MQTT over
//! WebSocket ([`Transport`]).
//!
//! CONNECT fields are described in [`connector`](super::connector); the operations live in
//! [`operations`](super::operations) (shared with [`ModuleClient`](crate::ModuleClient)) and the
//! connection itself — routing, reconnects, SAS renewal — in the
//! [supervisor](super::supervisor). This file is the public face: the builder and the
//! device-only parts (C2D).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

use super::connector::{Identity, Settings, hub_connection_setters};
use super::error::DeviceError;
use super::message::Message;
use super::method::{MethodHandler, MethodRequest, MethodResponse};
use super::received::ReceivedMessages;
use super::reconnect::ReconnectPolicy;
use super::state::ConnectionState;
use super::supervisor::{self, Supervised};
use super::twin::{DesiredUpdates, Twin};
use crate::RegistrationResult;
use crate::tls::Trust;
use crate::transport::Transport;
use crate::x509::X509Identity;

/// Builder for [`DeviceClient`]; start with [`DeviceClient::builder`],
/// [`DeviceClient::from_registration`] or [`DeviceClient::from_registration_x509`].
#[derive(Debug, Clone)]
pub struct DeviceClientBuilder {
    pub(crate) settings: Settings,
    pub(crate) device_id: String,
}

impl DeviceClientBuilder {
    hub_connection_setters!();

    /// Connects to the hub. This first attempt is not retried: its error is returned (e.g.
    /// [`DeviceError::ConnectionRefused`]); reconnecting starts once connected.
    pub async fn connect(self) -> Result<DeviceClient, DeviceError> {
        let connector = Arc::new(self.settings.connector(Identity::device(&self.device_id))?);
        let opened = connector.open().await?;
        let identity = connector.identity().clone();
        Ok(DeviceClient {
            inner: supervisor::spawn(identity, opened, Some(connector), self.settings.reconnect),
        })
    }

    #[cfg(test)]
    fn connect_options(&self) -> Result<crate::mqtt::ConnectOptions, DeviceError> {
        let connector = self.settings.connector(Identity::device(&self.device_id))?;
        Ok(connector.connect_options()?.0)
    }
}

/// A connected device. Every operation is `&self`, so many can be in flight concurrently
/// (share the client in an `Arc` across tasks).
///
/// The connection is kept up in the background: it is re-established after a loss (see
/// [`ReconnectPolicy`]) and before the SAS token expires, subscriptions are restored, and
/// operations wait while that happens. [`connection_state`](Self::connection_state) shows
/// what is going on. Dropping the client disconnects.
#[derive(Debug)]
pub struct DeviceClient {
    inner: Supervised,
}

impl DeviceClient {
    /// Starts a builder for device `device_id` on hub `hostname` (e.g.
    /// `myhub.azure-devices.net`, or `localhost` for iotemu).
    pub fn builder(
        hostname: impl Into<String>,
        device_id: impl Into<String>,
    ) -> DeviceClientBuilder {
        DeviceClientBuilder {
            settings: Settings::new(hostname.into()),
            device_id: device_id.into(),
        }
    }

    /// A builder for the hub and device id DPS assigned, using the same key that
    /// registered (for a group enrollment, the derived key).
    ///
    /// If the result lacks `assignedHub` or `deviceId`, `connect` fails with
    /// [`DeviceError::Config`].
    pub fn from_registration(
        registration: &RegistrationResult,
        key_b64: impl Into<String>,
    ) -> DeviceClientBuilder {
        Self::for_registration(registration).symmetric_key(key_b64)
    }

    /// A builder for the hub and device id DPS assigned to a TPM device, signing with the hub
    /// key [`TpmProvisioning`](crate::TpmProvisioning) imported into `tpm`.
    pub fn from_tpm_registration(
        registration: &RegistrationResult,
        tpm: std::sync::Arc<dyn crate::Tpm>,
    ) -> DeviceClientBuilder {
        Self::for_registration(registration).tpm(tpm)
    }

    /// A builder for the hub and device id DPS assigned, presenting the same certificate
    /// that registered.
    ///
    /// The device id may differ from the certificate's CN (an individual enrollment can name
    /// its own device id); that is for the hub to judge. If the result lacks `assignedHub` or
    /// `deviceId`, `connect` fails with [`DeviceError::Config`].
    pub fn from_registration_x509(
        registration: &RegistrationResult,
        identity: X509Identity,
    ) -> DeviceClientBuilder {
        Self::for_registration(registration).x509(identity)
    }

    /// The assigned hub and device id, without a credential yet.
    fn for_registration(registration: &RegistrationResult) -> DeviceClientBuilder {
        let state = &registration.registration_state;
        let mut builder = Self::builder(
            state.assigned_hub.clone().unwrap_or_default(),
            state.device_id.clone().unwrap_or_default(),
        );
        if state.assigned_hub.is_none() || state.device_id.is_none() {
            builder.settings.invalid = Some(format!(
                "registration {:?} (status {:?}) has no assigned hub or device id",
                state.registration_id, registration.status
            ));
        }
        builder
    }

    /// Wraps an already connected session that cannot be re-established (tests).
    #[cfg(test)]
    pub(crate) fn new(
        connection: crate::mqtt::Connection,
        incoming: tokio::sync::mpsc::Receiver<crate::mqtt::IncomingPublish>,
        device_id: String,
    ) -> Self {
        let opened = super::connector::Opened {
            connection,
            incoming,
            renew_at: None,
        };
        Self {
            inner: supervisor::spawn(
                Identity::device(device_id),
                opened,
                None,
                ReconnectPolicy::disabled(),
            ),
        }
    }

    /// The device id this client is connected as.
    pub fn device_id(&self) -> &str {
        &self.inner.core.identity.device_id
    }

    /// Sends telemetry at QoS 1; resolves when the hub acknowledges it (PUBACK).
    ///
    /// Fails with [`DeviceError::MessageTooLarge`] before sending anything if body plus
    /// properties exceed 256 KiB. While the client reconnects the call waits; if the
    /// connection is lost before the PUBACK, the message is sent again on the next one with
    /// the DUP flag (so the hub may receive it twice). It fails with
    /// [`DeviceError::Disconnected`] (or the refusal) once the client has stopped, or after
    /// 4 lost connections. There is no timeout of its own; wrap it in `tokio::time::timeout`.
    pub async fn send_telemetry(&self, message: Message) -> Result<(), DeviceError> {
        self.inner.core.send_telemetry(message).await
    }

    /// Fetches the device's twin (`$iothub/twin/GET`): its desired and reported properties,
    /// each with `"$version"`.
    ///
    /// The first twin call subscribes to `$iothub/twin/res/#`. Fails with
    /// [`DeviceError::Service`] if the hub answers with a non-2xx status (e.g. 429). A
    /// request whose connection is lost is sent again on the next one. There is no timeout
    /// of its own; wrap the call in `tokio::time::timeout` if needed.
    pub async fn get_twin(&self) -> Result<Twin, DeviceError> {
        self.inner.core.get_twin().await
    }

    /// Applies `patch` to the reported properties as a JSON merge patch (`null` deletes a
    /// property) and returns the new reported `$version`.
    ///
    /// Fails with [`DeviceError::Service`] if the hub rejects the patch (400 for a non-object
    /// or too deep / too large patch, 429, 5xx). A patch whose connection is lost before the
    /// answer is sent again, so it may be applied twice (harmless for a merge patch).
    pub async fn update_reported(&self, patch: Value) -> Result<u64, DeviceError> {
        self.inner.core.update_reported(patch).await
    }

    /// Subscribes to desired-property changes and returns them as a stream ordered by
    /// `$version`.
    ///
    /// While connected the hub pushes every change. The robust start (iot-hub-devguide-device-
    /// twins) is: call this, then [`get_twin`](Self::get_twin), and ignore patches whose
    /// version is not above [`Twin::desired_version`]. After a reconnect the client does the
    /// GET itself and delivers the whole desired section if it changed meanwhile (see
    /// [`DesiredUpdates`]). Calling this again ends the previous stream and starts a new one.
    pub async fn desired_updates(&self) -> Result<DesiredUpdates, DeviceError> {
        self.inner.core.desired_updates().await
    }

    /// Answers direct methods with `handler` from now on (replacing any earlier handler).
    ///
    /// Subscribes to `$iothub/methods/POST/#` on first use. Each request runs `handler` in
    /// its own task, so a slow method does not hold up others, and its [`MethodResponse`] is
    /// published to `$iothub/methods/res/{status}/?$rid={rid}` as JSON on the connection the
    /// request came on. A request whose body is not JSON is answered with status 400 without
    /// calling the handler. If the handler panics, or the connection is lost while it runs,
    /// no answer is sent and the invoker sees a timeout or an error.
    pub async fn on_method<F, Fut>(&self, handler: F) -> Result<(), DeviceError>
    where
        F: Fn(MethodRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = MethodResponse> + Send + 'static,
    {
        let handler: Arc<MethodHandler> = Arc::new(move |request| Box::pin(handler(request)));
        self.inner.core.on_method(handler).await
    }

    /// Subscribes to cloud-to-device messages (`devices/{deviceId}/messages/devicebound/#`)
    /// and returns them as a stream.
    ///
    /// Each [`ReceivedMessage`](crate::ReceivedMessage) must be
    /// [`complete`](crate::ReceivedMessage::complete)d: that sends the PUBACK, and only then
    /// does the hub delete it. One not completed (dropped, or the application crashed) is
    /// delivered again after the next reconnect; IoT Hub holds at most 50 messages per
    /// device and stops delivering while too many are outstanding. Messages the hub
    /// delivers before this is called (a persistent session redelivering right after
    /// connecting) wait for the first stream. Calling it again ends the previous stream.
    pub async fn c2d_messages(&self) -> Result<ReceivedMessages, DeviceError> {
        self.inner.core.received_messages().await
    }

    /// The connection state, as a watch channel: `borrow()` for the latest,
    /// `changed().await` / `wait_for(..)` to follow it.
    pub fn connection_state(&self) -> watch::Receiver<ConnectionState> {
        self.inner.connection_state()
    }

    /// True while connected (false while reconnecting and once stopped).
    pub fn is_connected(&self) -> bool {
        self.inner.core.is_connected()
    }

    /// Resolves when the client has stopped for good: [`disconnect`](Self::disconnect), a
    /// refusal that retrying cannot fix (CONNACK 1, 2, 4, 5; untrusted server certificate),
    /// or a lost connection with reconnects disabled or exhausted.
    /// [`connection_state`](Self::connection_state) then holds the reason.
    pub async fn closed(&self) {
        self.inner.closed().await;
    }

    /// Sends DISCONNECT, closes the connection and stops reconnecting. Telemetry or twin
    /// calls still waiting fail with [`DeviceError::Disconnected`].
    pub async fn disconnect(self) -> Result<(), DeviceError> {
        self.inner.disconnect().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RegistrationState;
    use crate::hub::message::MAX_MESSAGE_SIZE;
    use crate::test_support::{TEST_CA, connected, device_identity, device_pems, tls_listener};
    use rumqttc::mqttbytes::QoS;
    use rumqttc::mqttbytes::v4::{ConnectReturnCode, Packet, PubAck, SubAck, SubscribeReasonCode};
    use std::collections::HashSet;

    const KEY: &str = "c2VjcmV0c2VjcmV0c2VjcmV0";

    #[test]
    fn connect_fields() {
        let options = DeviceClient::builder("hub.example", "dev-1")
            .symmetric_key(KEY)
            .keep_alive(Duration::from_secs(30))
            .connect_options()
            .unwrap();
        assert_eq!(options.client_id, "dev-1");
        assert_eq!(
            options.username,
            format!(
                "hub.example/dev-1/?api-version=2021-04-12&DeviceClientType=iotemu-device%2F{}",
                env!("CARGO_PKG_VERSION")
            )
        );
        assert!(!options.clean_session);
        assert_eq!(options.keep_alive, Duration::from_secs(30));
        let password = options.password.unwrap();
        assert!(
            password.starts_with("SharedAccessSignature sr=hub.example%2Fdevices%2Fdev-1&sig=")
        );
        assert!(!password.contains("skn="));
    }

    #[test]
    fn x509_connect_fields_have_no_password() {
        let sas = DeviceClient::builder("hub.example", "dev-1")
            .symmetric_key(KEY)
            .connect_options()
            .unwrap();
        let options = DeviceClient::builder("hub.example", "dev-1")
            .x509(device_identity("dev-1"))
            .connect_options()
            .unwrap();
        assert_eq!(options.password, None);
        assert_eq!(options.username, sas.username);
        assert_eq!(options.client_id, "dev-1");
        assert!(!options.clean_session);
    }

    #[test]
    fn x509_builder_needs_exactly_one_credential() {
        let identity = device_identity("dev-1");
        assert!(matches!(
            DeviceClient::builder("h", "d")
                .symmetric_key(KEY)
                .x509(identity.clone())
                .connect_options(),
            Err(DeviceError::Config(_))
        ));
        // The hub does not tie the CN to the device id for self-signed devices.
        assert!(
            DeviceClient::builder("h", "another-device")
                .x509(identity)
                .connect_options()
                .is_ok()
        );
    }

    #[tokio::test]
    async fn both_credentials_fail_before_any_network_io() {
        let (port, listener) = tls_listener().await;
        let result = DeviceClient::builder("localhost", "dev-1")
            .symmetric_key(KEY)
            .x509(device_identity("dev-1"))
            .trust(Trust::CaPem(TEST_CA.into()))
            .port(port)
            .connect()
            .await;
        assert!(matches!(result, Err(DeviceError::Config(_))));
        let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
        assert!(accepted.is_err(), "connect opened a connection");
    }

    #[test]
    fn from_registration_x509_uses_assigned_hub_and_device() {
        let registration = RegistrationResult {
            operation_id: "op".into(),
            status: "assigned".into(),
            registration_state: RegistrationState {
                registration_id: "reg".into(),
                device_id: Some("dev-9".into()),
                assigned_hub: Some("hub.example".into()),
                ..RegistrationState::default()
            },
        };
        let builder = DeviceClient::from_registration_x509(&registration, device_identity("reg"));
        assert_eq!(builder.settings.hostname, "hub.example");
        assert_eq!(builder.device_id, "dev-9");
        assert_eq!(builder.connect_options().unwrap().password, None);

        let mut unassigned = registration.clone();
        unassigned.registration_state.device_id = None;
        assert!(matches!(
            DeviceClient::from_registration_x509(&unassigned, device_identity("reg"))
                .connect_options(),
            Err(DeviceError::Config(_))
        ));
    }

    #[tokio::test]
    async fn connects_with_x509_and_sends() {
        let pems = device_pems("dev-x509");
        let identity = X509Identity::from_pem(&pems.chain, &pems.key).unwrap();
        let (port, listener) = tls_listener().await;
        let connect = DeviceClient::builder("localhost", "dev-x509")
            .x509(identity)
            .trust(Trust::CaPem(TEST_CA.into()))
            .port(port)
            .connect();
        let serve = async {
            let mut server = listener.accept().await.unwrap();
            assert_eq!(server.peer_certificates(), pems.chain_der);
            let (connect, flags) = server.accept_with_flags().await;
            assert_eq!(flags, 0x80, "expected username only, CleanSession 0");
            assert_eq!(connect.client_id, "dev-x509");
            assert_eq!(
                connect.login.unwrap().username,
                format!(
                    "localhost/dev-x509/?api-version=2021-04-12&DeviceClientType=iotemu-device%2F{}",
                    env!("CARGO_PKG_VERSION")
                )
            );
            server
        };
        let (client, mut server) = tokio::join!(connect, serve);
        let client = client.unwrap();
        let serve = async {
            let publish = server.next_publish().await;
            assert_eq!(
                publish.topic,
                "devices/dev-x509/messages/events/%24.ct=application%2Fjson"
            );
            assert_eq!(&publish.payload[..], b"{\"t\":1}");
            server
                .write(Packet::PubAck(PubAck::new(publish.pkid)))
                .await;
            let disconnect = server.read().await;
            assert!(matches!(disconnect, Some(Packet::Disconnect)));
        };
        let sender = async {
            client
                .send_telemetry(Message::new("{\"t\":1}").content_type("application/json"))
                .await
                .unwrap();
            client.disconnect().await.unwrap();
        };
        tokio::join!(sender, serve);
    }

    #[test]
    fn from_registration_uses_assigned_hub_and_device() {
        let registration = RegistrationResult {
            operation_id: "op".into(),
            status: "assigned".into(),
            registration_state: RegistrationState {
                registration_id: "reg".into(),
                device_id: Some("dev-9".into()),
                assigned_hub: Some("hub.example".into()),
                ..RegistrationState::default()
            },
        };
        let builder = DeviceClient::from_registration(&registration, KEY);
        assert_eq!(builder.settings.hostname, "hub.example");
        assert_eq!(builder.device_id, "dev-9");
        assert!(builder.connect_options().is_ok());

        let mut unassigned = registration.clone();
        unassigned.registration_state.assigned_hub = None;
        assert!(matches!(
            DeviceClient::from_registration(&unassigned, KEY).connect_options(),
            Err(DeviceError::Config(_))
        ));
    }

    #[test]
    fn builder_validates() {
        assert!(matches!(
            DeviceClient::builder("h", "d").connect_options(),
            Err(DeviceError::Config(_))
        ));
        assert!(matches!(
            DeviceClient::builder("h", "d")
                .symmetric_key("!!")
                .connect_options(),
            Err(DeviceError::InvalidKey(_))
        ));
    }

    #[tokio::test]
    async fn telemetry_resolves_on_puback() {
        let (connection, incoming, mut server) = connected().await;
        let client = DeviceClient::new(connection, incoming, "dev-1".into());
        let message = Message::new("{\"t\":1}")
            .content_type("application/json")
            .property("k", "v w");
        let serve = async {
            let publish = server.next_publish().await;
            assert_eq!(publish.qos, QoS::AtLeastOnce);
            assert_eq!(
                publish.topic,
                "devices/dev-1/messages/events/%24.ct=application%2Fjson&k=v%20w"
            );
            assert_eq!(&publish.payload[..], b"{\"t\":1}");
            server
                .write(Packet::PubAck(PubAck::new(publish.pkid)))
                .await;
            server
        };
        let (result, _server) = tokio::join!(client.send_telemetry(message), serve);
        result.unwrap();
    }

    #[tokio::test]
    async fn ten_concurrent_sends_each_wait_for_their_own_puback() {
        let (connection, incoming, mut server) = connected().await;
        let client = Arc::new(DeviceClient::new(connection, incoming, "dev-1".into()));
        let sends: Vec<_> = (0..10)
            .map(|i| {
                let client = client.clone();
                tokio::spawn(async move {
                    client
                        .send_telemetry(Message::new(format!("{i}")).message_id(format!("m{i}")))
                        .await
                })
            })
            .collect();
        let mut ids = Vec::new();
        for _ in 0..10 {
            ids.push(server.next_publish().await.pkid);
        }
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 10);
        // Nothing may complete before its PUBACK.
        assert!(sends.iter().all(|s| !s.is_finished()));
        for id in ids.into_iter().rev() {
            server.write(Packet::PubAck(PubAck::new(id))).await;
        }
        for send in sends {
            send.await.unwrap().unwrap();
        }
    }

    #[tokio::test]
    async fn oversized_message_is_rejected_locally() {
        let (connection, incoming, _server) = connected().await;
        let client = DeviceClient::new(connection, incoming, "dev-1".into());
        let exact = Message::new(vec![b'x'; MAX_MESSAGE_SIZE - 6]).property("k", "v");
        assert_eq!(exact.size(), MAX_MESSAGE_SIZE - 4);
        let too_big = Message::new(vec![b'x'; MAX_MESSAGE_SIZE]).property("k", "v");
        assert!(matches!(
            client.send_telemetry(too_big).await,
            Err(DeviceError::MessageTooLarge(size)) if size == MAX_MESSAGE_SIZE + 2
        ));
    }

    #[tokio::test]
    async fn closed_resolves_when_the_server_drops_us() {
        let (connection, incoming, server) = connected().await;
        let client = DeviceClient::new(connection, incoming, "dev-1".into());
        assert!(client.is_connected());
        server.close().await;
        tokio::time::timeout(Duration::from_secs(5), client.closed())
            .await
            .expect("closed() did not resolve");
        assert!(!client.is_connected());
        assert!(matches!(
            client.send_telemetry(Message::new("x")).await,
            Err(DeviceError::Disconnected)
        ));
    }

    #[tokio::test]
    async fn connects_over_tls_and_sends() {
        let (port, listener) = tls_listener().await;
        let connect = DeviceClient::builder("localhost", "dev-1")
            .symmetric_key(KEY)
            .trust(Trust::CaPem(TEST_CA.into()))
            .port(port)
            .connect();
        let serve = async {
            let mut server = listener.accept().await.unwrap();
            let connect = server.accept().await;
            assert_eq!(connect.client_id, "dev-1");
            assert!(!connect.clean_session);
            assert_eq!(connect.keep_alive, 60);
            let login = connect.login.unwrap();
            assert!(
                login
                    .username
                    .starts_with("localhost/dev-1/?api-version=2021-04-12&")
            );
            assert!(server.peer_certificates().is_empty());
            assert!(
                login
                    .password
                    .starts_with("SharedAccessSignature sr=localhost%2Fdevices%2Fdev-1&")
            );
            server
        };
        let (client, mut server) = tokio::join!(connect, serve);
        let client = client.unwrap();
        let serve = async {
            let publish = server.next_publish().await;
            server
                .write(Packet::PubAck(PubAck::new(publish.pkid)))
                .await;
            let disconnect = server.read().await;
            assert!(matches!(disconnect, Some(Packet::Disconnect)));
        };
        let sender = async {
            client.send_telemetry(Message::new("hello")).await.unwrap();
            client.disconnect().await.unwrap();
        };
        tokio::join!(sender, serve);
    }

    #[tokio::test]
    async fn refused_connection_reports_connack_code() {
        let (port, listener) = tls_listener().await;
        let connect = DeviceClient::builder("localhost", "dev-1")
            .symmetric_key(KEY)
            .trust(Trust::CaPem(TEST_CA.into()))
            .port(port)
            .connect();
        let serve = async {
            let mut server = listener.accept().await.unwrap();
            server.accept_with(ConnectReturnCode::NotAuthorized).await;
            server
        };
        let (client, _server) = tokio::join!(connect, serve);
        assert!(matches!(client, Err(DeviceError::ConnectionRefused(5))));
    }
    /// Reads the next SUBSCRIBE (skipping PUBACKs for our publishes), checks its filter and
    /// grants QoS 1.
    async fn expect_subscribe(server: &mut crate::test_support::FakeServer, filter: &str) {
        loop {
            match server.read().await {
                Some(Packet::Subscribe(sub)) => {
                    assert_eq!(sub.filters.len(), 1);
                    assert_eq!(sub.filters[0].path, filter);
                    server
                        .write(Packet::SubAck(SubAck::new(
                            sub.pkid,
                            vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)],
                        )))
                        .await;
                    return;
                }
                Some(Packet::PubAck(_)) => {}
                other => panic!("expected SUBSCRIBE {filter}, got {other:?}"),
            }
        }
    }

    async fn hub_client() -> (DeviceClient, crate::test_support::FakeServer) {
        let (connection, incoming, server) = connected().await;
        (
            DeviceClient::new(connection, incoming, "dev-1".into()),
            server,
        )
    }

    #[tokio::test]
    async fn get_twin_subscribes_once_and_matches_rid() {
        let (client, mut server) = hub_client().await;
        let serve = async {
            expect_subscribe(&mut server, "$iothub/twin/res/#").await;
            let first = server.next_publish_acked().await;
            let second = server.next_publish_acked().await;
            let mut topics = [first.topic.clone(), second.topic.clone()];
            topics.sort();
            assert_eq!(
                topics,
                ["$iothub/twin/GET/?$rid=1", "$iothub/twin/GET/?$rid=2"]
            );
            // Answer out of order, with an unrelated publish and a stray rid in between.
            server
                .publish("devices/dev-1/messages/devicebound/a=b", "c2d")
                .await;
            server.publish("$iothub/twin/res/200/?$rid=99", "{}").await;
            server
                .publish(
                    "$iothub/twin/res/200/?$rid=2",
                    r#"{"desired":{"n":2,"$version":2},"reported":{"$version":1}}"#,
                )
                .await;
            server
                .publish(
                    "$iothub/twin/res/200?%24rid=1",
                    r#"{"desired":{"n":1,"$version":1},"reported":{"$version":1}}"#,
                )
                .await;
            server
        };
        let calls = async { tokio::join!(client.get_twin(), client.get_twin()) };
        let ((a, b), _server) = tokio::join!(calls, serve);
        let (a, b) = (a.unwrap(), b.unwrap());
        let mut ns = [a.desired["n"].as_u64(), b.desired["n"].as_u64()];
        ns.sort();
        assert_eq!(ns, [Some(1), Some(2)]);
        // Whichever call published rid 2 got the twin with desired version 2.
        for twin in [a, b] {
            assert_eq!(twin.desired_version(), twin.desired["n"].as_u64());
            assert_eq!(twin.reported_version(), Some(1));
        }
    }

    #[tokio::test]
    async fn update_reported_returns_version_and_errors_are_service_errors() {
        let (client, mut server) = hub_client().await;
        let serve = async {
            expect_subscribe(&mut server, "$iothub/twin/res/#").await;
            let patch = server.next_publish_acked().await;
            assert_eq!(
                patch.topic,
                "$iothub/twin/PATCH/properties/reported/?$rid=1"
            );
            assert_eq!(&patch.payload[..], br#"{"t":1}"#);
            server
                .publish("$iothub/twin/res/204/?$rid=1&$version=5", "")
                .await;
            let bad = server.next_publish_acked().await;
            assert_eq!(bad.topic, "$iothub/twin/PATCH/properties/reported/?$rid=2");
            server
                .publish(
                    "$iothub/twin/res/400/?$rid=2",
                    r#"{"errorCode":400004,"message":"bad"}"#,
                )
                .await;
            server
        };
        let calls = async {
            let ok = client.update_reported(serde_json::json!({"t": 1})).await;
            let bad = client.update_reported(serde_json::json!(3)).await;
            (ok, bad)
        };
        let ((ok, bad), _server) = tokio::join!(calls, serve);
        assert_eq!(ok.unwrap(), 5);
        match bad {
            Err(DeviceError::Service { status, body }) => {
                assert_eq!(status, 400);
                assert!(body.contains("400004"));
            }
            other => panic!("expected a service error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn pending_twin_request_fails_when_the_connection_closes() {
        let (client, mut server) = hub_client().await;
        let serve = async {
            expect_subscribe(&mut server, "$iothub/twin/res/#").await;
            server.next_publish_acked().await;
            server.close().await;
        };
        let (result, ()) = tokio::join!(client.get_twin(), serve);
        assert!(matches!(result, Err(DeviceError::Disconnected)));
        assert!(matches!(
            client.get_twin().await,
            Err(DeviceError::Disconnected)
        ));
    }

    #[tokio::test]
    async fn desired_patches_arrive_in_order() {
        let (client, mut server) = hub_client().await;
        let (updates, ()) = tokio::join!(client.desired_updates(), async {
            expect_subscribe(&mut server, "$iothub/twin/PATCH/properties/desired/#").await;
        });
        let mut updates = updates.unwrap();
        server
            .publish(
                "$iothub/twin/PATCH/properties/desired/?$version=2",
                r#"{"x":1,"$version":2}"#,
            )
            .await;
        server
            .publish("$iothub/twin/PATCH/properties/desired/", "not json")
            .await;
        // No `$version` in the topic: taken from the body.
        server
            .publish(
                "$iothub/twin/PATCH/properties/desired",
                r#"{"x":null,"$version":3}"#,
            )
            .await;
        let first = updates.next().await.unwrap();
        assert_eq!(first.version, 2);
        assert_eq!(first.patch, serde_json::json!({"x":1,"$version":2}));
        let second = updates.next().await.unwrap();
        assert_eq!(second.version, 3);
        assert_eq!(second.patch["x"], serde_json::Value::Null);

        // A second call subscribes no more and takes the stream over.
        let mut newer = client.desired_updates().await.unwrap();
        assert!(updates.next().await.is_none());
        server
            .publish("$iothub/twin/PATCH/properties/desired/?$version=4", "{}")
            .await;
        assert_eq!(newer.next().await.unwrap().version, 4);
        server.close().await;
        assert!(newer.next().await.is_none());
    }

    #[tokio::test]
    async fn method_requests_are_answered_by_the_handler() {
        let (client, mut server) = hub_client().await;
        let install = client.on_method(|request: MethodRequest| async move {
            match request.name.as_str() {
                "reboot" => MethodResponse::new(201, serde_json::json!({"got": request.payload})),
                _ => MethodResponse::new(404, serde_json::Value::Null),
            }
        });
        let (installed, ()) = tokio::join!(install, async {
            expect_subscribe(&mut server, "$iothub/methods/POST/#").await;
        });
        installed.unwrap();

        server
            .publish("$iothub/methods/POST/reboot/?$rid=42", r#"{"delay":1}"#)
            .await;
        let answer = server.next_publish_acked().await;
        assert_eq!(answer.topic, "$iothub/methods/res/201/?$rid=42");
        assert_eq!(&answer.payload[..], br#"{"got":{"delay":1}}"#);

        // No `/` before `?`, encoded rid, empty body.
        server
            .publish("$iothub/methods/POST/other?$rid=a%2Fb", "")
            .await;
        let answer = server.next_publish_acked().await;
        assert_eq!(answer.topic, "$iothub/methods/res/404/?$rid=a%2Fb");
        assert_eq!(&answer.payload[..], b"null");

        // A body that is not JSON never reaches the handler.
        server
            .publish("$iothub/methods/POST/reboot/?$rid=7", "{oops")
            .await;
        let answer = server.next_publish_acked().await;
        assert_eq!(answer.topic, "$iothub/methods/res/400/?$rid=7");

        // Replacing the handler does not subscribe again.
        client
            .on_method(|_| async { MethodResponse::new(200, serde_json::json!("v2")) })
            .await
            .unwrap();
        server
            .publish("$iothub/methods/POST/reboot/?$rid=8", "1")
            .await;
        let answer = server.next_publish_acked().await;
        assert_eq!(answer.topic, "$iothub/methods/res/200/?$rid=8");
        assert_eq!(&answer.payload[..], br#""v2""#);
    }
}
