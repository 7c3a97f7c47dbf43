//! Register mode: `workers` concurrent devices each run full DPS registrations back to back
//! (a new TLS connection and a new registration id every time, so each one is a device's first
//! registration) until `duration` is over or `count` registrations were started. Figures:
//! registrations per second, latency p50/p99 (TCP connect to `assigned`), server CPU time and
//! resident memory growth per registered device.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::connection::Endpoint;
use crate::device::{BENCH_MASTER_KEY, Device};
use crate::dps;
use crate::proc_stats;
use crate::report::Figures;
use crate::sas;

/// Which enrollment the registering devices belong to.
#[derive(Clone)]
pub enum Enrollment {
    /// Devices `{prefix}-{n}` of a symmetric-key group with this (decoded) key.
    Group { key: Vec<u8>, prefix: String },
    /// The individual enrollments `bench-ind-{k}` of a fixture made by `iotemu-loadgen
    /// fixture --enrollments total`, visited in a scattered order.
    Individual { total: u64 },
}

impl Enrollment {
    /// The `n`-th device to register.
    fn device(&self, n: u64) -> Device {
        match self {
            Enrollment::Group { key, prefix } => Device::in_group(key, format!("{prefix}-{n}")),
            Enrollment::Individual { total } => {
                // A prime stride visits every enrollment once before repeating, out of order.
                let k = n.wrapping_mul(7919) % (*total).max(1);
                let id = format!("bench-ind-{k}");
                let key = sas::decode_key(&sas::derive_device_key(BENCH_MASTER_KEY, &id))
                    .unwrap_or_default();
                Device { id, key }
            }
        }
    }
}

/// The knobs of one register run.
pub struct Plan {
    pub workers: usize,
    pub duration: Duration,
    pub count: Option<u64>,
    pub enrollment: Enrollment,
}

/// Runs the mode.
pub async fn run(
    endpoint: &Endpoint,
    plan: Plan,
    server_pid: Option<u32>,
) -> Result<Figures, String> {
    let rss_before = proc_stats::rss_kib(server_pid);
    let cpu_before = proc_stats::cpu_micros(server_pid);
    let own_before = proc_stats::cpu_micros(Some(std::process::id()));
    let started = Instant::now();
    let deadline = started + plan.duration;
    let next = Arc::new(AtomicU64::new(0));
    let enrollment = Arc::new(plan.enrollment);
    let mut workers = JoinSet::new();
    for _ in 0..plan.workers.max(1) {
        let (endpoint, next, enrollment) = (endpoint.clone(), next.clone(), enrollment.clone());
        let count = plan.count;
        workers.spawn(async move {
            let (mut took, mut errors) = (Vec::new(), 0u64);
            while Instant::now() < deadline {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if count.is_some_and(|count| n >= count) {
                    break;
                }
                match dps::register(&endpoint, &enrollment.device(n)).await {
                    Ok(latency) => took.push(latency),
                    Err(e) => {
                        eprintln!("register: {e}");
                        errors += 1;
                    }
                }
            }
            (took, errors)
        });
    }
    let mut figures = Figures::default();
    while let Some(done) = workers.join_next().await {
        let (took, errors) = done.map_err(|e| format!("register worker: {e}"))?;
        figures.latencies.extend(took);
        figures.errors += errors;
    }
    figures.secs = started.elapsed().as_secs_f64();
    figures.ops = figures.latencies.len() as u64;
    figures.server_cpu_us = cpu_before
        .zip(proc_stats::cpu_micros(server_pid))
        .map(|(before, after)| after.saturating_sub(before));
    figures.loadgen_cpu_us = own_before
        .zip(proc_stats::cpu_micros(Some(std::process::id())))
        .map(|(before, after)| after.saturating_sub(before));
    figures.server_rss_delta_kib = rss_before
        .zip(proc_stats::rss_kib(server_pid))
        .map(|(before, after)| after as i64 - before as i64);
    Ok(figures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn individual_devices_cover_every_enrollment_once_per_round() {
        let enrollment = Enrollment::Individual { total: 10 };
        let mut ids: Vec<String> = (0..10).map(|n| enrollment.device(n).id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 10);
        assert!(ids.iter().all(|id| id.starts_with("bench-ind-")));
    }

    #[test]
    fn group_devices_get_their_derived_keys() {
        let enrollment = Enrollment::Group {
            key: b"group".to_vec(),
            prefix: "p".into(),
        };
        let device = enrollment.device(3);
        assert_eq!(device.id, "p-3");
        assert_eq!(
            device.key,
            sas::decode_key(&sas::derive_device_key(b"group", "p-3")).unwrap()
        );
    }
}
