//! The JSON inside frames: how one `apply`'s ops are written to the log and how a snapshot
//! lists the state, and the strict decoding of both. JSON keeps the files inspectable with
//! ordinary tools; docs/persistence.md shows the shapes.
//!
//! ```text
//! log frame:       {"batch":[TX,TX,…]}            one or more applies, fsynced together
//! TX:              [OP,OP,…]                      one apply, replayed whole
//! OP:              {"put":{"c":COLLECTION,"k":KEY,"v":VALUE}} | {"delete":{"c":COLLECTION,"k":KEY}}
//! snapshot frame:  {"entries":[PUT,PUT,…]}        followed by one {"end":{"entries":N}}
//! ```

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::Op;
use super::error::StoreError;
use super::frame::{self, MAX_FRAME_PAYLOAD};
use super::mirror::Mirror;

/// Deepest nesting of arrays and objects a stored value may have. Every value must parse
/// back at startup, and serde_json refuses more than 128 levels in a whole frame, of which
/// the frame's own structure takes five; 100 leaves room and is far beyond IoT Hub's twin
/// depth limit.
pub(crate) const MAX_VALUE_DEPTH: usize = 100;

/// Largest encoded apply: it must fit in one log frame with the batch wrapper around it.
pub(crate) const MAX_TX_BYTES: usize = MAX_FRAME_PAYLOAD - BATCH_WRAPPER_LEN;

/// What one op does to the state, with the value already as JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Change {
    pub collection: String,
    pub key: String,
    /// `None` deletes the key.
    pub value: Option<Box<str>>,
}

/// One apply, encoded once when it is submitted: the bytes for the log and the changes for
/// the in-memory copy.
#[derive(Debug)]
pub(super) struct EncodedTx {
    pub bytes: Vec<u8>,
    pub changes: Vec<Change>,
}

/// Encodes the ops of one apply; refuses values that could not be read back.
pub(super) fn encode_tx(ops: &[Op]) -> Result<EncodedTx, StoreError> {
    let mut bytes = Vec::with_capacity(64 * ops.len());
    let mut changes = Vec::with_capacity(ops.len());
    bytes.push(b'[');
    for (index, op) in ops.iter().enumerate() {
        if index > 0 {
            bytes.push(b',');
        }
        let (kind, collection, key, value) = match op {
            Op::Put {
                collection,
                key,
                value,
            } => {
                check_depth(value, collection, key)?;
                let text = serde_json::to_string(value).map_err(|e| {
                    StoreError::Rejected(format!("value of {collection}/{key}: {e}"))
                })?;
                ("put", collection, key, Some(text.into_boxed_str()))
            }
            Op::Delete { collection, key } => ("delete", collection, key, None),
        };
        bytes.extend_from_slice(b"{\"");
        bytes.extend_from_slice(kind.as_bytes());
        bytes.extend_from_slice(b"\":{\"c\":");
        push_json_string(&mut bytes, collection);
        bytes.extend_from_slice(b",\"k\":");
        push_json_string(&mut bytes, key);
        if let Some(text) = &value {
            bytes.extend_from_slice(b",\"v\":");
            bytes.extend_from_slice(text.as_bytes());
        }
        bytes.extend_from_slice(b"}}");
        changes.push(Change {
            collection: collection.clone(),
            key: key.clone(),
            value,
        });
    }
    bytes.push(b']');
    if bytes.len() > MAX_TX_BYTES {
        return Err(StoreError::Rejected(format!(
            "one apply encodes to {} bytes; the limit is {MAX_TX_BYTES}",
            bytes.len()
        )));
    }
    Ok(EncodedTx { bytes, changes })
}

/// Bytes a log frame's payload adds around its applies: `{"batch":[` and `]}`.
pub(super) const BATCH_WRAPPER_LEN: usize = 12;

/// The payload of a log frame holding `txs` (each from [`encode_tx`]).
pub(super) fn log_frame_payload<'a>(txs: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut payload = b"{\"batch\":[".to_vec();
    for (index, tx) in txs.into_iter().enumerate() {
        if index > 0 {
            payload.push(b',');
        }
        payload.extend_from_slice(tx);
    }
    payload.extend_from_slice(b"]}");
    payload
}

/// Snapshot frames are cut near this size so no single frame gets huge.
const SNAPSHOT_FRAME_TARGET: usize = 1 << 20;

