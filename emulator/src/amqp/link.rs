//! Attaching and refusing links. `fe2o3-amqp` can only refuse a link by answering the attach
//! and then detaching it with an error (spec/amqp.md §8), which is also what the real hub
//! does for redirects (§4.6); [`refuse`] does that without holding up the session loop.
//!
//! [`LinkSlot`] counts a connection's attached links so one client cannot open unbounded
//! numbers of them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use fe2o3_amqp::acceptor::{
    LinkAcceptor, LinkEndpoint, ListenerSessionHandle, SupportedReceiverSettleModes,
};
use fe2o3_amqp::link::delivery::Delivery;
use fe2o3_amqp::link::{Receiver, RecvError};
use fe2o3_amqp::types::definitions::{Error, ReceiverSettleMode, Role};
use fe2o3_amqp::types::messaging::{Body, Source, Target, TargetArchetype};
use fe2o3_amqp::types::performatives::Attach;
use fe2o3_amqp::types::primitives::Value;

use super::conditions;

/// How long a refused link waits for the client's detach before giving up on it.
const DETACH_WAIT: Duration = Duration::from_secs(5);

/// The link acceptor with the crate's default dynamic-terminus handling (refuse).
pub(crate) type Acceptor = LinkAcceptor<fn(Source) -> Option<Source>, fn(Target) -> Option<Target>>;

/// The acceptor every node uses: our receivers grant credit at once and keep it topped up;
/// `max_message_size` bounds what a client may send on one link.
///
/// Our receivers settle in mode `first` whatever the client asks: uamqp's C2D sender asks for
/// `second` (PeekLock) but only completes a send on a *settled* disposition, and the real hub
/// settles at once too (an accepted, settled disposition on `$cbs`, spec/amqp.md §1.2). The
/// attach reply states the mode in use (AMQP 1.0 §2.7.3).
pub(crate) fn acceptor(max_message_size: u64) -> Acceptor {
    LinkAcceptor::builder()
        .max_message_size(max_message_size)
        .supported_receiver_settle_modes(SupportedReceiverSettleModes::First)
        .fallback_receiver_settle_mode(ReceiverSettleMode::First)
        .build()
}

/// Clients that leave out the terminus they do not care about (a receiver without a
/// target, a sender without a source) would otherwise be refused by the crate's checks.
pub(crate) fn fill_missing_termini(attach: &mut Attach) {
    if attach.target.is_none() {
        attach.target = Some(Box::new(TargetArchetype::Target(Target::default())));
    }
    if attach.source.is_none() && attach.role == Role::Sender {
        attach.source = Some(Box::new(Source::default()));
    }
}

/// Answers the attach; `None` (logged) when the session is gone or the attach is unusable.
pub(crate) async fn accept(
    mut attach: Attach,
    session: &mut ListenerSessionHandle,
    acceptor: &Acceptor,
) -> Option<LinkEndpoint> {
    fill_missing_termini(&mut attach);
    let name = attach.name.clone();
    match acceptor.accept_incoming_attach(attach, session).await {
        Ok(link) => Some(link),
        Err(e) => {
            tracing::info!(link = %name, error = %e, "AMQP attach could not be completed");
            None
        }
    }
}

/// Attaches and at once detaches (closed) with `error`: how a link is refused.
pub(crate) async fn refuse(
    attach: Attach,
    session: &mut ListenerSessionHandle,
    acceptor: &Acceptor,
    error: Error,
) {
    let name = attach.name.clone();
    tracing::info!(
        link = %name,
        condition = %conditions::symbol_of(&error.condition),
        description = error.description.as_deref().unwrap_or_default(),
        "AMQP link refused"
    );
    if let Some(link) = accept(attach, session, acceptor).await {
        tokio::spawn(close_with_error(link, error));
    }
}

/// Detaches (closed) `link` with `error`, waiting a bounded time for the client's answer.
pub(crate) async fn close_with_error(link: LinkEndpoint, error: Error) {
    let closing = async move {
        match link {
            LinkEndpoint::Sender(s) => s.close_with_error(error).await.map_err(|e| e.to_string()),
            LinkEndpoint::Receiver(r) => r.close_with_error(error).await.map_err(|e| e.to_string()),
        }
    };
    match tokio::time::timeout(DETACH_WAIT, closing).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(error = %e, "AMQP detach did not complete cleanly"),
        Err(_) => tracing::debug!("AMQP client did not answer a detach"),
    }
}

/// Why a receiving link's serve loop stops instead of handling a delivery.
#[derive(Debug)]
pub(crate) struct LinkEnded {
    /// The error to detach with; `None` when the link, session or connection already ended.
    error: Option<Error>,
}

impl LinkEnded {
    /// Detaches `receiver` with the error, if there is one; otherwise it is just dropped.
    pub(crate) async fn close(self, receiver: Receiver) {
        if let Some(error) = self.error {
            close_with_error(LinkEndpoint::Receiver(receiver), error).await;
        }
    }
}

/// The head of every receiving serve loop: a delivery to handle, or why the loop ends. An
/// undecodable message closes the link with `amqp:decode-error` ("the `noun` could not be
/// decoded"); any other receive error means the link is already gone. `what` names the
/// link's messages in the logs.
pub(crate) fn delivered(
    received: Result<Delivery<Body<Value>>, RecvError>,
    link: &str,
    what: &str,
    noun: &str,
) -> Result<Delivery<Body<Value>>, LinkEnded> {
    match received {
        Ok(delivery) => Ok(delivery),
        Err(RecvError::MessageDecode(e)) => {
            tracing::info!(%link, what, error = ?e, "AMQP message could not be decoded");
            let description = format!("the {noun} could not be decoded");
            Err(LinkEnded {
                error: Some(conditions::error(conditions::DECODE_ERROR, description)),
            })
        }
        Err(e) => {
            tracing::debug!(%link, what, error = %e, "AMQP receiving link ended");
            Err(LinkEnded { error: None })
        }
    }
}

/// One attached link of a connection, counted while it lives.
#[derive(Debug)]
pub(crate) struct LinkSlot {
    count: Arc<AtomicUsize>,
}

impl LinkSlot {
    /// A slot, or `None` when the connection already has `max` links.
    pub(crate) fn take(count: &Arc<AtomicUsize>, max: usize) -> Option<LinkSlot> {
        count
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| LinkSlot {
                count: count.clone(),
            })
    }
}

impl Drop for LinkSlot {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_given_back() {
        let count = Arc::new(AtomicUsize::new(0));
        let a = LinkSlot::take(&count, 2).unwrap();
        let _b = LinkSlot::take(&count, 2).unwrap();
        assert!(LinkSlot::take(&count, 2).is_none());
        drop(a);
        assert!(LinkSlot::take(&count, 2).is_some());
    }
}
