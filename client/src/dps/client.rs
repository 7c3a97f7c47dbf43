//! [`ProvisioningClient`]: registers one device with DPS using a symmetric key or an X.509
//! certificate.
//!
//! CONNECT fields follow what the official SDKs send (spec/protocol.md §2.2): client id = the
//! registration id, username `{idScope}/registrations/{registrationId}/api-version=2019-03-31&ClientVersion=…`
//! (no `?`), password = a SAS token over `{idScope}/registrations/{registrationId}` with
//! `skn=registration` — or, with X.509, no password at all and the certificate chain in the TLS
//! handshake. A clean session every time, since DPS keeps no session state anyway.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::error::ProvisioningError;
use super::exchange;
use super::model::RegistrationResult;
use crate::credential::Credential;
use crate::encode::encode;
use crate::mqtt::{self, ConnectOptions};
use crate::sas::{decode_key, generate_sas_token};
use crate::tls::{Trust, client_config};
use crate::transport::Transport;
use crate::x509::X509Identity;

/// DPS device API version; the one Python, Node and azure-sdk-for-c use over MQTT.
const API_VERSION: &str = "2019-03-31";
/// Lifetime of the SAS token in the CONNECT password; the connection is short-lived.
const SAS_TTL: Duration = Duration::from_secs(3600);
const KEEP_ALIVE: Duration = Duration::from_secs(60);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Builder for [`ProvisioningClient`]; start with [`ProvisioningClient::builder`].
#[derive(Debug, Clone)]
pub struct ProvisioningClientBuilder {
    provisioning_host: String,
    id_scope: String,
    registration_id: String,
    symmetric_key: Option<String>,
    x509: Option<X509Identity>,
    trust: Trust,
    /// `None`: the transport's default port.
    port: Option<u16>,
    transport: Transport,
    payload: Option<serde_json::Value>,
    timeout: Duration,
}

impl ProvisioningClientBuilder {
    /// The enrollment's key: an individual enrollment's primary/secondary key, or a key derived
    /// from a group key with [`derive_device_key`](crate::derive_device_key).
    pub fn symmetric_key(mut self, key_b64: impl Into<String>) -> Self {
        self.symmetric_key = Some(key_b64.into());
        self
    }

    /// Authenticate with an X.509 certificate instead of a symmetric key (individual enrollment
    /// with this device certificate, or a group enrollment with a CA in its chain).
    ///
    /// DPS takes the registration id from the leaf's subject CN, so [`build`](Self::build)
    /// fails with [`ProvisioningError::Config`] unless the CN equals the registration id given
    /// to [`ProvisioningClient::builder`] exactly.
    pub fn x509(mut self, identity: X509Identity) -> Self {
        self.x509 = Some(identity);
        self
    }

    /// Which CAs to trust for the DPS certificate (default: system roots).
    pub fn trust(mut self, trust: Trust) -> Self {
        self.trust = trust;
        self
    }

    /// The DPS port (default: the transport's, 8883 for MQTT, 443 for MQTT over WebSocket).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// MQTT over TLS (default) or over a secure WebSocket on `/$iothub/websocket`.
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// Custom payload sent with the registration (e.g. for a custom allocation webhook).
    pub fn payload(mut self, payload: serde_json::Value) -> Self {
        self.payload = Some(payload);
        self
    }

    /// Upper bound on a whole [`register`](ProvisioningClient::register) call, including
    /// connecting, polling and retries (default 60 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Checks the settings and prepares TLS.
    pub fn build(self) -> Result<ProvisioningClient, ProvisioningError> {
        for (what, value) in [
            ("provisioning host", &self.provisioning_host),
            ("id scope", &self.id_scope),
            ("registration id", &self.registration_id),
        ] {
            if value.is_empty() {
                return Err(ProvisioningError::Config(format!("{what} is empty")));
            }
        }
        let credential = Credential::choose(self.symmetric_key.as_deref(), self.x509.as_ref())
            .map_err(ProvisioningError::Config)?;
        match credential {
            Credential::SymmetricKey(key) => {
                decode_key(key)?;
            }
            Credential::X509(identity) => {
                check_common_name(identity, &self.registration_id)?;
            }
        }
        let tls = client_config(&self.trust, self.x509.as_ref())?;
        Ok(ProvisioningClient {
            provisioning_host: self.provisioning_host,
            id_scope: self.id_scope,
            registration_id: self.registration_id,
            symmetric_key: self.symmetric_key,
            port: self.port.unwrap_or(self.transport.default_port()),
            transport: self.transport,
            payload: self.payload,
            timeout: self.timeout,
            tls,
        })
    }
}

