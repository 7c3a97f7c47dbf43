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

/// One desired-properties change: a patch pushed by the hub, or — after a reconnect — the
/// whole desired section, if it changed while the client was not connected.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredPatch {
    /// The desired version after this change (from the topic's `$version`, else the body's).
    pub version: u64,
    /// The JSON merge patch as sent, including `"$version"`; `null` values mean deletion.
    /// When `full_document` is set, the complete desired section instead.
    pub patch: Value,
    /// True when `patch` is the whole desired section, fetched with a twin GET after a
    /// reconnect because the version moved on meanwhile. Replace your copy rather than merge:
    /// properties deleted while disconnected are simply absent, not `null`.
    pub full_document: bool,
}

/// Desired-property changes, ordered by `$version`; from
/// [`DeviceClient::desired_updates`](crate::DeviceClient::desired_updates).
///
/// The stream survives reconnects: after each one the client GETs the twin and, if the
/// desired `$version` is above every version this stream delivered (and every twin the
/// application fetched itself), delivers the whole desired section as one
/// [`DesiredPatch`] with `full_document` set. A change is never delivered twice, and never
/// after a newer one.
///
/// Ends (`next` returns `None`) when the client stops or when `desired_updates` is called
/// again, which moves the stream to the new receiver. Read it promptly: if 256 changes pile
/// up unread, further ones are dropped (with a warning) rather than stalling the connection;
/// GET the twin to catch up.
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
