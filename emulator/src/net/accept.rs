//! The one accept loop of the emulator (MQTT, AMQP, HTTPS, control): each connection gets a
//! task of its own under a [`SessionGuard`](crate::shutdown::SessionGuard), at most the
//! kind's [`ConnectionLimit`] at once, accept errors backed off (`backoff.rs`), and on
//! shutdown the listening socket is closed.

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::backoff::{Backoff, is_about_one_connection};
use super::limit::{ConnectionLimit, ConnectionSlot};
use crate::shutdown::ShutdownSignal;

/// Accepts on `listener` (named `kind` in logs) until shutdown, handing each connection to
/// `serve` in a task of its own that runs under a [`SessionGuard`](crate::shutdown::SessionGuard).
/// At the limit the loop stops accepting, so new connections wait in the kernel's backlog,
/// not in our memory (see `limit.rs` for how addresses share a limit).
pub(crate) fn spawn_accept_loop<F, Fut>(
    listener: TcpListener,
    kind: &'static str,
    limit: ConnectionLimit,
    mut shutdown: ShutdownSignal,
    serve: F,
) -> JoinHandle<()>
where
    F: Fn(TcpStream, SocketAddr, ConnectionSlot) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut backoff = Backoff::default();
        let mut at_limit = AtLimit::default();
        loop {
            // Wait for a free slot without taking it: a slot reserved while this listener
            // waits for a client would be missing from the other addresses of the kind.
            if !limit.has_free_slot() {
                at_limit.reached(kind, &limit);
                tokio::select! {
                    free = limit.free_slot() => if free.is_err() { break },
                    _ = shutdown.recv() => break,
                }
            }
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = shutdown.recv() => break,
            };
            match accepted {
                Ok((tcp, remote)) => {
                    backoff.succeeded(kind);
                    // Another address may have taken the last slot meanwhile: this one
                    // connection then waits for a slot, and nothing more is accepted.
                    let slot = match limit.try_take() {
                        Some(slot) => slot,
                        None => {
                            at_limit.reached(kind, &limit);
                            tokio::select! {
                                slot = limit.take() => match slot {
                                    Ok(slot) => slot,
                                    Err(_) => break,
                                },
                                _ = shutdown.recv() => break,
                            }
                        }
                    };
                    at_limit.left(&limit);
                    let _ = tcp.set_nodelay(true);
                    let guard = shutdown.session();
                    // Boxed before `run` takes it: a future passed by value into an async
                    // fn is stored twice in the caller's state (once as the argument, once
                    // where it is awaited), and every held connection pays for that task
                    // allocation (docs/benchmarks.md, per-session memory).
                    tokio::spawn(guard.run(Box::pin(serve(tcp, remote, slot))));
                }
                Err(e) if is_about_one_connection(&e) => {
                    tracing::debug!(listener = kind, error = %e, "accept: connection lost before it was accepted");
                }
                Err(e) => {
                    let pause = backoff.failed(kind, &e);
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = shutdown.recv() => break,
                    }
                }
            }
        }
        tracing::debug!(listener = kind, "stopped accepting");
    })
}

/// Logs reaching the limit once, until a slot is free again.
#[derive(Debug, Default)]
struct AtLimit(bool);

impl AtLimit {
    fn reached(&mut self, kind: &'static str, limit: &ConnectionLimit) {
        if !self.0 {
            self.0 = true;
            tracing::warn!(
                listener = kind,
                limit = limit.max(),
                "connection limit reached; new connections wait until one closes"
            );
        }
    }

    fn left(&mut self, limit: &ConnectionLimit) {
        if self.0 && limit.has_free_slot() {
            self.0 = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::mpsc::UnboundedReceiver;

    use super::*;

    /// A listener whose connections hold their slot until the peer closes; each served
    /// connection sends its listener's name on the channel.
    fn serve_until_closed(
        listener: TcpListener,
        name: &'static str,
        limit: &ConnectionLimit,
        shutdown: &crate::shutdown::Shutdown,
        served: &tokio::sync::mpsc::UnboundedSender<&'static str>,
    ) -> JoinHandle<()> {
        let served = served.clone();
        spawn_accept_loop(listener, "test", limit.clone(), shutdown.signal(), {
            move |mut tcp, _, slot| {
                let served = served.clone();
                async move {
                    let _slot = slot;
                    let _ = served.send(name);
                    let _ = tokio::io::AsyncReadExt::read(&mut tcp, &mut [0u8; 1]).await;
                }
            }
        })
    }

    /// The next served connection; a hang guard, not a timing assertion.
    async fn next(served: &mut UnboundedReceiver<&'static str>) -> &'static str {
        tokio::time::timeout(Duration::from_secs(30), served.recv())
            .await
            .expect("a connection was not served")
            .expect("the channel closed")
    }

    /// Whether nothing more is served for a while (the connection waits in the backlog).
    async fn nothing_served(served: &mut UnboundedReceiver<&'static str>) -> bool {
        tokio::time::timeout(Duration::from_millis(200), served.recv())
            .await
            .is_err()
    }

    #[tokio::test]
    async fn connections_beyond_the_limit_wait_until_one_closes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limit = ConnectionLimit::new(1);
        let shutdown = crate::shutdown::Shutdown::new();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let task = serve_until_closed(listener, "a", &limit, &shutdown, &tx);
        let first = TcpStream::connect(addr).await.unwrap();
        next(&mut rx).await;
        let _second = TcpStream::connect(addr).await.unwrap();
        // The second sits in the backlog: not served while the first holds the only slot.
        assert!(nothing_served(&mut rx).await);
        assert_eq!(limit.in_use(), 1);
        drop(first);
        next(&mut rx).await;
        shutdown.begin();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_limit_shared_by_two_addresses_is_exact_for_each() {
        // Two listeners of one kind (as 127.0.0.1 and ::1 are), one limit of 2.
        let a = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let b = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let limit = ConnectionLimit::new(2);
        let shutdown = crate::shutdown::Shutdown::new();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let tasks = [
            serve_until_closed(a, "a", &limit, &shutdown, &tx),
            serve_until_closed(b, "b", &limit, &shutdown, &tx),
        ];
        // Both connections to one address are served: the idle listener holds no slot.
        let first = TcpStream::connect(a_addr).await.unwrap();
        assert_eq!(next(&mut rx).await, "a");
        let _second = TcpStream::connect(a_addr).await.unwrap();
        assert_eq!(next(&mut rx).await, "a");
        assert_eq!(limit.in_use(), 2);
        // A third, on the other address, waits: the limit is shared.
        let _third = TcpStream::connect(b_addr).await.unwrap();
        assert!(nothing_served(&mut rx).await);
        assert_eq!(limit.in_use(), 2);
        drop(first);
        assert_eq!(next(&mut rx).await, "b");
        shutdown.begin();
        for task in tasks {
            task.await.unwrap();
        }
    }
}
