//! Benchmark of C2D sends over AMQP (the service SDKs' path): one TLS connection, CBS, one
//! sender on `/messages/devicebound`; messages spread over many devices (a queue holds 50).
//! Prints sends per second, one at a time (each waits for its disposition, as the Python
//! SDK does) and pipelined; in memory and with `--data-dir`. Asserts nothing.
//! Run with `cargo bench -p iotemu --bench amqp_c2d`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use fe2o3_amqp::link::{Receiver, Sender};
use fe2o3_amqp::types::messaging::{
    AmqpValue, ApplicationProperties, Body, Data, Message, MessageId, Properties,
};
use fe2o3_amqp::types::primitives::{SimpleValue, Value};
use fe2o3_amqp::{Connection, Session};
use iotemu::Emulator;
use iotemu::SymmetricKey;
use iotemu::internals::auth::build_token;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio_rustls::TlsConnector;

const OWNER_KEY: &str = "m3KXjFJcrlf/7AzVtsFylbokniqdr2n96hQepP6P/GU=";
const DEVICES: usize = 200;

fn c2d(device: usize, n: usize) -> Message<Body<Value>> {
    Message::builder()
        .properties(Properties {
            to: Some(format!("/devices/bench-{device}/messages/devicebound")),
            message_id: Some(MessageId::String(format!("m-{n}"))),
            ..Default::default()
        })
        .body(Body::Data(
            vec![Data(b"{\"on\":true}".to_vec().into())].into(),
        ))
        .build()
}

async fn sender(emulator: &Emulator) -> (fe2o3_amqp::connection::ConnectionHandle<()>, Sender) {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(emulator.ca_pem().as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", emulator.amqp_port()))
        .await
        .unwrap();
    tcp.set_nodelay(true).unwrap();
    let tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let mut connection = Connection::builder()
        .container_id("bench")
        .open_with_stream(tls)
        .await
        .unwrap();
    let mut session = Session::begin(&mut connection).await.unwrap();
    let mut cbs_out = Sender::attach(&mut session, "cbs-s", "$cbs").await.unwrap();
    let mut cbs_in = Receiver::attach(&mut session, "cbs-r", "$cbs")
        .await
        .unwrap();
    let expiry = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let key = base64::engine::general_purpose::STANDARD
        .decode(OWNER_KEY)
        .unwrap();
    let token = build_token("localhost", &key, Some("iothubowner"), expiry);
    let put = Message::builder()
        .properties(Properties {
            message_id: Some(MessageId::Ulong(1)),
            ..Default::default()
        })
        .application_properties(
            ApplicationProperties::builder()
                .insert("operation", SimpleValue::String("put-token".into()))
                .insert("name", SimpleValue::String("localhost".into()))
                .build(),
        )
        .body(Body::<Value>::Value(AmqpValue(Value::String(token))))
        .build();
    cbs_out.send(put).await.unwrap();
    let reply = cbs_in.recv::<Body<Value>>().await.unwrap();
    cbs_in.accept(&reply).await.unwrap();
    let sender = Sender::attach(&mut session, "c2d", "/messages/devicebound")
        .await
        .unwrap();
    // The session and CBS links live as long as the connection handle.
    std::mem::forget((session, cbs_out, cbs_in));
    (connection, sender)
}

async fn run(label: &str, data_dir: Option<&std::path::Path>) {
    let mut builder = Emulator::builder().quickstart_fixture();
    if let Some(dir) = data_dir {
        builder = builder.data_dir(dir);
    }
    let emulator = builder.start().await.unwrap();
    let key = SymmetricKey::from_base64(OWNER_KEY).unwrap();
    for d in 0..DEVICES {
        emulator.default_hub().provision_device(
            &format!("bench-{d}"),
            key.clone(),
            key.clone(),
            None,
        );
    }
    let (_connection, mut sender) = sender(&emulator).await;

    let one_at_a_time = 2_000;
    let start = Instant::now();
    for n in 0..one_at_a_time {
        let outcome = sender.send(c2d(n % DEVICES, n)).await.unwrap();
        assert!(outcome.is_accepted());
    }
    report(label, "one at a time", one_at_a_time, start.elapsed());

    let pipelined = DEVICES * 50 - one_at_a_time;
    let start = Instant::now();
    let mut pending = Vec::with_capacity(pipelined);
    for n in 0..pipelined {
        let device = (one_at_a_time + n) % DEVICES;
        pending.push(sender.send_batchable(c2d(device, n)).await.unwrap());
    }
    for fut in pending {
        assert!(fut.await.unwrap().is_accepted());
    }
    report(label, "pipelined", pipelined, start.elapsed());
    emulator.shutdown().await;
}

fn report(label: &str, mode: &str, messages: usize, elapsed: Duration) {
    println!(
        "{label:<10} {mode:<14} {messages:>6} C2D sends in {:>8.1} ms = {:>8.0} sends/s",
        elapsed.as_secs_f64() * 1000.0,
        messages as f64 / elapsed.as_secs_f64()
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        run("memory", None).await;
        let dir = tempfile::tempdir().unwrap();
        run("data-dir", Some(dir.path())).await;
    });
}
