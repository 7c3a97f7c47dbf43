//! Everything the emulator logs in a test process, kept in memory so that a test can assert
//! that nothing panicked (issue #12 item 7): a global `tracing` subscriber writing each event
//! as one line, and a panic hook that records `panicked at …` lines too (a panic inside a
//! spawned connection task never reaches a test's own `Result`).
//!
//! Call [`install`] at the start of each test; it is idempotent and covers the whole test
//! binary (tests run in parallel threads of one process, so a panic of the emulator under any
//! test fails them all alike — which is what "nothing panicked" means). Panics raised by the
//! tests' own assertions (files under `tests/`) are not recorded.

use std::io::Write;
use std::sync::{Mutex, Once};

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn record(line: String) {
    if let Ok(mut lines) = LINES.lock() {
        lines.push(line);
    }
}

/// One formatted event, handed over when the formatter drops its writer.
struct EventWriter(Vec<u8>);

impl Write for EventWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        for line in text.lines().filter(|l| !l.is_empty()) {
            record(line.to_owned());
        }
    }
}

/// Installs the capturing subscriber (INFO and above, or `RUST_LOG`) and the panic hook.
/// If another subscriber is already global, panics are still recorded.
pub fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(|| EventWriter(Vec::new()))
            .try_init();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // A failed assertion of a test itself is that test's failure, not a panic of the
            // emulator; recording it would fail every other test of the binary too.
            if info
                .location()
                .is_some_and(|l| l.file().starts_with("tests/"))
            {
                previous(info);
                return;
            }
            let thread = std::thread::current();
            record(format!(
                "thread '{}' panicked: {info}",
                thread.name().unwrap_or("<unnamed>")
            ));
            previous(info);
        }));
    });
}

/// Every line captured so far.
pub fn lines() -> Vec<String> {
    LINES.lock().map(|l| l.clone()).unwrap_or_default()
}

/// Captured lines containing `needle`.
pub fn lines_containing(needle: &str) -> Vec<String> {
    lines().into_iter().filter(|l| l.contains(needle)).collect()
}

/// Fails the test if any captured line says `panicked`.
pub fn assert_no_panic() {
    let panics = lines_containing("panicked");
    assert!(panics.is_empty(), "log lines say panicked: {panics:#?}");
}
