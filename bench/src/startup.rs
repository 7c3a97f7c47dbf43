//! Start-up mode: spawns the iotemu binary (free ports, a `--ready-file`) and measures the time
//! from spawn until the ready file appears — every listener bound and the fixtures loaded, what
//! `/health` reports as healthy — then stops it. Repeated `count` times.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::report::Figures;

/// A start that takes longer than this is reported as an error.
const GIVE_UP: Duration = Duration::from_secs(60);

/// Starts `binary` with `fixtures` (none: the built-in quickstart fixture) `count` times.
pub fn run(binary: &Path, fixtures: Option<&Path>, count: u32, scratch: &Path) -> Figures {
    let mut figures = Figures::default();
    let started = Instant::now();
    for n in 0..count {
        let ready = scratch.join(format!(
            "iotemu-loadgen-ready-{}-{n}.json",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&ready);
        let mut command = Command::new(binary);
        for port in [
            "--mqtt-port",
            "--amqp-port",
            "--https-port",
            "--control-port",
        ] {
            command.args([port, "0"]);
        }
        command.arg("--ready-file").arg(&ready);
        if let Some(fixtures) = fixtures {
            command.arg("--fixtures").arg(fixtures);
        }
        command.stdout(Stdio::null()).stderr(Stdio::null());
        let spawned = Instant::now();
        let Ok(mut child) = command.spawn() else {
            eprintln!("startup: cannot run {}", binary.display());
            figures.errors += 1;
            continue;
        };
        loop {
            // iotemu writes the ready file under a temporary name and renames it: once it
            // exists it is complete.
            if ready.exists() {
                figures.latencies.push(spawned.elapsed());
                break;
            }
            if spawned.elapsed() > GIVE_UP || matches!(child.try_wait(), Ok(Some(_))) {
                eprintln!("startup: no ready file from {}", binary.display());
                figures.errors += 1;
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_file(&ready);
    }
    figures.ops = figures.latencies.len() as u64;
    figures.secs = started.elapsed().as_secs_f64();
    figures
}