/// The registration id travels in the username and the request body, the CN in the handshake;
/// DPS refuses a mismatch only after connecting, with a less telling error, so catch it here.
/// Compared exactly: DPS treats registration ids case-insensitively, but nothing documents
/// that it does so for this comparison.
fn check_common_name(
    identity: &X509Identity,
    registration_id: &str,
) -> Result<(), ProvisioningError> {
    match identity.common_name() {
        Some(common_name) if common_name == registration_id => Ok(()),
        Some(common_name) => Err(ProvisioningError::Config(format!(
            "the certificate's subject CN {common_name:?} differs from the registration id {registration_id:?}; DPS requires them to be equal"
        ))),
        None => Err(ProvisioningError::Config(format!(
            "the certificate has no subject CN; DPS requires it to equal the registration id {registration_id:?}"
        ))),
    }
}

/// Registers a device with DPS over MQTT; see the crate docs for an example.
#[derive(Debug, Clone)]
pub struct ProvisioningClient {
    provisioning_host: String,
    id_scope: String,
    registration_id: String,
    /// `None` means X.509: the certificate is already in `tls` and CONNECT has no password.
    symmetric_key: Option<String>,
    port: u16,
    transport: Transport,
    payload: Option<serde_json::Value>,
    timeout: Duration,
    tls: Arc<rustls::ClientConfig>,
}

