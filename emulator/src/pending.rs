//! [`Pending`]: the result of a domain write that is in memory and submitted to the store but
//! not yet known to be durable. Every write of the DPS and hub domains returns one, and the
//! value inside can only be had by waiting for the store: a transport that wants to say
//! "done" (PUBACK, an HTTP 2xx, DPS `assigned`, an AMQP disposition) must first
//! `pending.durable().await`, which does not block a tokio worker thread. Forgetting to wait
//! is a compiler warning (`#[must_use]`), and there is no other way to reach the value.
//!
//! A write publishes its change into the domain's maps only after the store accepted it
//! (`Store::submit` succeeded), so a refused write (too large, nested too deep, a store that
//! has failed) leaves memory as it was. If the store accepted the write but then failed to
//! make it durable (a failed fsync), the hooks registered with [`Pending::on_settled`] undo
//! the change in memory — unless the entity changed again since, see `persistence`.
//!
//! A `Pending` dropped without being awaited (a request cancelled because its client went
//! away) runs its hooks with [`Settled::Abandoned`]: memory keeps the change, which the store
//! will most likely make durable, but nothing was acknowledged, so state that only says
//! "acknowledged" (a DPS operation's final answer) goes back to undecided.

use std::fmt;

use crate::store::{Commit, StoreError};

/// How a pending write ended, as its hooks are told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settled {
    /// Durable: the change may be acknowledged and kept.
    Stored,
    /// Not durable: the change must not be acknowledged and is undone in memory.
    Failed,
    /// Dropped without waiting: nothing was acknowledged; the store may still keep it.
    Abandoned,
}

type Hook<'a> = Box<dyn FnOnce(Settled) + Send + 'a>;

/// A domain write's result (`T`) and the store commits it waits for; see the module docs.
#[must_use = "a write may be acknowledged only after `durable().await` says it is stored"]
pub struct Pending<'a, T> {
    value: Option<T>,
    commits: Vec<Commit>,
    /// Run once, in order on success and in reverse order otherwise.
    hooks: Vec<Hook<'a>>,
}

impl<'a, T> Pending<'a, T> {
    /// A result with nothing to wait for (nothing changed, or nothing is kept).
    pub fn ready(value: T) -> Pending<'a, T> {
        Pending {
            value: Some(value),
            commits: Vec::new(),
            hooks: Vec::new(),
        }
    }

    /// A result that is durable once `commit` is.
    pub(crate) fn new(value: T, commit: Commit) -> Pending<'a, T> {
        Pending {
            value: Some(value),
            commits: vec![commit],
            hooks: Vec::new(),
        }
    }

    /// Runs `hook` once the write is settled (stored, failed or abandoned).
    pub(crate) fn on_settled(mut self, hook: impl FnOnce(Settled) + Send + 'a) -> Pending<'a, T> {
        self.hooks.push(Box::new(hook));
        self
    }

    /// Runs `hook` once the write is durable (events that announce the change).
    pub(crate) fn on_stored(self, hook: impl FnOnce() + Send + 'a) -> Pending<'a, T> {
        self.on_settled(move |settled| {
            if settled == Settled::Stored {
                hook();
            }
        })
    }

    /// The same write with its value transformed.
    pub fn map<U>(mut self, change: impl FnOnce(T) -> U) -> Pending<'a, U> {
        Pending {
            value: self.value.take().map(change),
            commits: std::mem::take(&mut self.commits),
            hooks: std::mem::take(&mut self.hooks),
        }
    }

    /// Two writes acknowledged together: durable when both are; a failure of either undoes
    /// both (later one first).
    pub fn join<U>(mut self, mut other: Pending<'a, U>) -> Pending<'a, (T, U)> {
        let mut commits = std::mem::take(&mut self.commits);
        commits.append(&mut other.commits);
        let mut hooks = std::mem::take(&mut self.hooks);
        hooks.append(&mut other.hooks);
        Pending {
            value: self.value.take().zip(other.value.take()),
            commits,
            hooks,
        }
    }

    /// Waits, without blocking the thread, until the write is durable, and returns its value;
    /// an error means it is not, and its change was undone in memory.
    pub async fn durable(mut self) -> Result<T, StoreError> {
        let mut outcome = Ok(());
        for commit in std::mem::take(&mut self.commits) {
            if let Err(e) = commit.durable().await
                && outcome.is_ok()
            {
                outcome = Err(e);
            }
        }
        self.finish(outcome)
    }

    /// [`Pending::durable`] for threads that may block (startup, tests, the blocking library
    /// calls): blocks for about one fsync with `--data-dir`.
    pub fn wait(mut self) -> Result<T, StoreError> {
        let mut outcome = Ok(());
        for commit in std::mem::take(&mut self.commits) {
            if let Err(e) = commit.wait()
                && outcome.is_ok()
            {
                outcome = Err(e);
            }
        }
        self.finish(outcome)
    }

    /// The value without waiting, for a write that acknowledges nothing to anyone (C2D
    /// delivery bookkeeping): the store makes it durable with a later fsync. Its hooks see
    /// [`Settled::Abandoned`].
    pub(crate) fn into_value_unawaited(mut self) -> Option<T> {
        self.value.take()
    }

    fn finish(&mut self, outcome: Result<(), StoreError>) -> Result<T, StoreError> {
        match outcome {
            Ok(()) => {
                self.settle(Settled::Stored);
                self.value
                    .take()
                    .ok_or_else(|| StoreError::Rejected("a pending write was used twice".into()))
            }
            Err(e) => {
                tracing::error!(error = %e, "a change could not be made durable; it is not acknowledged and was undone in memory");
                self.settle(Settled::Failed);
                Err(e)
            }
        }
    }

    fn settle(&mut self, how: Settled) {
        let mut hooks = std::mem::take(&mut self.hooks);
        if how != Settled::Stored {
            hooks.reverse();
        }
        for hook in hooks {
            hook(how);
        }
    }
}

/// Blocking waits on a domain write's whole result (refused, or pending): for tests and
/// threads that may block. `write.wait_stored()` is `Ok(write?.wait()?)`.
pub trait WaitStored<T, E> {
    fn wait_stored(self) -> Result<T, E>;
}

impl<T, E: From<StoreError>> WaitStored<T, E> for Result<Pending<'_, T>, E> {
    fn wait_stored(self) -> Result<T, E> {
        Ok(self?.wait()?)
    }
}

