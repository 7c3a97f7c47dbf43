//! Connect mode: opens `count` hub sessions (TLS + CONNECT accepted) and holds them all at
//! once; the figure is the server's resident memory growth per held session, plus its CPU time
//! per connect (TLS handshake included). With `tls_only` the sessions stop after the TLS
//! handshake (no CONNECT), which separates the TLS layer's share of the memory from the MQTT
//! session's.

use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::connection::{Connection, Endpoint};
use crate::device::Device;
use crate::proc_stats;
use crate::report::Figures;
use crate::telemetry::open_session;

/// Handshakes in flight while the sessions open.
const OPENING_AT_ONCE: usize = 50;
/// Time for the server to settle (tasks parked, buffers trimmed) before RSS is sampled.
const SETTLE: Duration = Duration::from_secs(2);

/// Runs the mode against already registered `devices`.
pub async fn run(
    endpoint: &Endpoint,
    devices: &[Device],
    tls_only: bool,
    server_pid: Option<u32>,
) -> Result<Figures, String> {
    let rss_before = proc_stats::rss_kib(server_pid);
    let cpu_before = proc_stats::cpu_micros(server_pid);
    let started = Instant::now();
    let mut held: Vec<Connection> = Vec::with_capacity(devices.len());
    let mut figures = Figures::default();
    for chunk in devices.chunks(OPENING_AT_ONCE) {
        let mut opening = JoinSet::new();
        for device in chunk {
            let (endpoint, device) = (endpoint.clone(), device.clone());
            opening.spawn(async move {
                if tls_only {
                    Connection::open(&endpoint)
                        .await
                        .map_err(|e| format!("TLS to {}: {e}", endpoint.addr))
                } else {
                    open_session(&endpoint, &device).await
                }
            });
        }
        while let Some(opened) = opening.join_next().await {
            match opened.map_err(|e| format!("opening: {e}"))? {
                Ok(conn) => held.push(conn),
                Err(e) => {
                    eprintln!("connect: {e}");
                    figures.errors += 1;
                }
            }
        }
    }
    figures.secs = started.elapsed().as_secs_f64();
    figures.server_cpu_us = cpu_before
        .zip(proc_stats::cpu_micros(server_pid))
        .map(|(before, after)| after.saturating_sub(before));
    tokio::time::sleep(SETTLE).await;
    figures.ops = held.len() as u64;
    figures.server_rss_delta_kib = rss_before
        .zip(proc_stats::rss_kib(server_pid))
        .map(|(before, after)| after as i64 - before as i64);
    // Dropped, not DISCONNECTed: 10,000 orderly goodbyes would only lengthen the run.
    drop(held);
    Ok(figures)
}
