//! Everything a hub client needs to open — and later reopen — its connection: the identity
//! (a device, or a module of a device), the builders' shared [`Settings`], and the
//! [`Connector`] that makes a fresh CONNECT (with a fresh SAS token) for every attempt.
//!
//! CONNECT fields follow spec/protocol.md §5.2 and §1.4:
//!
//! | | device | module |
//! |---|---|---|
//! | client id | `{deviceId}` | `{deviceId}/{moduleId}` |
//! | username | `{host}/{deviceId}/?api-version=…&DeviceClientType=…` | `{host}/{deviceId}/{moduleId}/?api-version=…&DeviceClientType=…` |
//! | SAS `sr` | `{host}/devices/{deviceId}` | `{host}/devices/{deviceId}/modules/{moduleId}` |
//!
//! no `skn`, no password at all with X.509, and CleanSession 0 like every official SDK.
//!
//! SAS renewal: the token's expiry is rounded *up* to a whole second (so it lives at least
//! `sas_ttl`), and the client reconnects with a new token `min(sas_ttl / 5, 2 min)` before
//! it expires — the hub closes a connection whose token has expired.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::error::DeviceError;
use super::received::Inbox;
use super::reconnect::ReconnectPolicy;
use crate::credential::Credential;
use crate::encode::encode;
use crate::mqtt::{self, ConnectOptions, Connection, IncomingPublish, MqttError};
use crate::sas::{decode_key, generate_sas_token};
use crate::tls::{Trust, client_config};
use crate::tpm::{SharedTpm, sas_token as tpm_sas_token};
use crate::transport::Transport;
use crate::x509::X509Identity;

/// Hub device API version, as in the current docs and the Node SDK.
const API_VERSION: &str = "2021-04-12";
pub(crate) const DEFAULT_SAS_TTL: Duration = Duration::from_secs(3600);
const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(60);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Renew at most this long before expiry, as the Python SDK does.
const MAX_RENEWAL_MARGIN: Duration = Duration::from_secs(120);

/// Who connects: a device, or a module of a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub device_id: String,
    pub module_id: Option<String>,
}

impl Identity {
    pub(crate) fn device(device_id: impl Into<String>) -> Self {
        Self {
            device_id: device_id.into(),
            module_id: None,
        }
    }

    pub(crate) fn module(device_id: impl Into<String>, module_id: impl Into<String>) -> Self {
        Self {
            device_id: device_id.into(),
            module_id: Some(module_id.into()),
        }
    }

    fn client_id(&self) -> String {
        match &self.module_id {
            Some(module) => format!("{}/{module}", self.device_id),
            None => self.device_id.clone(),
        }
    }

    fn username(&self, hostname: &str) -> String {
        let path = match &self.module_id {
            Some(module) => format!("{hostname}/{}/{module}/", self.device_id),
            None => format!("{hostname}/{}/", self.device_id),
        };
        format!(
            "{path}?api-version={API_VERSION}&DeviceClientType={}",
            encode(crate::USER_AGENT)
        )
    }

    fn sas_resource(&self, hostname: &str) -> String {
        format!("{hostname}/{}", self.topic_base())
    }

    /// `devices/{deviceId}` or `devices/{deviceId}/modules/{moduleId}`: where telemetry and
    /// received messages live.
    pub(crate) fn topic_base(&self) -> String {
        match &self.module_id {
            Some(module) => format!("devices/{}/modules/{module}", self.device_id),
            None => format!("devices/{}", self.device_id),
        }
    }

    /// Where C2D (device) or input (module) messages arrive.
    pub(crate) fn inbox(&self) -> Inbox {
        match &self.module_id {
            Some(module) => Inbox::module(&self.device_id, module),
            None => Inbox::device(&self.device_id),
        }
    }
}

/// The options [`DeviceClientBuilder`](crate::DeviceClientBuilder) and
/// [`ModuleClientBuilder`](crate::ModuleClientBuilder) share.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub hostname: String,
    pub symmetric_key: Option<String>,
    pub x509: Option<X509Identity>,
    /// A TPM holding the identity's key (imported from DPS's `registrationState.tpm`).
    pub tpm: Option<SharedTpm>,
    pub trust: Trust,
    /// `None`: the transport's default port.
    pub port: Option<u16>,
    pub transport: Transport,
    pub sas_ttl: Duration,
    pub keep_alive: Duration,
    pub connect_timeout: Duration,
    pub reconnect: ReconnectPolicy,
    /// Set when the builder was made from an unusable registration; reported by `connect`.
    pub invalid: Option<String>,
}