impl ProvisioningClient {
    /// Starts a builder for the DPS endpoint `provisioning_host` (e.g.
    /// `global.azure-devices-provisioning.net`, or `localhost` for iotemu).
    pub fn builder(
        provisioning_host: impl Into<String>,
        id_scope: impl Into<String>,
        registration_id: impl Into<String>,
    ) -> ProvisioningClientBuilder {
        ProvisioningClientBuilder {
            provisioning_host: provisioning_host.into(),
            id_scope: id_scope.into(),
            registration_id: registration_id.into(),
            symmetric_key: None,
            x509: None,
            trust: Trust::default(),
            port: None,
            transport: Transport::default(),
            payload: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Connects, registers (polling while DPS is `assigning`, retrying on 429/5xx), and
    /// disconnects. Succeeds only with status `assigned`.
    pub async fn register(&self) -> Result<RegistrationResult, ProvisioningError> {
        tokio::time::timeout(self.timeout, self.register_once())
            .await
            .map_err(|_| ProvisioningError::Timeout)?
    }

    async fn register_once(&self) -> Result<RegistrationResult, ProvisioningError> {
        let options = self.connect_options()?;
        let (connection, mut responses) = mqtt::connect(
            &self.provisioning_host,
            self.port,
            self.transport,
            self.tls.clone(),
            options,
            self.timeout,
        )
        .await?;
        let result = exchange::register(
            &connection,
            &mut responses,
            &self.registration_id,
            self.payload.as_ref(),
        )
        .await;
        connection.disconnect().await;
        result
    }

    fn connect_options(&self) -> Result<ConnectOptions, ProvisioningError> {
        let password = match &self.symmetric_key {
            Some(key) => {
                let resource = format!("{}/registrations/{}", self.id_scope, self.registration_id);
                Some(generate_sas_token(
                    &resource,
                    key,
                    Some("registration"),
                    SystemTime::now() + SAS_TTL,
                )?)
            }
            None => None,
        };
        Ok(ConnectOptions {
            client_id: self.registration_id.clone(),
            username: username(&self.id_scope, &self.registration_id),
            password,
            clean_session: true,
            keep_alive: KEEP_ALIVE,
            manual_ack_prefixes: Vec::new(),
        })
    }
}

/// `{idScope}/registrations/{registrationId}/api-version=…&ClientVersion=…` — DPS usernames
/// have no `?` before the parameters.
fn username(id_scope: &str, registration_id: &str) -> String {
    format!(
        "{id_scope}/registrations/{registration_id}/api-version={API_VERSION}&ClientVersion={}",
        encode(crate::USER_AGENT)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{TEST_CA, device_identity, device_pems, tls_listener};
    use rumqttc::mqttbytes::QoS;
    use rumqttc::mqttbytes::v4::{ConnectReturnCode, Packet, SubAck, SubscribeReasonCode};

    const KEY: &str =
        "sbDDeEzRuEuGKag+kQKV+T1QGakRtHpsERLP0yPjwR93TrpEgEh/Y07CXstfha6dhIPWvdD1nRxK5T0KGKA+nQ==";
    fn builder() -> ProvisioningClientBuilder {
        ProvisioningClient::builder("localhost", "0ne00000A0A", "symm-key-python-device-008")
            .trust(Trust::CaPem(TEST_CA.into()))
    }

    #[test]
    fn connect_fields() {
        let client = builder().symmetric_key(KEY).build().unwrap();
        let options = client.connect_options().unwrap();
        assert_eq!(options.client_id, "symm-key-python-device-008");
        assert_eq!(
            options.username,
            format!(
                "0ne00000A0A/registrations/symm-key-python-device-008/api-version=2019-03-31&ClientVersion=iotemu-device%2F{}",
                env!("CARGO_PKG_VERSION")
            )
        );
        assert!(options.clean_session);
        assert_eq!(options.keep_alive, Duration::from_secs(60));
        let password = options.password.unwrap();
        assert!(password.starts_with(
            "SharedAccessSignature sr=0ne00000A0A%2Fregistrations%2Fsymm-key-python-device-008&sig="
        ));
        assert!(password.ends_with("&skn=registration"));
    }

    #[test]
    fn x509_connect_fields_have_no_password() {
        let sas = builder().symmetric_key(KEY).build().unwrap();
        let client = builder()
            .x509(device_identity("symm-key-python-device-008"))
            .build()
            .unwrap();
        let options = client.connect_options().unwrap();
        let sas_options = sas.connect_options().unwrap();
        assert_eq!(options.password, None);
        assert_eq!(options.username, sas_options.username);
        assert_eq!(options.client_id, sas_options.client_id);
        assert_eq!(options.clean_session, sas_options.clean_session);
    }

    #[test]
    fn x509_build_validates_credentials_and_common_name() {
        let identity = device_identity("symm-key-python-device-008");
        // Both credentials, or neither.
        assert!(matches!(
            builder().symmetric_key(KEY).x509(identity.clone()).build(),
            Err(ProvisioningError::Config(_))
        ));
        assert!(matches!(
            builder().build(),
            Err(ProvisioningError::Config(_))
        ));
        // The CN must be the registration id, exactly; no CN at all is a mismatch too.
        for wrong in ["other-device", "SYMM-KEY-PYTHON-DEVICE-008", ""] {
            let result = builder().x509(device_identity(wrong)).build();
            assert!(
                matches!(&result, Err(ProvisioningError::Config(m)) if m.contains("CN")),
                "CN {wrong:?}: {result:?}"
            );
        }
        assert!(builder().x509(identity).build().is_ok());
    }

    #[tokio::test]
    async fn cn_mismatch_fails_before_any_network_io() {
        let (port, listener) = tls_listener().await;
        let result = builder()
            .x509(device_identity("someone-else"))
            .port(port)
            .build();
        assert!(matches!(result, Err(ProvisioningError::Config(_))));
        // Nobody connected.
        let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
        assert!(accepted.is_err(), "the builder opened a connection");
    }

    #[tokio::test]
    async fn registers_with_x509() {
        let registration_id = "dev-x509";
        let pems = device_pems(registration_id);
        let identity = X509Identity::from_pem(&pems.chain, &pems.key).unwrap();
        let (port, listener) = tls_listener().await;
        let client = ProvisioningClient::builder("localhost", "0ne00000A0A", registration_id)
            .x509(identity)
            .trust(Trust::CaPem(TEST_CA.into()))
            .port(port)
            .build()
            .unwrap();
        let serve = async {
            let mut server = listener.accept().await.unwrap();
            // Leaf + intermediate, leaf first, exactly as loaded.
            assert_eq!(server.peer_certificates(), pems.chain_der);
            let (connect, flags) = server.accept_with_flags().await;
            assert_eq!(flags & 0x40, 0, "password flag set for X.509");
            assert_eq!(flags & 0x80, 0x80, "username flag missing");
            assert_eq!(connect.client_id, registration_id);
            assert_eq!(
                connect.login.unwrap().username,
                format!(
                    "0ne00000A0A/registrations/dev-x509/api-version=2019-03-31&ClientVersion=iotemu-device%2F{}",
                    env!("CARGO_PKG_VERSION")
                )
            );
            let Some(Packet::Subscribe(sub)) = server.read().await else {
                panic!("expected SUBSCRIBE");
            };
            let granted = vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)];
            server
                .write(Packet::SubAck(SubAck::new(sub.pkid, granted)))
                .await;
            let request = server.next_publish_acked().await;
            assert!(
                request
                    .topic
                    .starts_with("$dps/registrations/PUT/iotdps-register/?$rid=")
            );
            let body: serde_json::Value = serde_json::from_slice(&request.payload).unwrap();
            assert_eq!(body, serde_json::json!({"registrationId": "dev-x509"}));
            let rid = request.topic.rsplit_once("$rid=").unwrap().1.to_owned();
            server
                .publish(
                    &format!("$dps/registrations/res/200/?$rid={rid}"),
                    r#"{"operationId":"op","status":"assigned","registrationState":{"x509":{"enrollmentGroupId":"group-1"},"registrationId":"dev-x509","deviceId":"dev-x509","assignedHub":"localhost","status":"assigned"}}"#,
                )
                .await;
            loop {
                match server.read().await {
                    Some(Packet::PubAck(_)) => continue,
                    Some(Packet::Disconnect) => break,
                    other => panic!("expected DISCONNECT, got {other:?}"),
                }
            }
        };
        let (result, ()) = tokio::join!(client.register(), serve);
        let state = result.unwrap().registration_state;
        assert_eq!(state.device_id.as_deref(), Some("dev-x509"));
        assert_eq!(
            state.x509,
            Some(serde_json::json!({"enrollmentGroupId": "group-1"}))
        );
    }

    #[test]
    fn build_validates() {
        assert!(matches!(
            builder().build(),
            Err(ProvisioningError::Config(_))
        ));
        assert!(matches!(
            builder().symmetric_key("***").build(),
            Err(ProvisioningError::InvalidKey(_))
        ));
        assert!(matches!(
            ProvisioningClient::builder("localhost", "", "r")
                .symmetric_key(KEY)
                .build(),
            Err(ProvisioningError::Config(_))
        ));
        assert!(matches!(
            builder()
                .symmetric_key(KEY)
                .trust(Trust::CaPem(String::new()))
                .build(),
            Err(ProvisioningError::Tls(_))
        ));
    }

    #[tokio::test]
    async fn registers_over_tls_and_disconnects() {
        let (port, listener) = tls_listener().await;
        let client = builder().symmetric_key(KEY).port(port).build().unwrap();
        let serve = async {
            let mut server = listener.accept().await.unwrap();
            let connect = server.accept().await;
            assert_eq!(connect.client_id, "symm-key-python-device-008");
            assert!(connect.clean_session);
            let Some(Packet::Subscribe(sub)) = server.read().await else {
                panic!("expected SUBSCRIBE");
            };
            let granted = vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)];
            server
                .write(Packet::SubAck(SubAck::new(sub.pkid, granted)))
                .await;
            let request = server.next_publish_acked().await;
            let rid = request.topic.rsplit_once("$rid=").unwrap().1.to_owned();
            server
                .publish(
                    &format!("$dps/registrations/res/200/?$rid={rid}"),
                    r#"{"operationId":"op","status":"assigned","registrationState":{"registrationId":"symm-key-python-device-008","deviceId":"python-device-008","assignedHub":"localhost","status":"assigned"}}"#,
                )
                .await;
            loop {
                match server.read().await {
                    Some(Packet::PubAck(_)) => continue,
                    Some(Packet::Disconnect) => break,
                    other => panic!("expected DISCONNECT, got {other:?}"),
                }
            }
        };
        let (result, ()) = tokio::join!(client.register(), serve);
        let result = result.unwrap();
        assert_eq!(
            result.registration_state.device_id.as_deref(),
            Some("python-device-008")
        );
    }

    #[tokio::test]
    async fn refused_connection_reports_connack_code() {
        let (port, listener) = tls_listener().await;
        let client = builder().symmetric_key(KEY).port(port).build().unwrap();
        let serve = async {
            let mut server = listener.accept().await.unwrap();
            server.accept_with(ConnectReturnCode::NotAuthorized).await;
            server
        };
        let (result, _server) = tokio::join!(client.register(), serve);
        assert!(matches!(
            result,
            Err(ProvisioningError::ConnectionRefused(5))
        ));
    }

    #[tokio::test]
    async fn overall_timeout() {
        let (port, listener) = tls_listener().await;
        let client = builder()
            .symmetric_key(KEY)
            .port(port)
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        let serve = async {
            let mut server = listener.accept().await.unwrap();
            server.accept().await;
            // Never answer the SUBSCRIBE.
            server.read().await;
            server
        };
        let (result, _server) = tokio::join!(client.register(), serve);
        assert!(matches!(result, Err(ProvisioningError::Timeout)));
    }
}
