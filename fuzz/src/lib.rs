//! What the fuzz targets share: one emulator (the quickstart fixture, in memory) started once
//! per fuzzing process, the contexts its MQTT and HTTP fronts use, and credentials that pass
//! authentication, so the session and REST targets spend their inputs on what comes *after*
//! the credential check instead of on guessing an HMAC. docs/fuzzing.md describes the targets.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use iotemu::AmqpLimits;
use iotemu::Emulator;
use iotemu::HttpLimits;
use iotemu::MqttLimits;
use iotemu::internals::amqp::AmqpContext;
use iotemu::internals::auth::build_token;
use iotemu::internals::http::HttpContext;
use iotemu::internals::mqtt::{MqttContext, Principal};
use iotemu::internals::shutdown::Shutdown;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::runtime::Runtime;

pub const ID_SCOPE: &str = "0ne00000A0A";
pub const HUB: &str = "localhost";

/// Who the topic rules are checked for: the DPS client, a device and one of its modules.
pub const PRINCIPALS: [Principal<'static>; 3] = [
    Principal::Registration,
    Principal::Device {
        device_id: "d1",
        module_id: None,
    },
    Principal::Device {
        device_id: "d1",
        module_id: Some("m1"),
    },
];
pub const REGISTRATION_ID: &str = "symm-key-python-device-008";
pub const DEVICE_ID: &str = "python-device-008";
/// The quickstart enrollment's primary key (DESIGN.md), which the device also gets.
pub const DEVICE_KEY: &str =
    "sbDDeEzRuEuGKag+kQKV+T1QGakRtHpsERLP0yPjwR93TrpEgEh/Y07CXstfha6dhIPWvdD1nRxK5T0KGKA+nQ==";

/// Longest one input may keep a connection busy; a hang past it is a bug libFuzzer reports
/// as a timeout (its own `-timeout` is longer).
pub const PER_INPUT_DEADLINE: Duration = Duration::from_secs(5);

pub struct World {
    pub runtime: Runtime,
    /// Kept alive for its domain state; its listeners are never connected to.
    pub emulator: Emulator,
    pub mqtt: Arc<MqttContext>,
    pub http: Arc<HttpContext>,
    /// Never begun: sessions run until their peer closes.
    _shutdown: Shutdown,
    pub credentials: Credentials,
}

/// SAS tokens valid for ten years, and the CONNECT usernames that go with them.
pub struct Credentials {
    pub dps_username: String,
    pub dps_password: String,
    pub device_username: String,
    pub device_password: String,
    /// `Authorization` values for the REST routes.
    pub hub_owner: String,
    pub dps_owner: String,
    pub device: String,
    pub registration: String,
}

pub fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(start_world)
}

fn start_world() -> World {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let emulator = runtime.block_on(async {
        Emulator::builder()
            .quickstart_fixture()
            .retry_after(0)
            .without_https()
            .start()
            .await
            .expect("the emulator starts")
    });
    let key = iotemu::SymmetricKey::from_base64(DEVICE_KEY).expect("quickstart key");
    emulator
        .default_hub()
        .provision_device(DEVICE_ID, key.clone(), key, None);
    let shutdown = Shutdown::new();
    let mqtt = Arc::new(MqttContext {
        dps: emulator.dps().clone(),
        hubs: emulator.hubs().clone(),
        limits: MqttLimits::default(),
        shutdown: shutdown.signal(),
    });
    let http = Arc::new(HttpContext {
        dps: emulator.dps().clone(),
        hubs: emulator.hubs().clone(),
        mqtt: mqtt.clone(),
        amqp: Arc::new(AmqpContext {
            hubs: emulator.hubs().clone(),
            dps: emulator.dps().clone(),
            limits: AmqpLimits::default(),
            port: 0,
            shutdown: shutdown.signal(),
        }),
        limits: HttpLimits::default(),
        shutdown: shutdown.signal(),
    });
    let credentials = credentials(&emulator);
    World {
        runtime,
        emulator,
        mqtt,
        http,
        _shutdown: shutdown,
        credentials,
    }
}