impl Settings {
    pub(crate) fn new(hostname: String) -> Self {
        Self {
            hostname,
            symmetric_key: None,
            x509: None,
            tpm: None,
            trust: Trust::default(),
            port: None,
            transport: Transport::default(),
            sas_ttl: DEFAULT_SAS_TTL,
            keep_alive: DEFAULT_KEEP_ALIVE,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            reconnect: ReconnectPolicy::default(),
            invalid: None,
        }
    }

    /// Checks everything that can be checked without the network and prepares TLS.
    pub(crate) fn connector(&self, identity: Identity) -> Result<Connector, DeviceError> {
        if let Some(reason) = &self.invalid {
            return Err(DeviceError::Config(reason.clone()));
        }
        let module_empty = identity.module_id.as_ref().is_some_and(String::is_empty);
        if self.hostname.is_empty() || identity.device_id.is_empty() || module_empty {
            return Err(DeviceError::Config(
                "hostname, device id and module id must not be empty".into(),
            ));
        }
        let key = match &self.tpm {
            Some(_) if self.symmetric_key.is_some() || self.x509.is_some() => {
                return Err(DeviceError::Config(
                    "a TPM was given with another credential; use one of .tpm, .symmetric_key and .x509"
                        .into(),
                ));
            }
            Some(tpm) => Some(SasKey::Tpm(tpm.clone())),
            None => {
                let credential =
                    Credential::choose(self.symmetric_key.as_deref(), self.x509.as_ref())
                        .map_err(DeviceError::Config)?;
                match credential {
                    Credential::SymmetricKey(key) => {
                        decode_key(key)?;
                        Some(SasKey::Key(key.to_owned()))
                    }
                    // The client certificate in the handshake is the whole credential.
                    Credential::X509(_) => None,
                }
            }
        };
        if key.is_some() && self.sas_ttl < Duration::from_secs(1) {
            return Err(DeviceError::Config(
                "sas_ttl must be at least one second".into(),
            ));
        }
        Ok(Connector {
            hostname: self.hostname.clone(),
            port: self.port.unwrap_or(self.transport.default_port()),
            transport: self.transport,
            tls: client_config(&self.trust, self.x509.as_ref())?,
            manual_ack_prefixes: vec![identity.inbox().manual_ack_prefix()],
            identity,
            key,
            sas_ttl: self.sas_ttl,
            keep_alive: self.keep_alive,
            connect_timeout: self.connect_timeout,
        })
    }
}

/// What signs an identity's SAS tokens: its key, or a TPM holding it.
#[derive(Debug, Clone)]
enum SasKey {
    Key(String),
    Tpm(SharedTpm),
}

/// Opens connections for one identity; cheap to call again for every reconnect.
#[derive(Debug)]
pub(crate) struct Connector {
    hostname: String,
    port: u16,
    transport: Transport,
    tls: Arc<rustls::ClientConfig>,
    identity: Identity,
    manual_ack_prefixes: Vec<String>,
    /// What signs the SAS tokens; `None` with X.509.
    key: Option<SasKey>,
    sas_ttl: Duration,
    keep_alive: Duration,
    connect_timeout: Duration,
}

/// A freshly opened connection.
#[derive(Debug)]
pub(crate) struct Opened {
    pub connection: Connection,
    pub incoming: mpsc::Receiver<IncomingPublish>,
    /// When to reconnect with a new SAS token (`None` with X.509).
    pub renew_at: Option<Instant>,
}

impl Connector {
    pub(crate) fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The CONNECT fields for one attempt, with a new token, and that token's expiry.
    pub(crate) fn connect_options(
        &self,
    ) -> Result<(ConnectOptions, Option<SystemTime>), DeviceError> {
        let (password, expiry) = match &self.key {
            Some(key) => {
                let expiry = whole_second_at_or_after(SystemTime::now() + self.sas_ttl);
                let resource = self.identity.sas_resource(&self.hostname);
                let token = match key {
                    SasKey::Key(key) => generate_sas_token(&resource, key, None, expiry)?,
                    SasKey::Tpm(tpm) => tpm_sas_token(tpm.0.as_ref(), &resource, None, expiry)
                        .map_err(|e| DeviceError::Tpm(e.0))?,
                };
                (Some(token), Some(expiry))
            }
            None => (None, None),
        };
        let options = ConnectOptions {
            client_id: self.identity.client_id(),
            username: self.identity.username(&self.hostname),
            password,
            clean_session: false,
            keep_alive: self.keep_alive,
            manual_ack_prefixes: self.manual_ack_prefixes.clone(),
        };
        Ok((options, expiry))
    }

