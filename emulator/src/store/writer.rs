//! The file store's writer thread and the state it shares with callers.
//!
//! Callers only push encoded applies onto a queue (and update the in-memory copy) under a
//! mutex. The one writer thread takes everything queued, writes it as one log frame and
//! fdatasyncs once, then wakes the callers waiting for those applies: while it waits for the
//! disk, new applies pile up and share the next fsync (group commit). The writer also runs
//! compactions, so the log file has exactly one user and no lock of its own.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

use super::disk::{self, Paths};
use super::error::StoreError;
use super::file::FileStoreStats;
use super::frame::{self, FILE_HEADER_LEN, FRAME_HEADER_LEN, MAX_FRAME_PAYLOAD};
use super::mirror::Mirror;
use super::record::{self, EncodedTx};

/// The failure a closed store reports.
pub(super) const CLOSED: &str = "the store was closed";

/// Shared between the [`FileStore`](super::FileStore), its writer thread and every pending
/// [`Commit`](super::Commit).
pub(super) struct Shared {
    state: Mutex<State>,
    /// Wakes the writer: work was queued, or a compaction or shutdown was asked for.
    work: Condvar,
    /// Wakes blocking waiters when `progress` changes.
    progress_changed: Condvar,
    /// The same progress for async waiters.
    progress: watch::Sender<Progress>,
}

#[derive(Debug, Clone)]
struct Progress {
    durable: u64,
    failure: Option<Arc<str>>,
}

struct State {
    mirror: Mirror,
    /// Encoded applies submitted but not yet taken by the writer.
    queue: VecDeque<Vec<u8>>,
    /// Sequence number of the last submitted apply (the first is 1).
    submitted: u64,
    /// Last sequence number the writer has taken off the queue.
    taken: u64,
    /// Every apply up to this sequence number is on disk.
    durable: u64,
    /// Set once a write or fsync failed; nothing is accepted after that.
    failure: Option<Arc<str>>,
    shutting_down: bool,
    compaction_requested: bool,
    compacting: bool,
    stats: FileStoreStats,
}

