//! Devices for the telemetry and connect modes. On iotemu a device must exist before it can
//! connect, so each is first registered through DPS with a key derived from the quickstart
//! group (untimed: that cost is the register mode's figure); mosquitto needs nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::task::JoinSet;

use crate::connection::Endpoint;
use crate::device::Device;
use crate::dps;

/// Registrations in flight during setup.
const SETUP_WORKERS: usize = 50;

/// `count` devices `{prefix}-{n}` of the group with `group_key`, registered through DPS when
/// `register` (the server is iotemu).
pub async fn devices(
    endpoint: &Endpoint,
    group_key: &[u8],
    prefix: &str,
    count: usize,
    register: bool,
) -> Result<Vec<Device>, String> {
    let devices: Arc<Vec<Device>> = Arc::new(
        (0..count)
            .map(|n| Device::in_group(group_key, format!("{prefix}-{n}")))
            .collect(),
    );
    if register {
        let next = Arc::new(AtomicUsize::new(0));
        let mut workers = JoinSet::new();
        for _ in 0..SETUP_WORKERS.min(count) {
            let (endpoint, devices, next) = (endpoint.clone(), devices.clone(), next.clone());
            workers.spawn(async move {
                while let Some(device) = devices.get(next.fetch_add(1, Ordering::Relaxed)) {
                    dps::register(&endpoint, device).await?;
                }
                Ok::<(), String>(())
            });
        }
        while let Some(done) = workers.join_next().await {
            done.map_err(|e| format!("setup worker: {e}"))??;
        }
    }
    Ok(Arc::try_unwrap(devices).unwrap_or_else(|shared| (*shared).clone()))
}
