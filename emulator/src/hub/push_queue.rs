//! The queue of what the hub pushes to one connection (desired patches, method calls, C2D
//! notices, module inputs): many senders (the hub's entry and its short-lived clones), one
//! receiver (the session), bounded, first in first out.
//!
//! Why not `tokio::sync::mpsc`: it allocates its first block of 32 slots (≈ 2 KiB of 64-byte
//! [`Outbound`](super::connections::Outbound)s) when the channel is made, so every held
//! connection paid for it although most never receive a push (docs/benchmarks.md, issue #18:
//! memory per held session). Here a channel is one small shared state, and its buffer is
//! allocated only when something is queued.
//!
//! The semantics are tokio's where the hub relies on them: `try_send` fails when the queue
//! is full or the receiver is gone; `recv` yields what is queued, then `None` once every
//! sender is dropped; dropping the receiver drops what is still queued (a queued method
//! call's caller then learns it was not delivered).

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// A queue of at most `bound` items.
pub(crate) fn channel<T>(bound: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        bound,
        state: Mutex::new(State {
            queue: VecDeque::new(),
            waker: None,
            senders: 1,
            receiver_alive: true,
        }),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

struct Shared<T> {
    bound: usize,
    state: Mutex<State<T>>,
}

struct State<T> {
    /// Empty (and unallocated) until something is pushed.
    queue: VecDeque<T>,
    /// The receiver waiting for an item or for the last sender to go.
    waker: Option<Waker>,
    senders: usize,
    receiver_alive: bool,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Nothing panics while the lock is held; a poisoned lock still has a sound queue.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Queues items for the receiver; cloned freely.
pub(crate) struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Sender<T> {
    /// Queues `item`, or gives it back when the queue is full or the receiver is gone.
    pub(crate) fn try_send(&self, item: T) -> Result<(), T> {
        let waker = {
            let mut state = self.shared.lock();
            if !state.receiver_alive || state.queue.len() >= self.shared.bound {
                return Err(item);
            }
            state.queue.push_back(item);
            state.waker.take()
        };
        // Woken outside the lock: the receiver's task may run at once on another thread.
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        let mut state = self.shared.lock();
        state.senders = state.senders.saturating_add(1);
        drop(state);
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut state = self.shared.lock();
            state.senders = state.senders.saturating_sub(1);
            if state.senders == 0 {
                // The receiver learns that nothing more will come.
                state.waker.take()
            } else {
                None
            }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// Takes the queued items in order.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Receiver<T> {
    /// The next item; `Ready(None)` once the queue is empty and every sender is gone.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut state = self.shared.lock();
        if let Some(item) = state.queue.pop_front() {
            if state.queue.is_empty() && state.queue.capacity() > RETAINED_CAPACITY {
                // A burst is over: an idle connection keeps no large buffer.
                state.queue = VecDeque::new();
            }
            return Poll::Ready(Some(item));
        }
        if state.senders == 0 {
            return Poll::Ready(None);
        }
        match &mut state.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            waker => *waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// [`Receiver::poll_recv`] as a future; cancel-safe (an item is taken only when returned).
    pub(crate) async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The next item if one is queued now.
    pub(crate) fn try_recv(&mut self) -> Option<T> {
        self.shared.lock().queue.pop_front()
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let queued = {
            let mut state = self.shared.lock();
            state.receiver_alive = false;
            state.waker = None;
            std::mem::take(&mut state.queue)
        };
        // Dropped outside the lock: an item's drop may notify someone (a method call's
        // caller) who then sends again.
        drop(queued);
    }
}

/// Slots a drained queue may keep: a device receiving one push at a time reuses them.
const RETAINED_CAPACITY: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn items_arrive_in_order_then_none_after_the_last_sender() {
        let (tx, mut rx) = channel(8);
        let tx2 = tx.clone();
        tx.try_send(1).unwrap();
        tx2.try_send(2).unwrap();
        drop(tx);
        assert_eq!(rx.recv().await, Some(1));
        tx2.try_send(3).unwrap();
        drop(tx2);
        assert_eq!(rx.recv().await, Some(2));
        assert_eq!(rx.recv().await, Some(3));
        assert_eq!(rx.recv().await, None);
    }

    #[test]
    fn a_full_queue_or_a_dropped_receiver_refuses() {
        let (tx, mut rx) = channel(2);
        tx.try_send(1).unwrap();
        tx.try_send(2).unwrap();
        assert_eq!(tx.try_send(3), Err(3), "full");
        assert_eq!(rx.try_recv(), Some(1));
        tx.try_send(3).unwrap();
        drop(rx);
        assert_eq!(tx.try_send(4), Err(4), "receiver gone");
    }

    #[tokio::test]
    async fn a_waiting_receiver_is_woken_by_a_send_and_by_the_last_drop() {
        let (tx, mut rx) = channel::<u32>(4);
        let waiting = tokio::spawn(async move {
            let first = rx.recv().await;
            let end = rx.recv().await;
            (first, end)
        });
        tokio::task::yield_now().await;
        tx.try_send(7).unwrap();
        let late = tx.clone();
        drop(tx);
        tokio::task::yield_now().await;
        drop(late);
        assert_eq!(waiting.await.unwrap(), (Some(7), None));
    }

    #[test]
    fn dropping_the_receiver_drops_what_is_queued() {
        let item = Arc::new(());
        let (tx, rx) = channel(4);
        tx.try_send(item.clone()).unwrap();
        assert_eq!(Arc::strong_count(&item), 2);
        drop(rx);
        assert_eq!(Arc::strong_count(&item), 1, "dropped with the receiver");
    }

    #[test]
    fn a_drained_queue_gives_back_a_large_buffer() {
        let (tx, mut rx) = channel(64);
        for i in 0..32 {
            tx.try_send(i).unwrap();
        }
        let mut cx = Context::from_waker(Waker::noop());
        for i in 0..32 {
            assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(i)));
        }
        assert_eq!(rx.shared.lock().queue.capacity(), 0);
        assert_eq!(rx.poll_recv(&mut cx), Poll::Pending);
    }
}
