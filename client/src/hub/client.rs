//! [`DeviceClient`]: one device's MQTT connection to IoT Hub, authenticated with a SAS token
//! made from the device key, or with an X.509 client certificate.
//!
//! CONNECT fields follow spec/protocol.md §5.2: client id = device id, username
//! `{hostname}/{deviceId}/?api-version=2021-04-12&DeviceClientType=…`, password = SAS over
//! `{hostname}/devices/{deviceId}` without `skn` (none at all with X.509, whose chain goes in
//! the TLS handshake), CleanSession 0 like every official SDK.
//!
//! A SAS token is not renewed: the hub closes the connection when it expires (after
//! `sas_ttl`), which [`DeviceClient::closed`] reports; connect again to continue. An X.509
//! connection has no token and lasts until the certificate stops being accepted.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::error::DeviceError;
use super::message::{MAX_MESSAGE_SIZE, Message};
use super::property_bag::telemetry_topic;
use crate::RegistrationResult;
use crate::credential::Credential;
use crate::encode::encode;
use crate::mqtt::{self, ConnectOptions, Connection};
use crate::sas::{decode_key, generate_sas_token};
use crate::tls::{Trust, client_config};
use crate::x509::X509Identity;

/// Hub device API version, as in the current docs and the Node SDK.
const API_VERSION: &str = "2021-04-12";
const DEFAULT_PORT: u16 = 8883;
const DEFAULT_SAS_TTL: Duration = Duration::from_secs(3600);
const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(60);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Builder for [`DeviceClient`]; start with [`DeviceClient::builder`],
/// [`DeviceClient::from_registration`] or [`DeviceClient::from_registration_x509`].
#[derive(Debug, Clone)]
pub struct DeviceClientBuilder {
    hostname: String,
    device_id: String,
    symmetric_key: Option<String>,
    x509: Option<X509Identity>,
    trust: Trust,
    port: u16,
    sas_ttl: Duration,
    keep_alive: Duration,
    connect_timeout: Duration,
    /// Set when the builder was made from an unusable registration; reported by `connect`.
    invalid: Option<String>,
}

impl DeviceClientBuilder {
    /// The device's primary or secondary key.
    pub fn symmetric_key(mut self, key_b64: impl Into<String>) -> Self {
        self.symmetric_key = Some(key_b64.into());
        self
    }

    /// Authenticate with an X.509 certificate instead of a key: a self-signed device
    /// registered by thumbprint, or a CA-signed one whose CN is the device id (the hub checks
    /// that, this client does not).
    pub fn x509(mut self, identity: X509Identity) -> Self {
        self.x509 = Some(identity);
        self
    }

    /// Which CAs to trust for the hub certificate (default: system roots).
    pub fn trust(mut self, trust: Trust) -> Self {
        self.trust = trust;
        self
    }

    /// MQTT-over-TLS port (default 8883).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Lifetime of the SAS token, i.e. of the connection (default 1 hour). Unused with X.509.
    pub fn sas_ttl(mut self, ttl: Duration) -> Self {
        self.sas_ttl = ttl;
        self
    }

    /// MQTT keep-alive; a PINGREQ goes out after this long without other traffic (default
    /// 60 s, whole seconds, at most 1177 s for IoT Hub; zero disables pings).
    pub fn keep_alive(mut self, keep_alive: Duration) -> Self {
        self.keep_alive = keep_alive;
        self
    }

    /// Bound on TCP + TLS + CONNECT/CONNACK (default 30 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Connects to the hub.
    pub async fn connect(self) -> Result<DeviceClient, DeviceError> {
        let options = self.connect_options()?;
        let tls = client_config(&self.trust, self.x509.as_ref())?;
        self.connect_with(options, tls).await
    }

