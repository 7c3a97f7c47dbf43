//! Telemetry mode: `clients` devices each keep up to `window` QoS 1 PUBLISHes of `payload`
//! bytes to `devices/{id}/messages/events/` in flight for `duration`; the figure is PUBACKs
//! received per second over that window and the server's CPU time per acknowledged message.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio::time::timeout_at;

use crate::connection::{Connection, Endpoint};
use crate::device::{self, Device};
use crate::mqtt::{self, Packet};
use crate::proc_stats;
use crate::report::Figures;

/// The knobs of one telemetry run.
#[derive(Clone, Copy)]
pub struct Load {
    pub window: usize,
    pub payload: usize,
    pub duration: Duration,
}

/// Opens a hub session for `device`.
pub async fn open_session(endpoint: &Endpoint, device: &Device) -> Result<Connection, String> {
    let mut conn = Connection::open(endpoint)
        .await
        .map_err(|e| format!("connect {}: {e}", device.id))?;
    let login = device.hub_login();
    mqtt::connect(&mut conn.out, &device::connect_packet(device, &login));
    conn.expect_connack()
        .await
        .map_err(|e| format!("hub CONNECT of {}: {e}", device.id))?;
    Ok(conn)
}

/// How long after the deadline a session may take to see its last acknowledgement before it
/// is given up (a server that stopped answering) and counted as an error.
const GRACE: Duration = Duration::from_secs(10);

/// Sends until `stop` is set and returns how many messages were acknowledged before that.
///
/// The deadline is one flag for all sessions rather than a timer around each wait: a timer
/// per acknowledgement (registered and removed on every message) was a noticeable part of
/// the generator's own CPU at one message in flight, where the generator is close to
/// saturating its core.
async fn pump(
    mut conn: Connection,
    topic: String,
    load: Load,
    stop: Arc<AtomicBool>,
) -> Result<u64, String> {
    let body = vec![b'x'; load.payload];
    let (mut in_flight, mut acked, mut packet_id) = (0usize, 0u64, 0u16);
    loop {
        while in_flight < load.window {
            packet_id = packet_id.checked_add(1).unwrap_or(1);
            mqtt::publish(&mut conn.out, &topic, Some(packet_id), &body);
            in_flight += 1;
        }
        conn.flush().await.map_err(|e| format!("send: {e}"))?;
        let first = conn.next().await.map_err(|e| format!("receive: {e}"))?;
        if stop.load(Ordering::Relaxed) {
            // Arrived after the deadline: outside the measured window.
            break;
        }
        // Every acknowledgement the same read brought counts before the window is refilled:
        // one flush per read rather than one per PUBACK, so the generator's cost follows the
        // server's batching and the generator is not the bottleneck at deep windows.
        let mut next = Some(first);
        while let Some(packet) = next {
            if let Packet::PubAck(_) = packet {
                in_flight = in_flight.saturating_sub(1);
                acked += 1;
            }
            next = conn.buffered().map_err(|e| format!("receive: {e}"))?;
        }
    }
    conn.close().await;
    Ok(acked)
}

/// Runs the mode against already registered `devices`.
pub async fn run(
    endpoint: &Endpoint,
    devices: &[Device],
    load: Load,
    server_pid: Option<u32>,
) -> Result<Figures, String> {
    let mut sessions = Vec::with_capacity(devices.len());
    for chunk in devices.chunks(50) {
        let mut opening = JoinSet::new();
        for device in chunk {
            let (endpoint, device) = (endpoint.clone(), device.clone());
            opening.spawn(async move {
                let topic = format!("devices/{}/messages/events/", device.id);
                open_session(&endpoint, &device).await.map(|c| (c, topic))
            });
        }
        while let Some(opened) = opening.join_next().await {
            sessions.push(opened.map_err(|e| format!("opening: {e}"))??);
        }
    }
    let cpu_before = proc_stats::cpu_micros(server_pid);
    let own_before = proc_stats::cpu_micros(Some(std::process::id()));
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + load.duration;
    let stop = Arc::new(AtomicBool::new(false));
    let mut pumps = JoinSet::new();
    for (conn, topic) in sessions {
        pumps.spawn(pump(conn, topic, load, stop.clone()));
    }
    tokio::time::sleep_until(deadline).await;
    stop.store(true, Ordering::Relaxed);
    let mut figures = Figures::default();
    let given_up = deadline + GRACE;
    loop {
        match timeout_at(given_up, pumps.join_next()).await {
            Ok(None) => break,
            Ok(Some(Ok(Ok(acked)))) => figures.ops += acked,
            Ok(Some(Ok(Err(e)))) => {
                eprintln!("telemetry: {e}");
                figures.errors += 1;
            }
            Ok(Some(Err(e))) => return Err(format!("telemetry task: {e}")),
            Err(_) => {
                eprintln!(
                    "telemetry: {} sessions saw no acknowledgement for {GRACE:?} after the deadline",
                    pumps.len()
                );
                figures.errors += pumps.len() as u64;
                pumps.abort_all();
                break;
            }
        }
    }
    // Sessions close after the deadline; the closing is outside the measured window.
    figures.secs = load
        .duration
        .as_secs_f64()
        .min(started.elapsed().as_secs_f64());
    figures.server_cpu_us = cpu_before
        .zip(proc_stats::cpu_micros(server_pid))
        .map(|(before, after)| after.saturating_sub(before));
    figures.loadgen_cpu_us = own_before
        .zip(proc_stats::cpu_micros(Some(std::process::id())))
        .map(|(before, after)| after.saturating_sub(before));
    Ok(figures)
}
