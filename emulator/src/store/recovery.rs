//! Opening a data directory: read the snapshot, replay the log on top of it, and decide what
//! a damaged byte means.
//!
//! The rules (docs/persistence.md):
//! * a log that ends in a bad frame with no intact frame after it was being appended when the
//!   process died; that apply was never acknowledged, so it is cut off with a warning;
//! * any other damage — a bad frame with intact frames after it, a damaged snapshot, a frame
//!   whose checksum matches but whose JSON does not decode — fails the open with the file
//!   and byte offset. Nothing acknowledged is ever dropped silently;
//! * a log older than the snapshot is left over from a compaction interrupted after the
//!   snapshot was renamed into place; the snapshot already contains it.

use std::fs::File;
use std::path::Path;

use super::disk::{self, Paths};
use super::error::StoreError;
use super::frame::{self, FILE_HEADER_LEN, FileKind, HeaderError};
use super::mirror::Mirror;
use super::record::{self, SnapshotPart};

/// What an open found on disk, ready for the writer.
pub(super) struct Recovered {
    pub mirror: Mirror,
    /// Generation of the snapshot (0 before the first compaction), which the log matches.
    pub generation: u64,
    pub snapshot_len: u64,
    pub log: File,
    pub log_len: u64,
}

pub(super) fn recover(paths: &Paths) -> Result<Recovered, StoreError> {
    // A temporary file only becomes real by being renamed; one still here is unfinished.
    disk::remove_if_present(&paths.snapshot_tmp)?;
    disk::remove_if_present(&paths.log_tmp)?;

    let snapshot = disk::read_if_present(&paths.snapshot)?;
    let (mut mirror, generation) = match &snapshot {
        Some(bytes) => read_snapshot(&paths.snapshot, bytes)?,
        None => (Mirror::default(), 0),
    };
    let snapshot_len = snapshot.as_ref().map_or(0, |bytes| bytes.len() as u64);

    let (log, log_len) = match disk::read_if_present(&paths.log)? {
        Some(bytes) => replay_log(paths, &bytes, generation, &mut mirror)?,
        None if snapshot.is_some() => {
            return Err(StoreError::corrupt(
                &paths.log,
                0,
                format!(
                    "the log is missing although {} exists, so recent writes may be lost",
                    paths.snapshot.display()
                ),
            ));
        }
        None => disk::create_log(paths, generation)?,
    };
    Ok(Recovered {
        mirror,
        generation,
        snapshot_len,
        log,
        log_len,
    })
}

pub(super) fn read_snapshot(path: &Path, bytes: &[u8]) -> Result<(Mirror, u64), StoreError> {
    let header =
        frame::decode_file_header(bytes, FileKind::Snapshot).map_err(|e| header_error(path, e))?;
    let scan = frame::scan_frames(bytes, FILE_HEADER_LEN);
    if let Some(damage) = scan.damage {
        // Snapshots are complete before they are renamed into place: damage is never a
        // crash mid-write.
        return Err(StoreError::corrupt(path, damage.offset, damage.reason));
    }
    let mut mirror = Mirror::default();
    let mut listed: u64 = 0;
    let mut ended = false;
    for frame in scan.frames {
        if ended {
            return Err(StoreError::corrupt(
                path,
                frame.offset,
                "record after the end record",
            ));
        }
        match record::decode_snapshot_frame(frame.payload)
            .map_err(|reason| StoreError::corrupt(path, frame.offset, reason))?
        {
            SnapshotPart::Entries(changes) => {
                listed += changes.len() as u64;
                changes.into_iter().for_each(|change| mirror.apply(change));
            }
            SnapshotPart::End { entries } if entries != listed => {
                return Err(StoreError::corrupt(
                    path,
                    frame.offset,
                    format!("the end record counts {entries} entries but {listed} precede it"),
                ));
            }
            SnapshotPart::End { .. } => ended = true,
        }
    }
    if !ended {
        return Err(StoreError::corrupt(
            path,
            bytes.len(),
            "the snapshot stops before its end record",
        ));
    }
    Ok((mirror, header.generation))
}

/// Applies the log's records to `mirror`; returns the log opened for appending after the
/// last intact record.
fn replay_log(
    paths: &Paths,
    bytes: &[u8],
    generation: u64,
    mirror: &mut Mirror,
) -> Result<(File, u64), StoreError> {
    let path = &paths.log;
    let header =
        frame::decode_file_header(bytes, FileKind::Log).map_err(|e| header_error(path, e))?;
    if header.generation < generation {
        tracing::info!(
            log = %path.display(),
            log_generation = header.generation,
            snapshot_generation = generation,
            "replacing a log the snapshot already contains (a compaction was interrupted)"
        );
        return disk::create_log(paths, generation);
    }
    if header.generation > generation {
        return Err(StoreError::corrupt(
            path,
            16,
            format!(
                "the log belongs to snapshot generation {} but the snapshot is generation {generation}",
                header.generation
            ),
        ));
    }

    let scan = frame::scan_frames(bytes, FILE_HEADER_LEN);
    for frame in &scan.frames {
        let changes = record::decode_log_frame(frame.payload)
            .map_err(|reason| StoreError::corrupt(path, frame.offset, reason))?;
        changes.into_iter().for_each(|change| mirror.apply(change));
    }
    let mut intact_len = bytes.len();
    if let Some(damage) = scan.damage {
        if let Some(intact) = damage.intact_frame_after {
            return Err(StoreError::corrupt(
                path,
                damage.offset,
                format!(
                    "{}, and an intact record follows at offset {intact}, so this is not an \
                     interrupted write",
                    damage.reason
                ),
            ));
        }
        tracing::warn!(
            log = %path.display(),
            offset = damage.offset,
            dropped_bytes = bytes.len() - damage.offset,
            reason = %damage.reason,
            "dropping a torn record at the end of the log: it was being written when the \
             emulator stopped, so it was never acknowledged"
        );
        intact_len = damage.offset;
    }

    let log = disk::open_log_for_append(paths)?;
    if intact_len < bytes.len() {
        log.set_len(intact_len as u64)
            .and_then(|()| log.sync_all())
            .map_err(|e| StoreError::io("truncate", path, e))?;
    }
    Ok((log, intact_len as u64))
}

fn header_error(path: &Path, error: HeaderError) -> StoreError {
    match error {
        HeaderError::Invalid(reason) => StoreError::corrupt(path, 0, reason),
        HeaderError::UnsupportedVersion(found) => StoreError::UnsupportedVersion {
            path: path.to_owned(),
            found,
            supported: frame::FORMAT_VERSION,
        },
    }
}
