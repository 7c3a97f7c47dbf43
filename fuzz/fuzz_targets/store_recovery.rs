//! The durable store's recovery (emulator/src/store/frame.rs, record.rs, recovery.rs) from
//! bytes. The first byte picks the shape:
//!
//! * even — raw files: the rest is split at the first `\n--\n` into a snapshot and a log (no
//!   separator: no snapshot, all log), header and checksums as given;
//! * odd — framed files: the rest is split at `\n--\n` into parts; the first part is the
//!   snapshot's frame payloads, the others the log's, each part split at `\n` into frame
//!   payloads that get valid headers and checksums, so the JSON record decoding is reached.
//!
//! Recovery must reject or accept without panicking, and an accepted state written as a
//! snapshot must read back the same (checked inside `recover_from_bytes`).
#![no_main]

use iotemu::internals::fuzzing::{append_frame, file_header, recover_from_bytes};
use libfuzzer_sys::fuzz_target;

const SEPARATOR: &[u8] = b"\n--\n";

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let parts = split(rest, SEPARATOR);
    if mode % 2 == 0 {
        match parts.as_slice() {
            [log] => drop(recover_from_bytes(None, log)),
            [snapshot, log, ..] => drop(recover_from_bytes(Some(snapshot), log)),
            [] => {}
        }
        return;
    }
    let generation = u64::from(mode >> 1);
    let framed = |snapshot: bool, payloads: &[&[u8]]| {
        let mut file = file_header(snapshot, generation).to_vec();
        for payload in payloads.iter().filter(|p| !p.is_empty()) {
            append_frame(&mut file, payload);
        }
        file
    };
    let mut parts = parts.into_iter();
    let snapshot_payloads = parts.next().map(|p| split(p, b"\n")).unwrap_or_default();
    let snapshot = framed(true, &snapshot_payloads);
    let log_payloads: Vec<&[u8]> = parts.flat_map(|p| split(p, b"\n")).collect();
    let log = framed(false, &log_payloads);
    let _ = recover_from_bytes(Some(&snapshot), &log);
    let _ = recover_from_bytes(None, &log);
});

fn split<'a>(mut bytes: &'a [u8], separator: &[u8]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    while let Some(at) = bytes.windows(separator.len()).position(|w| w == separator) {
        parts.push(&bytes[..at]);
        bytes = &bytes[at + separator.len()..];
    }
    parts.push(bytes);
    parts
}