impl<T> Drop for Pending<'_, T> {
    fn drop(&mut self) {
        if !self.hooks.is_empty() {
            self.settle(Settled::Abandoned);
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Pending<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pending")
            .field("value", &self.value)
            .field("commits", &self.commits)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    type Log = Arc<Mutex<Vec<(u8, Settled)>>>;

    fn recorder() -> (Log, impl Fn(u8) -> Hook<'static>) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let make = {
            let log = log.clone();
            move |n: u8| -> Hook<'static> {
                let log = log.clone();
                Box::new(move |s| log.lock().unwrap().push((n, s)))
            }
        };
        (log, make)
    }

    #[tokio::test]
    async fn stored_runs_hooks_in_order_and_gives_the_value() {
        let (log, hook) = recorder();
        let a = Pending::new(1, Commit::durable_now()).on_settled(hook(1));
        let b = Pending::ready("x").on_settled(hook(2));
        assert_eq!(a.join(b).durable().await.unwrap(), (1, "x"));
        assert_eq!(
            *log.lock().unwrap(),
            vec![(1, Settled::Stored), (2, Settled::Stored)]
        );
    }

    #[tokio::test]
    async fn a_failed_commit_undoes_in_reverse_order() {
        let (log, hook) = recorder();
        let a = Pending::new(1, Commit::durable_now()).on_settled(hook(1));
        let b = Pending::new(2, Commit::failed(StoreError::Rejected("disk".into())))
            .on_settled(hook(2));
        assert!(a.join(b).map(|(x, y)| x + y).durable().await.is_err());
        assert_eq!(
            *log.lock().unwrap(),
            vec![(2, Settled::Failed), (1, Settled::Failed)]
        );
    }

    #[test]
    fn dropping_abandons_and_waiting_blocks() {
        let (log, hook) = recorder();
        drop(Pending::ready(()).on_settled(hook(1)));
        assert_eq!(*log.lock().unwrap(), vec![(1, Settled::Abandoned)]);
        assert_eq!(Pending::ready(5).wait().unwrap(), 5);
    }
}
