//! Recovery from bytes instead of files, for the `store_recovery` fuzz target (fuzz/,
//! docs/fuzzing.md). It runs the same decoding `recovery` does at startup — snapshot header,
//! frames and records, then the log's — without a directory, a lock or a writer thread, and
//! checks the property recovery relies on: a state that was read back, written as a snapshot
//! again and read once more is the same state. Not part of the stable API.

use super::frame::{self, FILE_HEADER_LEN, FileKind};
use super::mirror::Mirror;
use super::record;
use super::recovery;

use super::frame::FileHeader;
pub use super::frame::append_frame;

/// A file header of the given kind ("snapshot" or anything else for the log), so a harness
/// can build files whose checksums are right and reach the record decoding.
pub fn file_header(snapshot: bool, generation: u64) -> [u8; FILE_HEADER_LEN] {
    let kind = if snapshot {
        FileKind::Snapshot
    } else {
        FileKind::Log
    };
    frame::encode_file_header(FileHeader { kind, generation })
}

/// Decodes `snapshot` (when present) and `log` as an open would; `Ok` carries the number of
/// entries recovered. Panics only if re-encoding the recovered state does not read back as
/// the same state, which would be a bug in the store.
pub fn recover_from_bytes(snapshot: Option<&[u8]>, log: &[u8]) -> Result<usize, String> {
    let path = std::path::Path::new("fuzz-input");
    let (mut mirror, generation) = match snapshot {
        Some(bytes) => recovery::read_snapshot(path, bytes).map_err(|e| e.to_string())?,
        None => (Mirror::default(), 0),
    };
    let header = frame::decode_file_header(log, FileKind::Log).map_err(|e| format!("{e:?}"))?;
    if header.generation == generation {
        let scan = frame::scan_frames(log, FILE_HEADER_LEN);
        for found in &scan.frames {
            for change in record::decode_log_frame(found.payload)? {
                mirror.apply(change);
            }
        }
    }
    // Values from the log were checked by serde_json on the way in; they must load.
    mirror.to_snapshot().map_err(|e| e.to_string())?;
    let rewritten = record::encode_snapshot(generation, &mirror);
    match recovery::read_snapshot(path, &rewritten) {
        Ok((again, again_generation)) => {
            assert_eq!(again, mirror, "a rewritten snapshot reads back differently");
            assert_eq!(again_generation, generation);
        }
        Err(e) => panic!("a snapshot the store wrote does not read back: {e}"),
    }
    Ok(mirror.len())
}
