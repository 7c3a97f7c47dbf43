//! The identity a simulated device presents. Both servers get byte-for-byte the same CONNECT:
//! IoT Hub's client id, username and SAS password (iotemu verifies them; mosquitto, configured
//! with `allow_anonymous true`, ignores them), so the only difference measured is the server.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::mqtt::Connect;
use crate::sas;

/// The quickstart fixture's id scope and host (fixtures/quickstart.json).
pub const ID_SCOPE: &str = "0ne00000A0A";
pub const HOST: &str = "localhost";
/// The quickstart fixture's symmetric-key enrollment group `quickstart-group`.
pub const QUICKSTART_GROUP_KEY: &str =
    "/VX4hnlv5HUMoLa5FBff/tGKwZFUM0XlQMp/v7oWXGolrvmEuIrRnsx6k9Gi3drdCbAyfmt+aq8zsQJ6lg3D3g==";
/// Keys of the enrollments and groups in generated fixtures are derived from this
/// (`iotemu-loadgen fixture`), so the generator can compute them from an id alone.
pub const BENCH_MASTER_KEY: &[u8] = b"iotemu-loadgen fixture master key";
/// Tokens are valid this long: longer than any run.
const TOKEN_SECS: u64 = 3600;

/// A device id and its (base64-decoded) symmetric key.
#[derive(Clone)]
pub struct Device {
    pub id: String,
    pub key: Vec<u8>,
}

impl Device {
    /// The device `id` of the group whose key is `group_key`.
    pub fn in_group(group_key: &[u8], id: String) -> Device {
        let key = sas::decode_key(&sas::derive_device_key(group_key, &id)).unwrap_or_default();
        Device { id, key }
    }

    /// Username and SAS password for the hub (`{host}/{deviceId}/?api-version=…`).
    pub fn hub_login(&self) -> (String, String) {
        let username = format!("{HOST}/{}/?api-version=2021-04-12", self.id);
        let resource = format!("{HOST}/devices/{}", self.id);
        (username, sas::token(&resource, &self.key, None, expiry()))
    }

    /// Username and SAS password for DPS (`{idScope}/registrations/{registrationId}/…`).
    pub fn dps_login(&self) -> (String, String) {
        let username = format!(
            "{ID_SCOPE}/registrations/{}/api-version=2019-03-31",
            self.id
        );
        let resource = format!("{ID_SCOPE}/registrations/{}", self.id);
        let password = sas::token(&resource, &self.key, Some("registration"), expiry());
        (username, password)
    }
}

/// A CONNECT for `device` with `login` (username, password).
pub fn connect_packet<'a>(device: &'a Device, login: &'a (String, String)) -> Connect<'a> {
    Connect {
        client_id: &device.id,
        username: Some(&login.0),
        password: Some(&login.1),
        keep_alive_secs: 600,
        clean_session: true,
    }
}

fn expiry() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
        + TOKEN_SECS
}