/// A whole snapshot file: header, entry frames, end frame.
pub(super) fn encode_snapshot(generation: u64, mirror: &Mirror) -> Vec<u8> {
    let mut file = frame::encode_file_header(frame::FileHeader {
        kind: frame::FileKind::Snapshot,
        generation,
    })
    .to_vec();
    let mut payload = Vec::new();
    let mut entries: u64 = 0;
    for (collection, key, value) in mirror.iter() {
        let mut entry = Vec::with_capacity(collection.len() + key.len() + value.len() + 32);
        entry.extend_from_slice(b"{\"put\":{\"c\":");
        push_json_string(&mut entry, collection);
        entry.extend_from_slice(b",\"k\":");
        push_json_string(&mut entry, key);
        entry.extend_from_slice(b",\"v\":");
        entry.extend_from_slice(value.as_bytes());
        entry.extend_from_slice(b"}}");
        if !payload.is_empty() && payload.len() + entry.len() + 2 > SNAPSHOT_FRAME_TARGET {
            payload.extend_from_slice(b"]}");
            frame::append_frame(&mut file, &payload);
            payload.clear();
        }
        payload.extend_from_slice(if payload.is_empty() {
            b"{\"entries\":["
        } else {
            b","
        });
        payload.extend_from_slice(&entry);
        entries += 1;
    }
    if !payload.is_empty() {
        payload.extend_from_slice(b"]}");
        frame::append_frame(&mut file, &payload);
    }
    let end = format!("{{\"end\":{{\"entries\":{entries}}}}}");
    frame::append_frame(&mut file, end.as_bytes());
    file
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogFrame<'a> {
    #[serde(borrow)]
    batch: Vec<Vec<OpOnDisk<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum OpOnDisk<'a> {
    Put(#[serde(borrow)] PutOnDisk<'a>),
    Delete(DeleteOnDisk),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutOnDisk<'a> {
    c: String,
    k: String,
    #[serde(borrow)]
    v: &'a RawValue,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteOnDisk {
    c: String,
    k: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum SnapshotFrame<'a> {
    Entries(#[serde(borrow)] Vec<OpOnDisk<'a>>),
    End { entries: u64 },
}

impl OpOnDisk<'_> {
    fn into_change(self) -> Change {
        match self {
            OpOnDisk::Put(put) => Change {
                collection: put.c,
                key: put.k,
                value: Some(put.v.get().into()),
            },
            OpOnDisk::Delete(delete) => Change {
                collection: delete.c,
                key: delete.k,
                value: None,
            },
        }
    }
}

/// The changes of a log frame, in order.
pub(super) fn decode_log_frame(payload: &[u8]) -> Result<Vec<Change>, String> {
    let frame: LogFrame<'_> =
        serde_json::from_slice(payload).map_err(|e| format!("undecodable log record: {e}"))?;
    Ok(frame
        .batch
        .into_iter()
        .flatten()
        .map(OpOnDisk::into_change)
        .collect())
}

/// One frame of a snapshot.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum SnapshotPart {
    Entries(Vec<Change>),
    End { entries: u64 },
}

pub(super) fn decode_snapshot_frame(payload: &[u8]) -> Result<SnapshotPart, String> {
    let frame: SnapshotFrame<'_> =
        serde_json::from_slice(payload).map_err(|e| format!("undecodable snapshot record: {e}"))?;
    match frame {
        SnapshotFrame::End { entries } => Ok(SnapshotPart::End { entries }),
        SnapshotFrame::Entries(ops) => ops
            .into_iter()
            .map(|op| match op {
                OpOnDisk::Put(_) => Ok(op.into_change()),
                OpOnDisk::Delete(delete) => Err(format!(
                    "snapshot lists a delete of {}/{}",
                    delete.c, delete.k
                )),
            })
            .collect::<Result<_, _>>()
            .map(SnapshotPart::Entries),
    }
}

fn push_json_string(out: &mut Vec<u8>, text: &str) {
    // Serialising a `str` into a Vec cannot fail; the fallback keeps this panic-free anyway.
    if serde_json::to_writer(&mut *out, text).is_err() {
        out.extend_from_slice(b"\"\"");
    }
}

