//! The byte layout shared by the write-ahead log and the snapshot: a fixed file header, then
//! a sequence of checksummed frames. Pure functions over byte slices, so the recovery rules
//! can be tested without a disk.
//!
//! ```text
//! file header (28 bytes): magic "iotemudb" | format version u32 | kind u32 | generation u64 | crc32 of the 24 bytes before
//! frame:                  payload length u32 | crc32 of payload u32 | crc32 of the 8 bytes before | payload
//! ```
//!
//! All integers are little-endian. The frame header has its own checksum so that a damaged
//! length is recognised as damage instead of being believed (a believed length that runs past
//! the end of the file would look like an interrupted write and be dropped).

use std::fmt;

pub(super) const MAGIC: [u8; 8] = *b"iotemudb";
/// Bumped whenever the layout or the payload encoding changes incompatibly.
pub(super) const FORMAT_VERSION: u32 = 1;
pub(super) const FILE_HEADER_LEN: usize = 28;
pub(super) const FRAME_HEADER_LEN: usize = 12;
/// Upper bound of one frame's payload; larger lengths are damage. Far above anything IoT Hub
/// or DPS lets one entity grow to, and small enough that a damaged length cannot make
/// recovery allocate without bound.
pub(super) const MAX_FRAME_PAYLOAD: usize = 256 << 20;

/// Which file a header belongs to, so a snapshot renamed to the log's name is not replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    Snapshot = 1,
    Log = 2,
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Snapshot => "snapshot",
            FileKind::Log => "log",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileHeader {
    pub kind: FileKind,
    /// Which snapshot a log applies on top of; a snapshot's own number. See docs/persistence.md.
    pub generation: u64,
}

/// Why a file header was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum HeaderError {
    /// Not an iotemu file, or damaged beyond telling.
    Invalid(String),
    /// Written by another version of iotemu.
    UnsupportedVersion(u32),
}

pub(crate) fn encode_file_header(header: FileHeader) -> [u8; FILE_HEADER_LEN] {
    let mut out = [0u8; FILE_HEADER_LEN];
    out[0..8].copy_from_slice(&MAGIC);
    out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    out[12..16].copy_from_slice(&(header.kind as u32).to_le_bytes());
    out[16..24].copy_from_slice(&header.generation.to_le_bytes());
    let crc = crc32fast::hash(&out[0..24]);
    out[24..28].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Reads the header at the start of `file`, which must be of kind `expected`.
pub(super) fn decode_file_header(
    file: &[u8],
    expected: FileKind,
) -> Result<FileHeader, HeaderError> {
    let Some(header) = file.get(..FILE_HEADER_LEN) else {
        return Err(HeaderError::Invalid(format!(
            "{} bytes is too short for the {FILE_HEADER_LEN}-byte file header",
            file.len()
        )));
    };
    if header[0..8] != MAGIC {
        return Err(HeaderError::Invalid(
            "not an iotemu data file (wrong magic bytes)".into(),
        ));
    }
    // The version is checked before the checksum: another version may checksum differently.
    let version = read_u32(header, 8);
    if version != FORMAT_VERSION {
        return Err(HeaderError::UnsupportedVersion(version));
    }
    if read_u32(header, 24) != crc32fast::hash(&header[0..24]) {
        return Err(HeaderError::Invalid("file header checksum mismatch".into()));
    }
    let kind = read_u32(header, 12);
    if kind != expected as u32 {
        return Err(HeaderError::Invalid(format!(
            "file kind {kind} where a {expected} ({}) was expected",
            expected as u32
        )));
    }
    Ok(FileHeader {
        kind: expected,
        generation: read_u64(header, 16),
    })
}

/// Appends one frame holding `payload` (at most [`MAX_FRAME_PAYLOAD`] bytes; callers bound
/// their payloads before they get here).
pub fn append_frame(out: &mut Vec<u8>, payload: &[u8]) {
    debug_assert!(!payload.is_empty() && payload.len() <= MAX_FRAME_PAYLOAD);
    let mut header = [0u8; FRAME_HEADER_LEN];
    header[0..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    header[4..8].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
    let header_crc = crc32fast::hash(&header[0..8]);
    header[8..12].copy_from_slice(&header_crc.to_le_bytes());
    out.reserve(FRAME_HEADER_LEN + payload.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(payload);
}

/// One intact frame found in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Frame<'a> {
    /// Byte offset of the frame header in the file.
    pub offset: usize,
    pub payload: &'a [u8],
}

/// Where reading frames stopped before the end of the file, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Damage {
    /// Byte offset where the first bad frame starts.
    pub offset: usize,
    pub reason: String,
    /// Offset of an intact frame after the damage, if any. With one, the damage cannot be an
    /// interrupted append (that only ever damages the end), so nothing may be dropped.
    pub intact_frame_after: Option<usize>,
}

/// The result of reading every frame from an offset to the end of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Scan<'a> {
    pub frames: Vec<Frame<'a>>,
    /// `None` when the frames fill the file exactly.
    pub damage: Option<Damage>,
}

