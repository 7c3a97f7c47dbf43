//! The data directory lock against other processes, and against the children this process
//! starts: a child must never hold the lock of the process that started it, not even in the
//! moment between `fork` and `exec` (the cause of the old 1-in-15 `Locked { holder: "pid <self>" }`
//! failures while the crash test was starting its children).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::*;
use crate::store::StoreError;

/// Tells the re-run test binary that it is the child, and which directory to try.
const CHILD_DIR_ENV: &str = "IOTEMU_STORE_LOCK_CHILD_DIR";
const CHILD_TEST: &str = "store::tests::lock::child_tries_to_open";

#[test]
#[ignore = "the child process of another_process_is_refused_with_the_holders_pid"]
fn child_tries_to_open() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return;
    };
    let outcome = match FileStore::open(&dir) {
        Ok(_) => "opened".to_owned(),
        Err(StoreError::Locked { holder, .. }) => format!("locked by {holder}"),
        Err(other) => format!("failed: {other}"),
    };
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "outcome: {outcome}").expect("stdout");
}

fn child_outcome(dir: &std::path::Path) -> String {
    let output = Command::new(std::env::current_exe().expect("test binary"))
        .args([CHILD_TEST, "--exact", "--ignored", "--nocapture"])
        .env(CHILD_DIR_ENV, dir)
        .stderr(Stdio::inherit())
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("outcome: "))
        .unwrap_or_else(|| panic!("no outcome from the child: {stdout}"))
        .to_owned()
}

#[test]
fn another_process_is_refused_with_the_holders_pid() {
    let dir = temp_dir();
    let store = open(dir.path());
    assert_eq!(
        child_outcome(dir.path()),
        format!("locked by pid {}", std::process::id())
    );
    drop(store);
    assert_eq!(child_outcome(dir.path()), "opened");
    // The child's store is gone with the child: this process can open again.
    open(dir.path());
}

#[test]
fn a_child_between_fork_and_exec_does_not_hold_the_lock() {
    let dir = temp_dir();
    let first = open(dir.path());
    // `spawn` returns only once the child has exec'd, so the child is started on another
    // thread, as the crash test and any SDK subprocess are, while this one closes and reopens.
    let (mut forked, in_child) = UnixStream::pair().expect("socket pair");
    let starter = std::thread::spawn(move || {
        let mut starting = Command::new("true");
        // SAFETY: runs in the forked child before exec and only writes one byte to a socket
        // and sleeps (write and nanosleep are async-signal-safe; nothing allocates or locks).
        unsafe {
            starting.pre_exec(move || {
                (&in_child).write_all(b"f")?;
                std::thread::sleep(Duration::from_millis(1500));
                Ok(())
            });
        }
        starting.status().expect("run the child")
    });
    // The child now holds copies of every descriptor of this process, the lock file's
    // included, until its exec.
    let mut byte = [0u8; 1];
    forked.read_exact(&mut byte).expect("the child forked");
    drop(first);
    let reopened = FileStore::open(dir.path());
    assert!(starter.join().expect("starter thread").success());
    reopened.expect("reopened while a child was between fork and exec");
}
