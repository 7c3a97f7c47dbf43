//! What the binary's integration tests share: the flags that put every listener on a free
//! port, and a scratch directory under Cargo's temporary space.
// Each test binary compiles this module and uses a part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Every listener on a port the system picks (the banner and `--ready-file` say which).
pub const FREE_PORTS: [&str; 8] = [
    "--mqtt-port",
    "0",
    "--amqp-port",
    "0",
    "--https-port",
    "0",
    "--control-port",
    "0",
];

/// A directory under Cargo's scratch space for integration tests, removed on drop.
pub struct Scratch(PathBuf);

impl Scratch {
    /// A fresh directory named after the test binary and `name`.
    pub fn new(name: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "{}-{name}-{}-{}",
            env!("CARGO_CRATE_NAME"),
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        Scratch(dir)
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.0
    }

    /// `name` inside the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