/// Reads frames from `start` until the end of `file` or the first bad frame.
pub(super) fn scan_frames(file: &[u8], start: usize) -> Scan<'_> {
    let mut frames = Vec::new();
    let mut offset = start;
    while offset < file.len() {
        match read_frame(file, offset) {
            Ok(payload) => {
                frames.push(Frame { offset, payload });
                offset += FRAME_HEADER_LEN + payload.len();
            }
            Err(reason) => {
                let intact_frame_after =
                    (offset + 1..file.len()).find(|&later| read_frame(file, later).is_ok());
                return Scan {
                    frames,
                    damage: Some(Damage {
                        offset,
                        reason,
                        intact_frame_after,
                    }),
                };
            }
        }
    }
    Scan {
        frames,
        damage: None,
    }
}

/// The payload of the frame at `offset`, if the frame is whole and both checksums match.
fn read_frame(file: &[u8], offset: usize) -> Result<&[u8], String> {
    let rest = file.get(offset..).unwrap_or_default();
    let Some(header) = rest.get(..FRAME_HEADER_LEN) else {
        return Err(format!(
            "incomplete frame header ({} of {FRAME_HEADER_LEN} bytes)",
            rest.len()
        ));
    };
    if read_u32(header, 8) != crc32fast::hash(&header[0..8]) {
        return Err("frame header checksum mismatch".into());
    }
    let len = read_u32(header, 0) as usize;
    if len == 0 || len > MAX_FRAME_PAYLOAD {
        return Err(format!("impossible frame length {len}"));
    }
    let Some(payload) = rest.get(FRAME_HEADER_LEN..FRAME_HEADER_LEN + len) else {
        return Err(format!(
            "frame of {len} bytes runs past the end of the file ({} bytes present)",
            rest.len() - FRAME_HEADER_LEN
        ));
    };
    if read_u32(header, 4) != crc32fast::hash(payload) {
        return Err("payload checksum mismatch".into());
    }
    Ok(payload)
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn log_with(payloads: &[&[u8]]) -> Vec<u8> {
        let mut file = encode_file_header(FileHeader {
            kind: FileKind::Log,
            generation: 7,
        })
        .to_vec();
        for payload in payloads {
            append_frame(&mut file, payload);
        }
        file
    }

    #[test]
    fn header_round_trips_and_rejects_the_other_kind() {
        let header = FileHeader {
            kind: FileKind::Snapshot,
            generation: u64::MAX - 1,
        };
        let bytes = encode_file_header(header);
        assert_eq!(decode_file_header(&bytes, FileKind::Snapshot), Ok(header));
        assert!(matches!(
            decode_file_header(&bytes, FileKind::Log),
            Err(HeaderError::Invalid(reason)) if reason.contains("kind 1")
        ));
    }

    #[test]
    fn header_damage_and_foreign_versions_are_told_apart() {
        let good = encode_file_header(FileHeader {
            kind: FileKind::Log,
            generation: 3,
        });
        let mut flipped = good;
        flipped[17] ^= 1;
        assert!(matches!(
            decode_file_header(&flipped, FileKind::Log),
            Err(HeaderError::Invalid(reason)) if reason.contains("checksum")
        ));
        let mut newer = good;
        newer[8..12].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(
            decode_file_header(&newer, FileKind::Log),
            Err(HeaderError::UnsupportedVersion(2))
        );
        let mut foreign = good;
        foreign[0] = b'X';
        assert!(matches!(
            decode_file_header(&foreign, FileKind::Log),
            Err(HeaderError::Invalid(reason)) if reason.contains("magic")
        ));
        assert!(matches!(
            decode_file_header(&good[..10], FileKind::Log),
            Err(HeaderError::Invalid(reason)) if reason.contains("too short")
        ));
    }

    #[test]
    fn intact_frames_fill_the_file() {
        let file = log_with(&[b"one", b"two two"]);
        let scan = scan_frames(&file, FILE_HEADER_LEN);
        assert_eq!(scan.damage, None);
        let payloads: Vec<&[u8]> = scan.frames.iter().map(|f| f.payload).collect();
        assert_eq!(payloads, [&b"one"[..], &b"two two"[..]]);
        assert_eq!(
            scan.frames[1].offset,
            FILE_HEADER_LEN + FRAME_HEADER_LEN + 3
        );
    }

    #[test]
    fn a_bad_payload_followed_by_an_intact_frame_is_not_a_torn_tail() {
        let mut file = log_with(&[b"first", b"second"]);
        file[FILE_HEADER_LEN + FRAME_HEADER_LEN] ^= 0x20;
        let scan = scan_frames(&file, FILE_HEADER_LEN);
        assert!(scan.frames.is_empty());
        let damage = scan.damage.expect("damage");
        assert_eq!(damage.offset, FILE_HEADER_LEN);
        assert_eq!(damage.reason, "payload checksum mismatch");
        assert_eq!(
            damage.intact_frame_after,
            Some(FILE_HEADER_LEN + FRAME_HEADER_LEN + 5)
        );
    }

    #[test]
    fn a_damaged_length_is_caught_by_the_header_checksum() {
        let mut file = log_with(&[b"first", b"second"]);
        // A length pointing past the end would otherwise pass for an interrupted append.
        file[FILE_HEADER_LEN + 1] = 0x7f;
        let damage = scan_frames(&file, FILE_HEADER_LEN).damage.expect("damage");
        assert_eq!(damage.reason, "frame header checksum mismatch");
        assert!(damage.intact_frame_after.is_some());
    }

    #[test]
    fn zeros_after_the_last_frame_are_damage_with_nothing_intact_after() {
        let mut file = log_with(&[b"first"]);
        let end = file.len();
        file.resize(end + 4096, 0);
        let scan = scan_frames(&file, FILE_HEADER_LEN);
        assert_eq!(scan.frames.len(), 1);
        let damage = scan.damage.expect("damage");
        assert_eq!(damage.offset, end);
        assert_eq!(damage.intact_frame_after, None);
    }

    proptest! {
        /// Cutting a file anywhere keeps exactly the frames that end before the cut, and
        /// reports the rest as damage with nothing intact after it: the torn-tail shape.
        #[test]
        fn any_cut_keeps_the_whole_frames_before_it(
            payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..40), 1..6),
            cut_fraction in 0.0f64..1.0,
        ) {
            let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
            let file = log_with(&refs);
            let cut = FILE_HEADER_LEN
                + ((file.len() - FILE_HEADER_LEN) as f64 * cut_fraction) as usize;
            let scan = scan_frames(&file[..cut], FILE_HEADER_LEN);
            let mut end = FILE_HEADER_LEN;
            let mut whole = 0;
            for payload in &payloads {
                if end + FRAME_HEADER_LEN + payload.len() > cut {
                    break;
                }
                end += FRAME_HEADER_LEN + payload.len();
                whole += 1;
            }
            prop_assert_eq!(scan.frames.len(), whole);
            match scan.damage {
                None => prop_assert_eq!(end, cut),
                Some(damage) => {
                    prop_assert_eq!(damage.offset, end);
                    prop_assert_eq!(damage.intact_frame_after, None);
                }
            }
        }

        /// Scanning arbitrary bytes never panics.
        #[test]
        fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = scan_frames(&bytes, 0);
            let _ = decode_file_header(&bytes, FileKind::Log);
        }
    }
}