fn credentials(emulator: &Emulator) -> Credentials {
    let expiry = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        + 10 * 365 * 24 * 3600;
    let key = BASE64.decode(DEVICE_KEY).expect("quickstart key");
    let registration = build_token(
        &format!("{ID_SCOPE}/registrations/{REGISTRATION_ID}"),
        &key,
        None,
        expiry,
    );
    let device = build_token(&format!("{HUB}/devices/{DEVICE_ID}"), &key, None, expiry);
    let policy_token = |connection_string: Option<String>, resource: &str| {
        let connection_string = connection_string.expect("a connection string");
        let field = |name: &str| {
            connection_string
                .split(';')
                .find_map(|part| part.strip_prefix(name))
                .map(str::to_owned)
                .expect("connection string field")
        };
        let key = BASE64
            .decode(field("SharedAccessKey="))
            .expect("policy key");
        build_token(resource, &key, Some(&field("SharedAccessKeyName=")), expiry)
    };
    Credentials {
        dps_username: format!(
            "{ID_SCOPE}/registrations/{REGISTRATION_ID}/api-version=2021-06-01&ClientVersion=fuzz"
        ),
        dps_password: registration.clone(),
        device_username: format!("{HUB}/{DEVICE_ID}/?api-version=2021-04-12&DeviceClientType=fuzz"),
        device_password: device.clone(),
        hub_owner: policy_token(emulator.hub_connection_string(), HUB),
        dps_owner: policy_token(emulator.dps_service_connection_string(), HUB),
        device,
        registration,
    }
}

/// Puts the quickstart device's twin back to what it was at start, before each input of the
/// targets that can change it. Without this, reported properties and desired patches from
/// earlier inputs pile up to the twin's size limit, every later input pays for cloning that
/// twin (it ran at a tenth of its first speed after an hour), and a reproducer depends on the
/// inputs before it instead of replaying alone.
pub fn reset_device_twin() {
    let hub = world().emulator.default_hub();
    if let Ok(pending) = hub.reset_device_twin(DEVICE_ID, None) {
        // The in-memory store commits at once; an error here would only leave the twin as it was.
        let _ = pending.wait();
    }
}

/// A loopback peer address for the sessions the targets run.
pub fn peer() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 40000))
}

/// Sends `input` to a server running on the other end of an in-memory pipe, closes the
/// sending side, and reads what the server answers until it closes or the deadline passes.
/// A server that neither answers nor closes within the deadline is reported by panicking.
pub fn exchange<F, Fut>(input: &[u8], serve: F) -> Vec<u8>
where
    F: FnOnce(DuplexStream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let world = world();
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let server = serve(server);
    world.runtime.block_on(async {
        let served = tokio::spawn(server);
        let talk = async {
            // Written in pieces so the server also sees packets split across reads.
            let mut answer = Vec::new();
            let (mut read, mut write) = tokio::io::split(&mut client);
            let send = async {
                for piece in input.chunks(4096) {
                    if write.write_all(piece).await.is_err() {
                        break;
                    }
                }
                let _ = write.shutdown().await;
            };
            let receive = async {
                let mut buf = [0u8; 8192];
                loop {
                    match read.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => answer.extend_from_slice(&buf[..n]),
                    }
                }
            };
            tokio::join!(send, receive);
            answer
        };
        let answer = tokio::time::timeout(PER_INPUT_DEADLINE, talk)
            .await
            .expect("the server neither answered nor closed the connection in time");
        tokio::time::timeout(PER_INPUT_DEADLINE, served)
            .await
            .expect("the server did not finish after its peer closed")
            .expect("the server task panicked");
        if show_answers() {
            eprintln!(
                "answer: {}",
                String::from_utf8_lossy(&answer).escape_debug()
            );
        }
        answer
    })
}

/// `IOTEMU_FUZZ_SHOW=1` prints what the server answered: to check that seeds get past
/// authentication, and to read what a reproducer does.
fn show_answers() -> bool {
    static SHOW: OnceLock<bool> = OnceLock::new();
    *SHOW.get_or_init(|| std::env::var_os("IOTEMU_FUZZ_SHOW").is_some())
}
