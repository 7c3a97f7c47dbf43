//! Device twin types (spec/protocol.md §5.6): the twin a GET returns, and the desired-property
//! patches the hub pushes while the device is connected.
//!
//! Properties stay `serde_json::Value`s: a twin's shape is whatever the solution puts in it,
//! and the `$version` (and `$metadata`, if a hub sends it) must reach the application intact,
//! since reconnect logic compares versions.

use serde::Deserialize;
use serde_json::Value;
use tokio::sync::mpsc;

/// The device's view of its twin: the properties section of a twin GET.
///
/// Both objects carry `"$version"`; [`Twin::desired_version`] reads it for the documented
/// reconnect flow (subscribe to desired updates, GET the twin, ignore patches whose version
/// is not above the GET's).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Twin {
    /// Desired properties set by the solution, with `"$version"`.
    #[serde(default)]
    pub desired: Value,
    /// Reported properties set by the device, with `"$version"`.
    #[serde(default)]
    pub reported: Value,
}

impl Twin {
    /// `desired["$version"]`, if present and a non-negative integer.
    pub fn desired_version(&self) -> Option<u64> {
        self.desired.get("$version").and_then(Value::as_u64)
    }

    /// `reported["$version"]`, if present and a non-negative integer.
    pub fn reported_version(&self) -> Option<u64> {
        self.reported.get("$version").and_then(Value::as_u64)
    }
}

/// One desired-properties change pushed by the hub.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredPatch {
    /// The desired version after this patch (from the topic's `$version`, else the body's).
    pub version: u64,
    /// The JSON merge patch as sent, including `"$version"`; `null` values mean deletion.
    pub patch: Value,
}

/// Desired-property patches in the order the hub sent them; from
/// [`DeviceClient::desired_updates`](crate::DeviceClient::desired_updates).
///
/// Ends (`next` returns `None`) when the connection closes or when `desired_updates` is
/// called again, which moves the stream to the new receiver. Read it promptly: if 256 patches
/// pile up unread, further ones are dropped (with a warning) rather than stalling the
/// connection; GET the twin to catch up.
#[derive(Debug)]
pub struct DesiredUpdates {
    pub(crate) receiver: mpsc::Receiver<DesiredPatch>,
}

impl DesiredUpdates {
    /// The next patch, or `None` once no more can arrive.
    pub async fn next(&mut self) -> Option<DesiredPatch> {
        self.receiver.recv().await
    }
}

/// How many unread desired patches are buffered before newer ones are dropped.
pub(crate) const DESIRED_QUEUE: usize = 256;
