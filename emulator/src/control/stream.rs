//! `GET /telemetry/stream`: telemetry as server-sent events, live, optionally after what is
//! retained; the stream ends with the emulator.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::Response;
use hyper::body::Frame;
use hyper::header::CONTENT_TYPE;

use super::reply::Reply;
use crate::hub::Hub;
use crate::query;
use crate::shutdown::ShutdownSignal;

/// `GET /telemetry/stream?deviceId=&hub=&replay=true`: server-sent events, one `data:` line
/// of message JSON per telemetry message, live; `replay=true` first sends what is retained.
/// Subscribing happens before the log is read, so nothing falls between the two.
pub(super) fn telemetry_stream(
    hubs: &[&Arc<Hub>],
    query: &str,
    mut shutdown: ShutdownSignal,
) -> Reply {
    let device = query::value(query, "deviceId");
    let replay = query::value(query, "replay").is_some_and(|v| v == "true" || v == "1");
    let live: Vec<_> = hubs.iter().map(|h| h.telemetry().stream()).collect();
    // The newest replayed sequence number per hub and device: the log is sharded by device,
    // so only a device's own messages are sure to be stored in sequence order.
    let mut sent: HashMap<(Arc<str>, Arc<str>), u64> = HashMap::new();
    let mut backlog = Vec::new();
    if replay {
        for hub in hubs {
            for message in hub.telemetry().messages(device.as_deref()) {
                sent.insert(
                    (message.hub.clone(), message.device_id.clone()),
                    message.sequence_number,
                );
                backlog.push(message);
            }
        }
    }
    let wanted = device.clone();
    let live = futures_util::stream::select_all(live.into_iter().map(Box::pin)).filter(move |m| {
        let fresh = sent.is_empty()
            || sent
                .get(&(m.hub.clone(), m.device_id.clone()))
                .is_none_or(|seen| m.sequence_number > *seen);
        let ours = wanted.as_deref().is_none_or(|d| *m.device_id == *d);
        std::future::ready(fresh && ours)
    });
    // Ends with the emulator, so a subscriber does not hold the shutdown up.
    let live = live.take_until(async move { shutdown.recv().await });
    let events = futures_util::stream::iter(backlog).chain(live).map(|m| {
        Ok::<_, Infallible>(Frame::data(Bytes::from(format!(
            "data: {}\n\n",
            m.to_json()
        ))))
    });
    // A comment first, so clients see the response headers at once.
    let hello = futures_util::stream::once(std::future::ready(Ok::<_, Infallible>(Frame::data(
        Bytes::from_static(b": iotemu telemetry stream\n\n"),
    ))));
    Response::builder()
        .header(CONTENT_TYPE, "text/event-stream")
        .header("cache-control", "no-cache")
        .body(BodyExt::boxed(StreamBody::new(hello.chain(events))))
        .unwrap_or_default()
}
