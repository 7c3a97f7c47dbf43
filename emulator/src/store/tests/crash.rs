//! `kill -9` of a process in the middle of writing. The test re-runs its own test binary as
//! a child that applies in a loop from several threads and prints each apply after it was
//! acknowledged; the parent kills it at a random moment, reopens the directory and checks
//! that every acknowledged apply is there and that no apply is there in part. Several rounds
//! on one directory, with compaction kicking in every few dozen applies, so kills also land
//! in compactions and in recoveries of earlier kills.
//!
//! A killed process leaves its written-but-unsynced data in the page cache, so this proves
//! atomicity and the acknowledgement order, not fsync placement; the torn-tail tests in
//! `damage` and `model` cover what a power cut leaves behind.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use serde_json::json;

use super::*;

/// Tells the re-run test binary that it is the child, and where the data directory is.
const CHILD_DIR_ENV: &str = "IOTEMU_STORE_CRASH_CHILD_DIR";
const CHILD_TEST: &str = "store::tests::crash::child_applies_until_killed";
const WRITERS: u64 = 3;
const ROUNDS: usize = 6;

/// Apply `n` of a writer puts its item `n`, sets its counter to `n`, and every fifth apply
/// deletes the item from three applies earlier, so that recovery must get deletes right too.
fn apply_ops(writer: u64, n: u64) -> Vec<Op> {
    let mut ops = vec![
        Op::put(
            "items",
            item_key(writer, n),
            json!({"n": n, "pad": "x".repeat((n % 64) as usize)}),
        ),
        Op::put("counters", format!("w{writer}"), json!(n)),
    ];
    if n.is_multiple_of(5) && n > 3 {
        ops.push(Op::delete("items", item_key(writer, n - 3)));
    }
    ops
}

fn item_key(writer: u64, n: u64) -> String {
    format!("w{writer}-{n:08}")
}

fn counter(state: &Model, writer: u64) -> u64 {
    state
        .get("counters")
        .and_then(|counters| counters.get(&format!("w{writer}")))
        .and_then(|n| n.as_u64())
        .unwrap_or(0)
}

#[test]
#[ignore = "the child process of acknowledged_applies_survive_kill_9"]
fn child_applies_until_killed() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return;
    };
    let store = Arc::new(open_compacting_after(dir.as_ref(), 8 << 10));
    let state = contents(&*store);
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let store = store.clone();
            let first = counter(&state, writer) + 1;
            std::thread::spawn(move || {
                for n in first.. {
                    store.apply(&apply_ops(writer, n)).expect("apply");
                    let mut stdout = std::io::stdout().lock();
                    writeln!(stdout, "acked {writer} {n}").expect("stdout");
                    stdout.flush().expect("stdout");
                }
            })
        })
        .collect();
    for writer in writers {
        // Only returns if a writer panicked; the parent sees the output stop.
        let _ = writer.join();
    }
}

#[test]
fn acknowledged_applies_survive_kill_9() {
    let dir = temp_dir();
    let random = RandomState::new();
    let mut acknowledged: BTreeMap<u64, u64> = BTreeMap::new();
    for round in 0..ROUNDS {
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args([CHILD_TEST, "--exact", "--ignored", "--nocapture"])
            .env(CHILD_DIR_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the child");
        let stdout = child.stdout.take().expect("child stdout");
        let (lines, received) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut stdout = BufReader::new(stdout);
            let mut line = String::new();
            // A line cut off by the kill has no newline and is not an acknowledgement.
            while stdout.read_line(&mut line).is_ok_and(|read| read > 0) && line.ends_with('\n') {
                if lines.send(std::mem::take(&mut line)).is_err() {
                    break;
                }
            }
        });

        // Kill only once applies are being acknowledged (libtest prints a header first).
        let mut lines = Vec::new();
        while !lines
            .last()
            .is_some_and(|line: &String| line.starts_with("acked "))
        {
            let line = received
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("round {round}: no acknowledgement; got {lines:?}"));
            lines.push(line);
        }
        let delay = 5 + random.hash_one(round) % 250;
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().expect("kill -9");
        child.wait().expect("reap the child");
        reader.join().expect("reader");
        lines.extend(received.try_iter());

        let mut acked_this_round = 0;
        for line in &lines {
            let mut words = line.split_whitespace();
            if let (Some("acked"), Some(writer), Some(n)) =
                (words.next(), words.next(), words.next())
            {
                let (writer, n) = (writer.parse().expect("writer"), n.parse().expect("n"));
                let max = acknowledged.entry(writer).or_default();
                *max = (*max).max(n);
                acked_this_round += 1;
            }
        }
        assert!(acked_this_round > 0, "round {round}: {lines:?}");

        let store = open(dir.path());
        let state = contents(&store);
        println!(
            "round {round}: killed after {delay} ms with {acked_this_round} applies acknowledged; \
             reopened at generation {}",
            store.stats().generation
        );
        for writer in 0..WRITERS {
            let applied = counter(&state, writer);
            let acked = acknowledged.get(&writer).copied().unwrap_or(0);
            assert!(
                applied >= acked,
                "round {round}: writer {writer} acknowledged apply {acked} but only {applied} survived"
            );
            check_items_match_counter(&state, writer, applied);
            // The next round continues from what survived, including unacknowledged applies.
            acknowledged.insert(writer, applied);
        }
    }
}

/// Atomicity: the items are exactly those the applies up to the counter leave behind.
fn check_items_match_counter(state: &Model, writer: u64, applied: u64) {
    let empty = BTreeMap::new();
    let items = state.get("items").unwrap_or(&empty);
    let prefix = format!("w{writer}-");
    let present: Vec<u64> = items
        .keys()
        .filter_map(|key| key.strip_prefix(&prefix))
        .map(|n| n.parse().expect("item number"))
        .collect();
    let expected: Vec<u64> = (1..=applied)
        .filter(|&m| {
            let deleter = m + 3;
            !(deleter <= applied && deleter.is_multiple_of(5))
        })
        .collect();
    assert_eq!(present, expected, "writer {writer} at counter {applied}");
    for m in &present {
        assert_eq!(items[&item_key(writer, *m)]["n"], json!(m));
    }
}
