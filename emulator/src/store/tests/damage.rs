//! The recovery rules on damaged files: a torn tail of the log is cut off with a warning;
//! every other kind of damage fails the open, naming the file and the byte offset, and
//! leaves the files as they were.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::*;
use crate::store::StoreError;
use crate::store::frame::{self, FILE_HEADER_LEN, FRAME_HEADER_LEN};

fn wal(dir: &Path) -> PathBuf {
    dir.join("wal")
}

fn snapshot(dir: &Path) -> PathBuf {
    dir.join("snapshot")
}

/// A directory whose log holds three applies; returns the log length after each (the first
/// entry is the bare header) and the model after each.
fn three_applies(dir: &Path) -> (Vec<u64>, Vec<Model>) {
    let store = open(dir);
    let mut ends = vec![store.stats().log_bytes];
    let mut models = vec![Model::new()];
    let mut model = Model::new();
    for n in 0..3 {
        let ops: Vec<Op> = (0..4)
            .map(|i| Op::put("c", format!("{n}-{i}"), json!({"n": n, "i": i})))
            .collect();
        store.apply(&ops).expect("apply");
        apply_to_model(&mut model, &ops);
        ends.push(store.stats().log_bytes);
        models.push(model.clone());
    }
    (ends, models)
}

fn expect_corrupt(dir: &Path, file: &Path, offset: u64) -> String {
    let before = fs::read(file).expect("damaged file");
    let error = FileStore::open(dir).expect_err("damage must fail the open");
    match &error {
        StoreError::Corrupt {
            path, offset: at, ..
        } => {
            assert_eq!(path, file, "{error}");
            assert_eq!(*at, offset, "{error}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(
        fs::read(file).expect("file"),
        before,
        "a failed open changes nothing"
    );
    let message = error.to_string();
    assert!(message.contains(&file.display().to_string()), "{message}");
    assert!(
        message.contains(&format!("byte offset {offset}")),
        "{message}"
    );
    message
}

#[test]
fn a_torn_tail_is_cut_off_with_a_warning_and_writing_continues() {
    let probe = temp_dir();
    let (ends, models) = three_applies(probe.path());
    let log = fs::read(wal(probe.path())).expect("wal");
    let last_frame = ends[2]..ends[3];
    // Inside the frame header, inside the payload, one byte short.
    for cut in [
        last_frame.start + 5,
        last_frame.start + 20,
        last_frame.end - 1,
    ] {
        let dir = temp_dir();
        fs::write(wal(dir.path()), &log[..cut as usize]).expect("write");

        let (store, logs) = capture_logs(|| open(dir.path()));
        assert_eq!(contents(&store), models[2], "cut at {cut}");
        assert!(logs.contains("WARN"), "{logs}");
        assert!(logs.contains("dropping a torn record"), "{logs}");
        assert!(logs.contains(&format!("offset={}", ends[2])), "{logs}");
        assert!(
            logs.contains(&format!("dropped_bytes={}", cut - ends[2])),
            "{logs}"
        );
        assert_eq!(fs::metadata(wal(dir.path())).expect("wal").len(), ends[2]);

        store
            .apply(&[Op::put("after", "k", json!(1))])
            .expect("apply");
        drop(store);
        let mut expected = models[2].clone();
        apply_to_model(&mut expected, &[Op::put("after", "k", json!(1))]);
        assert_eq!(contents(&open(dir.path())), expected);
    }
}

#[test]
fn an_apply_cut_anywhere_is_dropped_whole() {
    let probe = temp_dir();
    let (ends, models) = three_applies(probe.path());
    let log = fs::read(wal(probe.path())).expect("wal");
    for cut in ends[1] + 1..ends[2] {
        let dir = temp_dir();
        fs::write(wal(dir.path()), &log[..cut as usize]).expect("write");
        assert_eq!(contents(&open(dir.path())), models[1], "cut at {cut}");
    }
}

#[test]
fn zeros_after_the_last_record_are_cut_off() {
    let dir = temp_dir();
    let (ends, models) = three_applies(dir.path());
    let mut bytes = fs::read(wal(dir.path())).expect("wal");
    bytes.resize(bytes.len() + 8192, 0);
    fs::write(wal(dir.path()), bytes).expect("rewrite");
    let (store, logs) = capture_logs(|| open(dir.path()));
    assert_eq!(contents(&store), models[3]);
    assert!(logs.contains("dropped_bytes=8192"), "{logs}");
    assert_eq!(store.stats().log_bytes, ends[3]);
}

#[test]
fn damage_before_intact_records_fails_the_open() {
    let dir = temp_dir();
    let (ends, _) = three_applies(dir.path());
    let mut bytes = fs::read(wal(dir.path())).expect("wal");
    bytes[ends[1] as usize + FRAME_HEADER_LEN + 10] ^= 0x01;
    fs::write(wal(dir.path()), bytes).expect("rewrite");
    let message = expect_corrupt(dir.path(), &wal(dir.path()), ends[1]);
    assert!(message.contains("payload checksum mismatch"), "{message}");
    assert!(
        message.contains(&format!("intact record follows at offset {}", ends[2])),
        "{message}"
    );
}

#[test]
fn a_damaged_length_before_intact_records_fails_the_open() {
    let dir = temp_dir();
    let (ends, _) = three_applies(dir.path());
    let mut bytes = fs::read(wal(dir.path())).expect("wal");
    bytes[ends[0] as usize + 2] = 0x10;
    fs::write(wal(dir.path()), bytes).expect("rewrite");
    let message = expect_corrupt(dir.path(), &wal(dir.path()), ends[0]);
    assert!(
        message.contains("frame header checksum mismatch"),
        "{message}"
    );
}

#[test]
fn a_checksummed_record_that_does_not_decode_fails_the_open_even_at_the_end() {
    let dir = temp_dir();
    let (ends, _) = three_applies(dir.path());
    let mut bytes = fs::read(wal(dir.path())).expect("wal");
    frame::append_frame(
        &mut bytes,
        br#"{"batch":[[{"put":{"c":"a","k":"no value"}}]]}"#,
    );
    fs::write(wal(dir.path()), bytes).expect("rewrite");
    let message = expect_corrupt(dir.path(), &wal(dir.path()), ends[3]);
    assert!(message.contains("undecodable log record"), "{message}");
}

fn compacted(dir: &Path) -> Model {
    let store = open(dir);
    let ops: Vec<Op> = (0..5)
        .map(|n| Op::put("c", n.to_string(), json!(n)))
        .collect();
    store.apply(&ops).expect("apply");
    store.compact().expect("compact");
    let mut model = Model::new();
    apply_to_model(&mut model, &ops);
    model
}

#[test]
fn a_damaged_snapshot_fails_the_open() {
    let dir = temp_dir();
    compacted(dir.path());
    let mut bytes = fs::read(snapshot(dir.path())).expect("snapshot");
    bytes[FILE_HEADER_LEN + FRAME_HEADER_LEN + 3] ^= 0x40;
    fs::write(snapshot(dir.path()), bytes).expect("rewrite");
    // Unlike the log, even damage at the end of a snapshot is never an interrupted write.
    let message = expect_corrupt(dir.path(), &snapshot(dir.path()), FILE_HEADER_LEN as u64);
    assert!(message.contains("payload checksum mismatch"), "{message}");
}

#[test]
fn a_snapshot_cut_short_fails_the_open() {
    let dir = temp_dir();
    compacted(dir.path());
    let bytes = fs::read(snapshot(dir.path())).expect("snapshot");
    let scan = frame::scan_frames(&bytes, FILE_HEADER_LEN);
    let end_frame = scan.frames.last().expect("end frame").offset;

    fs::write(snapshot(dir.path()), &bytes[..bytes.len() - 3]).expect("rewrite");
    let message = expect_corrupt(dir.path(), &snapshot(dir.path()), end_frame as u64);
    assert!(message.contains("runs past the end"), "{message}");

    // Cut exactly between frames: only the missing end record gives it away.
    fs::write(snapshot(dir.path()), &bytes[..end_frame]).expect("rewrite");
    let message = expect_corrupt(dir.path(), &snapshot(dir.path()), end_frame as u64);
    assert!(message.contains("stops before its end record"), "{message}");
}

#[test]
fn files_of_another_format_version_are_refused() {
    let dir = temp_dir();
    three_applies(dir.path());
    let mut bytes = fs::read(wal(dir.path())).expect("wal");
    bytes[8..12].copy_from_slice(&9u32.to_le_bytes());
    fs::write(wal(dir.path()), bytes).expect("rewrite");
    let error = FileStore::open(dir.path()).expect_err("version");
    assert!(
        matches!(&error, StoreError::UnsupportedVersion { path, found: 9, supported: 1 } if *path == wal(dir.path())),
        "{error:?}"
    );
    assert!(error.to_string().contains("format version 9"), "{error}");
}

#[test]
fn a_file_that_is_not_ours_is_refused() {
    let dir = temp_dir();
    fs::write(wal(dir.path()), b"{\"some\": \"other program's file\"}").expect("write");
    let message = expect_corrupt(dir.path(), &wal(dir.path()), 0);
    assert!(message.contains("magic"), "{message}");
}

#[test]
fn a_log_older_than_the_snapshot_is_discarded_not_replayed() {
    let dir = temp_dir();
    let old_log = {
        let store = open(dir.path());
        store
            .apply(&[Op::put("c", "a", json!(1)), Op::put("c", "b", json!(1))])
            .expect("apply");
        let old_log = fs::read(wal(dir.path())).expect("wal");
        store.apply(&[Op::put("c", "a", json!(2))]).expect("apply");
        store.compact().expect("compact");
        old_log
    };
    // As if the compaction had stopped after renaming the snapshot into place.
    fs::write(wal(dir.path()), old_log).expect("rewrite");
    let (store, logs) = capture_logs(|| open(dir.path()));
    let expected: Model = [(
        "c".into(),
        [("a".into(), json!(2)), ("b".into(), json!(1))].into(),
    )]
    .into();
    assert_eq!(contents(&store), expected);
    assert!(
        logs.contains("replacing a log the snapshot already contains"),
        "{logs}"
    );
    assert_eq!(store.stats().generation, 1);
    assert_eq!(store.stats().log_bytes, FILE_HEADER_LEN as u64);
}

#[test]
fn a_log_newer_than_the_snapshot_fails_the_open() {
    let dir = temp_dir();
    compacted(dir.path());
    fs::remove_file(snapshot(dir.path())).expect("remove");
    let message = expect_corrupt(dir.path(), &wal(dir.path()), 16);
    assert!(message.contains("generation 1"), "{message}");
}

#[test]
fn a_missing_log_next_to_a_snapshot_fails_the_open() {
    let dir = temp_dir();
    compacted(dir.path());
    fs::remove_file(wal(dir.path())).expect("remove");
    let error = FileStore::open(dir.path()).expect_err("missing log");
    assert!(
        matches!(&error, StoreError::Corrupt { path, .. } if *path == wal(dir.path())),
        "{error:?}"
    );
    assert!(error.to_string().contains("log is missing"), "{error}");
}

#[test]
fn unfinished_temporary_files_are_removed() {
    let dir = temp_dir();
    let model = compacted(dir.path());
    fs::write(dir.path().join("snapshot.tmp"), b"half a snapshot").expect("write");
    fs::write(dir.path().join("wal.tmp"), b"half a log").expect("write");
    let store = open(dir.path());
    assert_eq!(contents(&store), model);
    assert!(!dir.path().join("snapshot.tmp").exists());
    assert!(!dir.path().join("wal.tmp").exists());
}
