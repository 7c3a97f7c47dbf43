//! Event Hubs receive throughput: one consumer (one AMQP connection, one session, four
//! partition receivers, as `azure-eventhub`'s `receive` over all partitions opens them) reads
//! events that are already retained, then events appended while it reads. Prints events/s,
//! asserts nothing. Run with `cargo bench -p iotemu --bench eventhubs`; `IOTEMU_BENCH_EVENTS`
//! sets the number of events (default 200 000).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use fe2o3_amqp::link::receiver::CreditMode;
use fe2o3_amqp::link::{Receiver, Sender};
use fe2o3_amqp::sasl_profile::SaslProfile;
use fe2o3_amqp::types::messaging::{
    AmqpValue, ApplicationProperties, Body, Message, MessageId, Properties, Source,
};
use fe2o3_amqp::types::primitives::{OrderedMap, SimpleValue, Symbol, Value};
use fe2o3_amqp::{Connection, Session};
use iotemu::Emulator;
use iotemu::Hub;
use iotemu::internals::auth::build_token;
use iotemu::{MessageSource, SystemProperties, TelemetryMessage};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_amqp::described::Described;
use serde_amqp::descriptor::Descriptor;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const OWNER_KEY: &str = "m3KXjFJcrlf/7AzVtsFylbokniqdr2n96hQepP6P/GU=";
const PARTITIONS: usize = 4;
const CREDIT: u32 = 300;

/// A telemetry message of about the quickstart's size (a small JSON body, two properties).
fn telemetry(device: usize, n: usize) -> Arc<TelemetryMessage> {
    Arc::new(TelemetryMessage {
        sequence_number: 0,
        enqueued_time: SystemTime::now(),
        hub: "localhost".into(),
        device_id: format!("device-{device}").into(),
        module_id: None,
        body: Bytes::from(format!(
            "{{\"temperature\":21.5,\"humidity\":40,\"n\":{n}}}"
        )),
        system: SystemProperties {
            message_id: Some(format!("m-{n}")),
            content_type: Some("application/json".into()),
            content_encoding: Some("utf-8".into()),
            ..SystemProperties::default()
        }
        .into(),
        properties: BTreeMap::from([("alert".to_owned(), "no".to_owned())]),
        source: MessageSource::Telemetry,
        auth: None,
    })
}

/// Appends `count` events spread over 64 devices (so over every partition).
fn fill(hub: &Hub, count: usize, from: usize) {
    for n in from..from + count {
        hub.event_hubs().route(telemetry(n % 64, n));
    }
}

async fn connect(emulator: &Emulator) -> fe2o3_amqp::connection::ConnectionHandle<()> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(emulator.ca_pem().as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("CA");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(("127.0.0.1", emulator.amqp_port()))
        .await
        .expect("TCP");
    let tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("TLS");
    Connection::builder()
        .container_id("bench")
        .hostname("localhost")
        .sasl_profile(SaslProfile::Anonymous)
        .open_with_stream(tls)
        .await
        .expect("AMQP open")
}

/// Puts an `iothubowner` token for the entity on `$cbs`.
async fn put_token(session: &mut fe2o3_amqp::session::SessionHandle<()>) {
    let mut sender = Sender::attach(session, "cbs-sender", "$cbs").await.unwrap();
    let mut receiver = Receiver::attach(session, "cbs-receiver", "$cbs")
        .await
        .unwrap();
    let expiry = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let key = base64_decode(OWNER_KEY);
    let token = build_token(
        "sb://localhost/localhost",
        &key,
        Some("iothubowner"),
        expiry,
    );
    let request = Message::builder()
        .properties(Properties {
            message_id: Some(MessageId::String("1".into())),
            ..Default::default()
        })
        .application_properties(
            ApplicationProperties::builder()
                .insert("operation", SimpleValue::String("put-token".into()))
                .insert(
                    "type",
                    SimpleValue::String("servicebus.windows.net:sastoken".into()),
                )
                .insert(
                    "name",
                    SimpleValue::String("sb://localhost/localhost".into()),
                )
                .build(),
        )
        .body(Body::<Value>::Value(AmqpValue(Value::String(token))))
        .build();
    sender.send(request).await.unwrap();
    let answer = receiver.recv::<Body<Value>>().await.unwrap();
    receiver.accept(&answer).await.unwrap();
    let status = answer
        .into_message()
        .application_properties
        .and_then(|p| p.0.get("status-code").cloned());
    assert_eq!(status, Some(SimpleValue::Int(200)), "put-token");
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("key")
}