impl Shared {
    pub(super) fn new(mirror: Mirror, stats: FileStoreStats) -> Arc<Shared> {
        let (progress, _) = watch::channel(Progress {
            durable: 0,
            failure: None,
        });
        Arc::new(Shared {
            state: Mutex::new(State {
                mirror,
                queue: VecDeque::new(),
                submitted: 0,
                taken: 0,
                durable: 0,
                failure: None,
                shutting_down: false,
                compaction_requested: false,
                compacting: false,
                stats,
            }),
            work: Condvar::new(),
            progress_changed: Condvar::new(),
            progress,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; if something did, the state is still the
        // best there is.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(&self, condvar: &Condvar, guard: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        condvar.wait(guard).unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues one apply and applies it to the in-memory copy; returns its sequence number.
    pub(super) fn submit(&self, tx: EncodedTx) -> Result<u64, StoreError> {
        let mut state = self.lock();
        if let Some(failure) = &state.failure {
            return Err(StoreError::Failed(failure.clone()));
        }
        for change in tx.changes {
            state.mirror.apply(change);
        }
        state.queue.push_back(tx.bytes);
        state.submitted += 1;
        let sequence = state.submitted;
        drop(state);
        self.work.notify_one();
        Ok(sequence)
    }

    pub(super) fn wait_durable(&self, sequence: u64) -> Result<(), StoreError> {
        let mut state = self.lock();
        loop {
            if state.durable >= sequence {
                return Ok(());
            }
            if let Some(failure) = &state.failure {
                return Err(StoreError::Failed(failure.clone()));
            }
            state = self.wait(&self.progress_changed, state);
        }
    }

    pub(super) async fn durable(&self, sequence: u64) -> Result<(), StoreError> {
        let mut progress = self.progress.subscribe();
        let reached = progress
            .wait_for(|p| p.durable >= sequence || p.failure.is_some())
            .await
            .map(|p| (p.durable >= sequence, p.failure.clone()));
        match reached {
            Ok((true, _)) => Ok(()),
            Ok((false, failure)) => Err(StoreError::Failed(
                failure.unwrap_or_else(|| "the store was closed".into()),
            )),
            // The sender lives in `self`, so it cannot be gone while we are borrowed.
            Err(_) => Err(StoreError::Failed("the store was closed".into())),
        }
    }

    /// Asks the writer for a compaction that starts after this call, and waits for it.
    pub(super) fn compact(&self) -> Result<(), StoreError> {
        let mut state = self.lock();
        // One already running may have started before our latest applies were queued.
        let target = state.stats.compactions + if state.compacting { 2 } else { 1 };
        state.compaction_requested = true;
        self.work.notify_one();
        loop {
            if state.stats.compactions >= target {
                return Ok(());
            }
            if let Some(failure) = &state.failure {
                return Err(StoreError::Failed(failure.clone()));
            }
            state = self.wait(&self.progress_changed, state);
        }
    }

    pub(super) fn shut_down(&self) {
        self.lock().shutting_down = true;
        self.work.notify_one();
    }

    /// After the writer has stopped: every later submit, and every wait for an apply the
    /// writer did not take, fails with [`CLOSED`] instead of waiting forever.
    pub(super) fn closed(&self) {
        let mut state = self.lock();
        if state.failure.is_none() {
            state.failure = Some(CLOSED.into());
        }
        self.publish(&state);
    }

    /// Why the store accepts no more writes, if it does not.
    pub(super) fn failure(&self) -> Option<Arc<str>> {
        self.lock().failure.clone()
    }

    pub(super) fn load(&self) -> Result<super::StoreSnapshot, StoreError> {
        let state = self.lock();
        if let Some(failure) = &state.failure {
            return Err(StoreError::Failed(failure.clone()));
        }
        state.mirror.to_snapshot()
    }

    pub(super) fn stats(&self) -> FileStoreStats {
        let state = self.lock();
        FileStoreStats {
            entries: state.mirror.len(),
            ..state.stats.clone()
        }
    }

    fn publish(&self, state: &State) {
        self.progress.send_replace(Progress {
            durable: state.durable,
            failure: state.failure.clone(),
        });
        self.progress_changed.notify_all();
    }
}

/// What the writer does with one turn of the lock.
enum Job {
    Append { txs: Vec<Vec<u8>>, through: u64 },
    Compact { snapshot: Vec<u8>, through: u64 },
}

/// The writer thread's own state: the open log and what compaction needs to know.
pub(super) struct Writer {
    pub shared: Arc<Shared>,
    pub paths: Paths,
    pub log: File,
    pub log_len: u64,
    pub generation: u64,
    pub snapshot_len: u64,
    pub compact_after_log_bytes: u64,
}

impl Writer {
    pub(super) fn run(mut self) {
        let _panic_guard = FailOnPanic(self.shared.clone());
        while let Some(job) = self.next_job() {
            let (outcome, through, appended) = match job {
                Job::Append { txs, through } => (self.append(&txs), through, txs.len() as u64),
                Job::Compact { snapshot, through } => (self.compact(&snapshot), through, 0),
            };
            let mut state = self.shared.lock();
            let was_compacting = std::mem::take(&mut state.compacting);
            match outcome {
                Ok(()) => {
                    state.durable = through;
                    if was_compacting {
                        state.stats.compactions += 1;
                    } else {
                        state.stats.applies += appended;
                        state.stats.log_syncs += 1;
                    }
                }
                Err(error) => {
                    tracing::error!(
                        dir = %self.paths.dir.display(),
                        %error,
                        "the data directory stopped accepting writes"
                    );
                    state.failure = Some(error.to_string().into());
                }
            }
            state.stats.generation = self.generation;
            state.stats.log_bytes = self.log_len;
            state.stats.snapshot_bytes = self.snapshot_len;
            self.shared.publish(&state);
        }
    }

    /// Waits for work; `None` once shut down with nothing left, or after a failure.
    fn next_job(&self) -> Option<Job> {
        let mut state = self.shared.lock();
        loop {
            if state.failure.is_some() {
                return None;
            }
            if state.compaction_requested || self.compaction_due() {
                state.compaction_requested = false;
                state.compacting = true;
                let snapshot = record::encode_snapshot(self.generation + 1, &state.mirror);
                // The snapshot includes everything queued: it becomes durable with it.
                state.queue.clear();
                state.taken = state.submitted;
                return Some(Job::Compact {
                    snapshot,
                    through: state.taken,
                });
            }
            if !state.queue.is_empty() {
                // As many as fit in one frame; the comma between two applies is the + 1.
                let mut txs = Vec::new();
                let mut payload_len = record::BATCH_WRAPPER_LEN;
                while let Some(next) = state.queue.front() {
                    if !txs.is_empty() && payload_len + next.len() + 1 > MAX_FRAME_PAYLOAD {
                        break;
                    }
                    payload_len += next.len() + 1;
                    txs.extend(state.queue.pop_front());
                }
                state.taken += txs.len() as u64;
                return Some(Job::Append {
                    txs,
                    through: state.taken,
                });
            }
            if state.shutting_down {
                return None;
            }
            state = self.shared.wait(&self.shared.work, state);
        }
    }

    /// Compacting once the log outgrows both the configured size and the last snapshot keeps
    /// the work per logged byte constant and a restart's replay shorter than twice the state.
    fn compaction_due(&self) -> bool {
        let logged = self.log_len - FILE_HEADER_LEN as u64;
        logged > self.compact_after_log_bytes.max(self.snapshot_len)
    }

    fn append(&mut self, txs: &[Vec<u8>]) -> Result<(), StoreError> {
        let payload = record::log_frame_payload(txs.iter().map(Vec::as_slice));
        let mut frame = Vec::with_capacity(FRAME_HEADER_LEN + payload.len());
        frame::append_frame(&mut frame, &payload);
        self.log
            .write_all(&frame)
            .and_then(|()| self.log.sync_data())
            .map_err(|e| StoreError::io("append to", &self.paths.log, e))?;
        self.log_len += frame.len() as u64;
        Ok(())
    }

    /// Snapshot first, then a fresh log one generation on: a crash between the two leaves a
    /// log older than the snapshot, which recovery recognises and discards.
    fn compact(&mut self, snapshot: &[u8]) -> Result<(), StoreError> {
        let generation = self.generation + 1;
        disk::replace_file(
            &self.paths.snapshot_tmp,
            &self.paths.snapshot,
            &self.paths.dir,
            snapshot,
        )?;
        let (log, log_len) = disk::create_log(&self.paths, generation)?;
        tracing::debug!(
            dir = %self.paths.dir.display(),
            generation,
            snapshot_bytes = snapshot.len(),
            replaced_log_bytes = self.log_len,
            "compacted the log into a snapshot"
        );
        self.log = log;
        self.log_len = log_len;
        self.generation = generation;
        self.snapshot_len = snapshot.len() as u64;
        Ok(())
    }
}

/// Turns a panic in the writer into a failure every waiter sees, instead of a hang.
struct FailOnPanic(Arc<Shared>);

impl Drop for FailOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut state = self.0.lock();
            state.failure = Some("the store's writer thread panicked".into());
            self.0.publish(&state);
        }
    }
}