    async fn connect_with(
        self,
        options: ConnectOptions,
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<DeviceClient, DeviceError> {
        // The hub client subscribes to nothing, so the stream of incoming publishes is
        // dropped; anything the hub still sends (e.g. C2D from an old session) is acked
        // and discarded.
        let (connection, _incoming) = mqtt::connect(
            &self.hostname,
            self.port,
            tls,
            options,
            self.connect_timeout,
        )
        .await?;
        Ok(DeviceClient::new(connection, self.device_id))
    }

    fn connect_options(&self) -> Result<ConnectOptions, DeviceError> {
        if let Some(reason) = &self.invalid {
            return Err(DeviceError::Config(reason.clone()));
        }
        if self.hostname.is_empty() || self.device_id.is_empty() {
            return Err(DeviceError::Config(
                "hostname and device id must not be empty".into(),
            ));
        }
        let credential = Credential::choose(self.symmetric_key.as_deref(), self.x509.as_ref())
            .map_err(DeviceError::Config)?;
        let password = match credential {
            Credential::SymmetricKey(key) => {
                decode_key(key)?;
                let resource = format!("{}/devices/{}", self.hostname, self.device_id);
                Some(generate_sas_token(
                    &resource,
                    key,
                    None,
                    SystemTime::now() + self.sas_ttl,
                )?)
            }
            // The client certificate in the handshake is the whole credential.
            Credential::X509(_) => None,
        };
        Ok(ConnectOptions {
            client_id: self.device_id.clone(),
            username: format!(
                "{}/{}/?api-version={API_VERSION}&DeviceClientType={}",
                self.hostname,
                self.device_id,
                encode(crate::USER_AGENT)
            ),
            password,
            clean_session: false,
            keep_alive: self.keep_alive,
        })
    }
}

/// A connected device. Sends are `&self`, so many can be in flight concurrently.
#[derive(Debug)]
pub struct DeviceClient {
    connection: Connection,
    device_id: String,
}

impl DeviceClient {
    /// Starts a builder for device `device_id` on hub `hostname` (e.g.
    /// `myhub.azure-devices.net`, or `localhost` for iotemu).
    pub fn builder(
        hostname: impl Into<String>,
        device_id: impl Into<String>,
    ) -> DeviceClientBuilder {
        DeviceClientBuilder {
            hostname: hostname.into(),
            device_id: device_id.into(),
            symmetric_key: None,
            x509: None,
            trust: Trust::default(),
            port: DEFAULT_PORT,
            sas_ttl: DEFAULT_SAS_TTL,
            keep_alive: DEFAULT_KEEP_ALIVE,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            invalid: None,
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
            builder.invalid = Some(format!(
                "registration {:?} (status {:?}) has no assigned hub or device id",
                state.registration_id, registration.status
            ));
        }
        builder
    }

    pub(crate) fn new(connection: Connection, device_id: String) -> Self {
        Self {
            connection,
            device_id,
        }
    }

    /// The device id this client is connected as.
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// Sends telemetry at QoS 1; resolves when the hub acknowledges it (PUBACK).
    ///
    /// Fails with [`DeviceError::MessageTooLarge`] before sending anything if body plus
    /// properties exceed 256 KiB, and with [`DeviceError::Disconnected`] if the connection
    /// closes before the acknowledgement.
    pub async fn send_telemetry(&self, message: Message) -> Result<(), DeviceError> {
        let size = message.size();
        if size > MAX_MESSAGE_SIZE {
            return Err(DeviceError::MessageTooLarge(size));
        }
        let topic = telemetry_topic(&self.device_id, &message);
        self.connection
            .publish(topic, Bytes::from(message.body))
            .await?;
        Ok(())
    }

    /// Sends DISCONNECT and closes the connection.
    pub async fn disconnect(self) -> Result<(), DeviceError> {
        self.connection.disconnect().await;
        Ok(())
    }

    /// False once the connection has ended for any reason.
    pub fn is_connected(&self) -> bool {
        self.connection.is_connected()
    }

    /// Resolves when the connection ends — closed by the hub (e.g. another connection with the
    /// same device id, token expiry), a network error, or a keep-alive timeout.
    pub async fn closed(&self) {
        self.connection.closed().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RegistrationState;
    use crate::test_support::{TEST_CA, connected, device_identity, device_pems, tls_listener};
    use rumqttc::mqttbytes::QoS;
    use rumqttc::mqttbytes::v4::{ConnectReturnCode, Packet, PubAck};
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
        assert_eq!(builder.hostname, "hub.example");
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
        assert_eq!(builder.hostname, "hub.example");
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
        let (connection, _incoming, mut server) = connected().await;
        let client = DeviceClient::new(connection, "dev-1".into());
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
        let (connection, _incoming, mut server) = connected().await;
        let client = Arc::new(DeviceClient::new(connection, "dev-1".into()));
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
        let (connection, _incoming, _server) = connected().await;
        let client = DeviceClient::new(connection, "dev-1".into());
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
        let (connection, _incoming, server) = connected().await;
        let client = DeviceClient::new(connection, "dev-1".into());
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
}
