//! Micro-benchmark of the durable store: apply throughput and latency (one writer, many
//! writers sharing fsyncs, async writers), compaction and recovery. Prints numbers, asserts
//! nothing. Run with `cargo bench -p iotemu --bench store`; set `IOTEMU_BENCH_DIR` to measure
//! a particular disk (default: the system temporary directory).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use iotemu::{FileStore, FileStoreOptions, MemoryStore, Op, Store};
use serde_json::{Value, json};

/// A value about the size of a hub device record.
fn device(n: usize) -> Value {
    json!({
        "deviceId": format!("device-{n:06}"),
        "generationId": "638412345678901234",
        "etag": "MTIzNDU2Nzg=",
        "status": "enabled",
        "connectionState": "Disconnected",
        "authentication": {
            "type": "sas",
            "symmetricKey": {
                "primaryKey": "sbDDeEzRuEuGKag+kQKV+T1QGakRtHpsERLP0yPjwR93TrpEgEh/Y07CXstfha6dhIPWvdD1nRxK5T0KGKA+nQ==",
                "secondaryKey": "Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFy"
            }
        },
        "capabilities": {"iotEdge": false},
        "lastActivityTime": "2024-01-01T00:00:00.0000000Z",
        "cloudToDeviceMessageCount": n
    })
}

fn put(n: usize) -> Vec<Op> {
    vec![Op::put(
        "devices",
        format!("device-{:06}", n % 10_000),
        device(n),
    )]
}

fn bench_root() -> PathBuf {
    std::env::var_os("IOTEMU_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from)
}

fn fresh_dir(root: &Path) -> tempfile::TempDir {
    tempfile::tempdir_in(root).expect("temporary directory")
}

struct Latencies(Vec<Duration>);

impl Latencies {
    fn summary(mut self) -> String {
        self.0.sort();
        let at = |q: f64| self.0[((self.0.len() - 1) as f64 * q) as usize];
        format!(
            "p50 {:>8.3} ms  p99 {:>8.3} ms  max {:>8.3} ms",
            at(0.50).as_secs_f64() * 1e3,
            at(0.99).as_secs_f64() * 1e3,
            at(1.0).as_secs_f64() * 1e3
        )
    }
}

fn report(name: &str, applies: usize, elapsed: Duration, extra: &str) {
    println!(
        "{name:<34} {applies:>7} applies in {:>7.3} s = {:>9.0} applies/s  {extra}",
        elapsed.as_secs_f64(),
        applies as f64 / elapsed.as_secs_f64()
    );
}

fn memory_store() {
    let store = MemoryStore;
    let ops = put(1);
    let applies = 1_000_000;
    let start = Instant::now();
    for _ in 0..applies {
        store.apply(&ops).expect("apply");
    }
    report("MemoryStore, 1 thread", applies, start.elapsed(), "");
}

fn one_writer(root: &Path) {
    let dir = fresh_dir(root);
    let store = FileStore::open(dir.path()).expect("open");
    let applies = 2_000;
    let mut latencies = Latencies(Vec::with_capacity(applies));
    let start = Instant::now();
    for n in 0..applies {
        let ops = put(n);
        let t = Instant::now();
        store.apply(&ops).expect("apply");
        latencies.0.push(t.elapsed());
    }
    report(
        "FileStore, 1 thread",
        applies,
        start.elapsed(),
        &latencies.summary(),
    );
}

fn many_writers(root: &Path, threads: usize) {
    let dir = fresh_dir(root);
    let store = Arc::new(FileStore::open(dir.path()).expect("open"));
    let per_thread = 8_000 / threads;
    let start = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|thread| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut latencies = Vec::with_capacity(per_thread);
                for n in 0..per_thread {
                    let ops = put(thread * per_thread + n);
                    let t = Instant::now();
                    store.apply(&ops).expect("apply");
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Latencies(Vec::new());
    for worker in workers {
        latencies.0.extend(worker.join().expect("writer"));
    }
    let elapsed = start.elapsed();
    let stats = store.stats();
    report(
        &format!("FileStore, {threads} threads"),
        threads * per_thread,
        elapsed,
        &format!(
            "{}  {:.1} applies/fsync",
            latencies.summary(),
            stats.applies as f64 / stats.log_syncs.max(1) as f64
        ),
    );
}

fn async_writers(root: &Path, tasks: usize) {
    let dir = fresh_dir(root);
    let file_store = Arc::new(FileStore::open(dir.path()).expect("open"));
    let store: Arc<dyn Store> = file_store.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let per_task = 20_000 / tasks;
    let start = Instant::now();
    runtime.block_on(async {
        let handles: Vec<_> = (0..tasks)
            .map(|task| {
                let store = store.clone();
                tokio::spawn(async move {
                    for n in 0..per_task {
                        let commit = store.submit(&put(task * per_task + n)).expect("submit");
                        commit.durable().await.expect("durable");
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.await.expect("task");
        }
    });
    let elapsed = start.elapsed();
    let stats = file_store.stats();
    report(
        &format!("FileStore, {tasks} tokio tasks"),
        tasks * per_task,
        elapsed,
        &format!(
            "{:.1} applies/fsync",
            stats.applies as f64 / stats.log_syncs.max(1) as f64
        ),
    );
}

fn compaction_and_recovery(root: &Path, entries: usize) {
    let dir = fresh_dir(root);
    let never = FileStoreOptions {
        compact_after_log_bytes: u64::MAX,
    };
    let store = Arc::new(FileStore::open_with(dir.path(), never.clone()).expect("open"));
    // Fill through concurrent threads so that filling itself is quick.
    let threads: Vec<_> = (0..32)
        .map(|thread| {
            let store = store.clone();
            std::thread::spawn(move || {
                for n in (thread..entries).step_by(32) {
                    let ops = [Op::put("devices", format!("device-{n:07}"), device(n))];
                    store.apply(&ops).expect("apply");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("filler");
    }
    let log_bytes = store.stats().log_bytes;
    drop(store);

    let start = Instant::now();
    let store = FileStore::open_with(dir.path(), never.clone()).expect("open");
    println!(
        "open, replaying a {:>6.1} MB log of {entries} applies: {:>8.1} ms",
        log_bytes as f64 / 1e6,
        start.elapsed().as_secs_f64() * 1e3
    );
    let start = Instant::now();
    store.compact().expect("compact");
    let snapshot_bytes = store.stats().snapshot_bytes;
    println!(
        "compaction of {entries} entries into {:>6.1} MB:          {:>8.1} ms",
        snapshot_bytes as f64 / 1e6,
        start.elapsed().as_secs_f64() * 1e3
    );
    drop(store);
    let start = Instant::now();
    let store = FileStore::open_with(dir.path(), never).expect("open");
    let open_elapsed = start.elapsed();
    let start = Instant::now();
    let loaded = store.load().expect("load");
    println!(
        "open from that snapshot:                         {:>8.1} ms, load() {:>8.1} ms ({} entries)",
        open_elapsed.as_secs_f64() * 1e3,
        start.elapsed().as_secs_f64() * 1e3,
        loaded.collection("devices").map_or(0, |c| c.len())
    );
}

fn main() {
    let root = bench_root();
    println!("durable store benchmark in {}", root.display());
    memory_store();
    one_writer(&root);
    for threads in [4, 16, 64] {
        many_writers(&root, threads);
    }
    async_writers(&root, 200);
    compaction_and_recovery(&root, 50_000);
}