    /// Connects once: TCP, TLS, (WebSocket,) CONNECT/CONNACK within the connect timeout.
    pub(crate) async fn open(&self) -> Result<Opened, MqttError> {
        let (options, expiry) = self
            .connect_options()
            .map_err(|e| MqttError::Protocol(format!("cannot make the CONNECT: {e}")))?;
        let (connection, incoming) = mqtt::connect(
            &self.hostname,
            self.port,
            self.transport,
            self.tls.clone(),
            options,
            self.connect_timeout,
        )
        .await?;
        Ok(Opened {
            connection,
            incoming,
            renew_at: expiry.map(|expiry| self.renewal_instant(expiry)),
        })
    }

    /// `min(sas_ttl / 5, 2 min)` before `expiry`.
    fn renewal_instant(&self, expiry: SystemTime) -> Instant {
        let margin = (self.sas_ttl / 5).min(MAX_RENEWAL_MARGIN);
        let left = expiry
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        Instant::now() + left.saturating_sub(margin)
    }
}

/// `se` is in whole seconds; rounding up keeps the token valid for at least the TTL.
fn whole_second_at_or_after(at: SystemTime) -> SystemTime {
    let since_epoch = at.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let mut seconds = since_epoch.as_secs();
    if since_epoch.subsec_nanos() > 0 {
        seconds += 1;
    }
    UNIX_EPOCH + Duration::from_secs(seconds)
}