async fn receivers(
    session: &mut fe2o3_amqp::session::SessionHandle<()>,
    selector: &str,
) -> Vec<Receiver> {
    let mut all = Vec::new();
    for p in 0..PARTITIONS {
        let mut filter = OrderedMap::new();
        filter.insert(
            Symbol::from("apache.org:selector-filter:string"),
            Value::Described(Box::new(Described {
                descriptor: Descriptor::Name(Symbol::from("apache.org:selector-filter:string")),
                value: Value::String(selector.to_owned()),
            })),
        );
        let source = Source::builder()
            .address(format!("localhost/ConsumerGroups/$Default/Partitions/{p}"))
            .filter(filter)
            .build();
        let receiver = Receiver::builder()
            .name(format!("bench-{p}-{}", uuid::Uuid::new_v4()))
            .source(source)
            .target("bench")
            .credit_mode(CreditMode::Auto(CREDIT))
            .attach(session)
            .await
            .expect("receiver");
        all.push(receiver);
    }
    all
}

/// Reads `count` events over the receivers (each on its own task) and returns the time.
async fn drain(receivers: Vec<Receiver>, count: usize) -> Duration {
    let started = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
    let mut tasks = Vec::new();
    for mut receiver in receivers {
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let Ok(delivery) = receiver.recv::<Body<Value>>().await else {
                    break;
                };
                if receiver.accept(&delivery).await.is_err() {
                    break;
                }
                if tx.send(1).is_err() {
                    break;
                }
            }
        }));
    }
    let mut received = 0;
    while received < count {
        match tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
            Ok(Some(n)) => received += n,
            _ => {
                println!("  stalled after {received} of {count} events");
                break;
            }
        }
    }
    let elapsed = started.elapsed();
    for task in tasks {
        task.abort();
    }
    elapsed
}

fn report(what: &str, count: usize, elapsed: Duration) {
    println!(
        "{what:<48} {count:>8} events in {:>7.3} s = {:>9.0} events/s",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64()
    );
}

fn main() {
    let events: usize = std::env::var("IOTEMU_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let emulator = Emulator::builder()
            .telemetry_retention(events)
            .start()
            .await
            .expect("emulator");
        let hub = emulator.default_hub().clone();
        println!(
            "Event Hubs receive, one consumer over {PARTITIONS} partitions (credit {CREDIT} each), TLS on loopback:"
        );

        let filled = Instant::now();
        fill(&hub, events, 0);
        report("append (domain only)", events, filled.elapsed());

        let mut connection = connect(&emulator).await;
        let mut session = Session::begin(&mut connection).await.expect("session");
        put_token(&mut session).await;
        let from_start = receivers(&mut session, "amqp.annotation.x-opt-offset > '-1'").await;
        let elapsed = drain(from_start, events).await;
        report("retained events, from the start", events, elapsed);

        // Live: the consumer waits at @latest while a producer task appends.
        let mut session = Session::begin(&mut connection).await.expect("session");
        put_token(&mut session).await;
        let latest = receivers(&mut session, "amqp.annotation.x-opt-offset > '@latest'").await;
        let live = events / 2;
        let producer = {
            let hub = hub.clone();
            tokio::task::spawn_blocking(move || {
                for chunk in 0..live / 1000 {
                    fill(&hub, 1000, events + chunk * 1000);
                    std::thread::yield_now();
                }
            })
        };
        let elapsed = drain(latest, live / 1000 * 1000).await;
        let _ = producer.await;
        report("live events, appended while reading", live / 1000 * 1000, elapsed);
        let _ = connection.close().await;
    });
}
