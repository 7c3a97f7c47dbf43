//! Transport plumbing every listener shares, written once:
//!
//! * `accept.rs` — the accept loop: a task per connection under a
//!   [`SessionGuard`](crate::shutdown::SessionGuard), stops on shutdown;
//! * `limit.rs` — [`ConnectionLimit`]: at most N connections per listener kind, exact over
//!   every address the kind is bound on, so a flood of one kind (HTTPS) cannot take the file
//!   descriptors the others (MQTT, control) need;
//! * `backoff.rs` — accept errors about the process (out of descriptors) backed off, not
//!   spun on;
//! * `tls.rs` — the TLS handshake with a timeout, abandoned on shutdown, and the peer it
//!   reveals (client chain, SNI);
//! * `forward.rs` — pass-through `AsyncRead`/`AsyncWrite` halves for stream wrappers.

mod accept;
mod backoff;
mod forward;
mod limit;
mod tls;
mod ws_stream;

pub(crate) use accept::spawn_accept_loop;
pub(crate) use forward::{forward_async_read, forward_async_write};
pub(crate) use limit::{ConnectionLimit, ConnectionSlot};
pub(crate) use tls::{TlsPeer, TlsSetup, spawn_tls_accept_loop, spawn_tls_sessions};
pub use ws_stream::WsByteStream;