/// The connection settings both hub client builders share (device and module), written once.
macro_rules! hub_connection_setters {
    () => {
        /// The identity's primary or secondary key (a module's own key for a module client).
        pub fn symmetric_key(mut self, key_b64: impl Into<String>) -> Self {
            self.settings.symmetric_key = Some(key_b64.into());
            self
        }

        /// Sign SAS tokens inside `tpm` with the key it imported from DPS's
        /// `registrationState.tpm` ([`TpmProvisioning`](crate::TpmProvisioning)) instead of
        /// holding a key.
        pub fn tpm(mut self, tpm: std::sync::Arc<dyn crate::Tpm>) -> Self {
            self.settings.tpm = Some(crate::tpm::SharedTpm(tpm));
            self
        }

        /// Authenticate with an X.509 certificate instead of a key: a self-signed device
        /// registered by thumbprint, or a CA-signed one whose CN is the device id (`device/module`
        /// for a module; the hub checks that, this client does not).
        pub fn x509(mut self, identity: X509Identity) -> Self {
            self.settings.x509 = Some(identity);
            self
        }

        /// Which CAs to trust for the hub certificate (default: system roots).
        pub fn trust(mut self, trust: Trust) -> Self {
            self.settings.trust = trust;
            self
        }

        /// The hub's port (default: the transport's, 8883 for MQTT, 443 for MQTT over WebSocket).
        pub fn port(mut self, port: u16) -> Self {
            self.settings.port = Some(port);
            self
        }

        /// MQTT over TLS (default) or over a secure WebSocket on `/$iothub/websocket`.
        pub fn transport(mut self, transport: Transport) -> Self {
            self.settings.transport = transport;
            self
        }

        /// Lifetime of each SAS token (default 1 hour, at least 1 s). The client reconnects with
        /// a fresh token `min(ttl / 5, 2 min)` before one expires. Unused with X.509.
        pub fn sas_ttl(mut self, ttl: Duration) -> Self {
            self.settings.sas_ttl = ttl;
            self
        }

        /// MQTT keep-alive; a PINGREQ goes out after this long without other traffic (default
        /// 60 s, whole seconds, at most 1177 s for IoT Hub; zero disables pings).
        pub fn keep_alive(mut self, keep_alive: Duration) -> Self {
            self.settings.keep_alive = keep_alive;
            self
        }

        /// Bound on TCP + TLS (+ WebSocket) + CONNECT/CONNACK, per attempt (default 30 s).
        pub fn connect_timeout(mut self, timeout: Duration) -> Self {
            self.settings.connect_timeout = timeout;
            self
        }

        /// When to reconnect after a lost connection (default: forever, backoff 1 s doubling up
        /// to 60 s with jitter); [`ReconnectPolicy::disabled`] stops the client at the first loss.
        pub fn reconnect(mut self, policy: ReconnectPolicy) -> Self {
            self.settings.reconnect = policy;
            self
        }
    };
}
pub(crate) use hub_connection_setters;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::device_identity;

    const KEY: &str = "c2VjcmV0c2VjcmV0c2VjcmV0";

    fn sas_settings() -> Settings {
        let mut settings = Settings::new("hub.example".into());
        settings.symmetric_key = Some(KEY.into());
        settings
    }

    fn se(token: &str) -> u64 {
        let value = token
            .split('&')
            .find_map(|kv| kv.strip_prefix("se="))
            .unwrap();
        value.parse().unwrap()
    }

    #[test]
    fn module_connect_fields() {
        let connector = sas_settings()
            .connector(Identity::module("dev-1", "mod-a"))
            .unwrap();
        let (options, expiry) = connector.connect_options().unwrap();
        assert_eq!(options.client_id, "dev-1/mod-a");
        assert_eq!(
            options.username,
            format!(
                "hub.example/dev-1/mod-a/?api-version=2021-04-12&DeviceClientType=iotemu-device%2F{}",
                env!("CARGO_PKG_VERSION")
            )
        );
        assert!(!options.clean_session);
        let password = options.password.unwrap();
        assert!(password.starts_with(
            "SharedAccessSignature sr=hub.example%2Fdevices%2Fdev-1%2Fmodules%2Fmod-a&sig="
        ));
        assert!(!password.contains("skn="));
        assert!(expiry.is_some());
        assert_eq!(
            options.manual_ack_prefixes,
            ["devices/dev-1/modules/mod-a/inputs/"]
        );
        assert_eq!(
            connector.identity().topic_base(),
            "devices/dev-1/modules/mod-a"
        );
    }

    #[test]
    fn device_connect_fields_leave_c2d_for_manual_completion() {
        let connector = sas_settings().connector(Identity::device("dev-1")).unwrap();
        let (options, _) = connector.connect_options().unwrap();
        assert_eq!(options.client_id, "dev-1");
        assert_eq!(
            options.manual_ack_prefixes,
            ["devices/dev-1/messages/devicebound/"]
        );
    }

    #[test]
    fn x509_modules_have_no_password_and_nothing_to_renew() {
        let mut settings = Settings::new("hub.example".into());
        settings.x509 = Some(device_identity("dev-1/mod-a"));
        let (options, expiry) = settings
            .connector(Identity::module("dev-1", "mod-a"))
            .unwrap()
            .connect_options()
            .unwrap();
        assert_eq!(options.password, None);
        assert_eq!(expiry, None);
    }

    #[test]
    fn every_attempt_gets_a_token_living_at_least_the_ttl() {
        let mut settings = sas_settings();
        settings.sas_ttl = Duration::from_secs(3);
        let connector = settings.connector(Identity::device("d")).unwrap();
        let before = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let (options, expiry) = connector.connect_options().unwrap();
        let se = se(&options.password.unwrap());
        assert!(se as f64 >= before + 3.0, "se {se} before {before}");
        assert_eq!(expiry, Some(UNIX_EPOCH + Duration::from_secs(se)));
        // Renewal comes a fifth of the TTL before expiry, so after at least 2.4 s here.
        let renew_in = connector.renewal_instant(expiry.unwrap()) - Instant::now();
        assert!(renew_in > Duration::from_millis(2300), "{renew_in:?}");
        assert!(renew_in < Duration::from_millis(3500), "{renew_in:?}");
    }

    #[test]
    fn long_ttls_renew_two_minutes_early() {
        let connector = sas_settings().connector(Identity::device("d")).unwrap();
        let expiry = SystemTime::now() + Duration::from_secs(3600);
        let renew_in = connector.renewal_instant(expiry) - Instant::now();
        assert!(renew_in <= Duration::from_secs(3480) && renew_in > Duration::from_secs(3470));
    }

    #[test]
    fn unusable_settings_are_config_errors() {
        let mut settings = sas_settings();
        settings.sas_ttl = Duration::from_millis(500);
        assert!(matches!(
            settings.connector(Identity::device("d")),
            Err(DeviceError::Config(_))
        ));
        assert!(matches!(
            sas_settings().connector(Identity::module("d", "")),
            Err(DeviceError::Config(_))
        ));
        assert!(matches!(
            Settings::new("h".into()).connector(Identity::device("d")),
            Err(DeviceError::Config(_))
        ));
    }

    #[test]
    fn rounding_up_to_whole_seconds() {
        let exact = UNIX_EPOCH + Duration::from_secs(10);
        assert_eq!(whole_second_at_or_after(exact), exact);
        assert_eq!(
            whole_second_at_or_after(exact + Duration::from_millis(1)),
            UNIX_EPOCH + Duration::from_secs(11)
        );
    }
}