/// Refuses values nested deeper than [`MAX_VALUE_DEPTH`], iteratively so that no value can
/// exhaust the stack here.
fn check_depth(value: &Value, collection: &str, key: &str) -> Result<(), StoreError> {
    let mut stack = vec![(value, 0usize)];
    while let Some((value, depth)) = stack.pop() {
        let is_container = matches!(value, Value::Array(_) | Value::Object(_));
        if is_container && depth + 1 > MAX_VALUE_DEPTH {
            return Err(StoreError::Rejected(format!(
                "value of {collection}/{key} is nested deeper than {MAX_VALUE_DEPTH} levels"
            )));
        }
        match value {
            Value::Array(items) => stack.extend(items.iter().map(|item| (item, depth + 1))),
            Value::Object(map) => stack.extend(map.values().map(|item| (item, depth + 1))),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nested(depth: usize) -> Value {
        (0..depth).fold(json!(1), |inner, _| json!([inner]))
    }

    #[test]
    fn a_tx_round_trips_through_a_log_frame() {
        let ops = [
            Op::put("devices", "d\"1", json!({"a": [1, 2.5, null], "ü": "x"})),
            Op::put("devices", "", Value::Null),
            Op::delete("twins", "d1"),
        ];
        let tx = encode_tx(&ops).expect("encode");
        let payload = log_frame_payload([tx.bytes.as_slice(), tx.bytes.as_slice()]);
        let decoded = decode_log_frame(&payload).expect("decode");
        assert_eq!(decoded.len(), 6);
        assert_eq!(decoded[..3], tx.changes[..]);
        assert_eq!(decoded[1].value.as_deref(), Some("null"));
        assert_eq!(decoded[2].value, None);
        let value: Value =
            serde_json::from_str(decoded[0].value.as_deref().unwrap_or_default()).expect("json");
        assert_eq!(value, json!({"a": [1, 2.5, null], "ü": "x"}));
    }

    #[test]
    fn the_batch_wrapper_length_is_what_log_frame_payload_adds() {
        let tx = b"[]";
        assert_eq!(
            log_frame_payload([&tx[..]]).len(),
            tx.len() + BATCH_WRAPPER_LEN
        );
    }

    #[test]
    fn values_at_the_depth_limit_are_accepted_and_read_back() {
        let tx = encode_tx(&[Op::put("c", "k", nested(MAX_VALUE_DEPTH))]).expect("encode");
        let decoded = decode_log_frame(&log_frame_payload([tx.bytes.as_slice()])).expect("decode");
        let text = decoded[0].value.as_deref().unwrap_or_default();
        let value: Value = serde_json::from_str(text).expect("parses back");
        assert_eq!(value, nested(MAX_VALUE_DEPTH));
        let mut mirror = Mirror::default();
        mirror.apply(decoded[0].clone());
        let snapshot = encode_snapshot(1, &mirror);
        let scan = frame::scan_frames(&snapshot, frame::FILE_HEADER_LEN);
        assert!(matches!(
            decode_snapshot_frame(scan.frames[0].payload),
            Ok(SnapshotPart::Entries(entries)) if entries.len() == 1
        ));
    }

    #[test]
    fn deeper_values_are_rejected_before_anything_is_written() {
        let error =
            encode_tx(&[Op::put("c", "k", nested(MAX_VALUE_DEPTH + 1))]).expect_err("too deep");
        assert!(error.to_string().contains("c/k is nested deeper than 100"));
    }

    #[test]
    fn malformed_records_are_described_not_accepted() {
        for payload in [
            &br#"{"batch":[[{"put":{"c":"a","k":"b"}}]]}"#[..],
            br#"{"batch":[[{"upsert":{"c":"a","k":"b","v":1}}]]}"#,
            br#"{"batch":[[{"delete":{"c":"a","k":"b","v":1}}]]}"#,
            br#"{"batch":[[]], "extra":1}"#,
            br#"{"batch":"#,
        ] {
            let error = decode_log_frame(payload).expect_err("malformed");
            assert!(error.starts_with("undecodable log record"), "{error}");
        }
        assert!(
            decode_snapshot_frame(br#"{"entries":[{"delete":{"c":"a","k":"b"}}]}"#)
                .expect_err("delete in snapshot")
                .contains("delete of a/b")
        );
    }

    #[test]
    fn snapshots_split_into_frames_and_count_their_entries() {
        let mut mirror = Mirror::default();
        let big = "x".repeat(300_000);
        for key in 0..10 {
            mirror.apply(Change {
                collection: "c".into(),
                key: key.to_string(),
                value: Some(format!("\"{big}\"").into()),
            });
        }
        let file = encode_snapshot(4, &mirror);
        let scan = frame::scan_frames(&file, frame::FILE_HEADER_LEN);
        assert_eq!(scan.damage, None);
        assert!(scan.frames.len() > 3, "{} frames", scan.frames.len());
        let mut listed = 0;
        for (index, frame) in scan.frames.iter().enumerate() {
            match decode_snapshot_frame(frame.payload).expect("decode") {
                SnapshotPart::Entries(entries) => listed += entries.len(),
                SnapshotPart::End { entries } => {
                    assert_eq!(index, scan.frames.len() - 1);
                    assert_eq!(entries, 10);
                }
            }
        }
        assert_eq!(listed, 10);
    }
}
