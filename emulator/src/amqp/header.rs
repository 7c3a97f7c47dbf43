//! The 8-byte AMQP protocol header, read before any acceptor sees the stream, because the
//! clients disagree on it (spec/amqp.md §0.1): Node's IoT clients send the plain header
//! `AMQP 0 1 0 0` and go straight to `open`, everything else sends the SASL header
//! `AMQP 3 1 0 0`. `fe2o3-amqp` answers its own header first and fails on the other one, so
//! we peek, choose the acceptor, and give it a stream that replays the peeked bytes
//! ([`Prefixed`]).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

use crate::net::forward_async_write;

pub(crate) const HEADER_LEN: usize = 8;
/// `AMQP 0 1 0 0`: AMQP without a security layer.
pub(crate) const PLAIN_HEADER: [u8; HEADER_LEN] = *b"AMQP\x00\x01\x00\x00";
/// `AMQP 3 1 0 0`: SASL first.
pub(crate) const SASL_HEADER: [u8; HEADER_LEN] = *b"AMQP\x03\x01\x00\x00";

/// Which layer a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProtocolHeader {
    Sasl,
    Plain,
    /// Anything else: the connection is answered with the header we support and closed.
    Unsupported([u8; HEADER_LEN]),
}

impl ProtocolHeader {
    pub(crate) fn classify(bytes: [u8; HEADER_LEN]) -> ProtocolHeader {
        match bytes {
            SASL_HEADER => ProtocolHeader::Sasl,
            PLAIN_HEADER => ProtocolHeader::Plain,
            other => ProtocolHeader::Unsupported(other),
        }
    }

    /// What we answer an unsupported header with (AMQP 1.0 §2.2): the closest header we
    /// speak. A plain-AMQP client of another version is told `AMQP 0 1 0 0`, everyone else
    /// (TLS header `AMQP 2 …`, garbage) the SASL header.
    pub(crate) fn counter_offer(bytes: &[u8; HEADER_LEN]) -> [u8; HEADER_LEN] {
        if bytes.starts_with(b"AMQP\x00") {
            PLAIN_HEADER
        } else {
            SASL_HEADER
        }
    }
}

/// Reads exactly the protocol header off `stream`.
pub(crate) async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> io::Result<[u8; HEADER_LEN]> {
    let mut header = [0u8; HEADER_LEN];
    stream.read_exact(&mut header).await?;
    Ok(header)
}

/// A stream whose first bytes are `prefix` (already read off `inner`), then `inner`'s.
/// Writes go straight to `inner`. `Debug` does not require the inner stream's.
pub(crate) struct Prefixed<S> {
    prefix: [u8; HEADER_LEN],
    consumed: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    pub(crate) fn new(prefix: [u8; HEADER_LEN], inner: S) -> Self {
        Prefixed {
            prefix,
            consumed: 0,
            inner,
        }
    }
}

impl<S> std::fmt::Debug for Prefixed<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prefixed")
            .field("replayed", &self.consumed)
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(rest) = this.prefix.get(this.consumed..)
            && !rest.is_empty()
        {
            let n = rest.len().min(buf.remaining());
            if let Some(chunk) = rest.get(..n) {
                buf.put_slice(chunk);
            }
            this.consumed += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

forward_async_write!(Prefixed, inner);

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn headers_are_told_apart() {
        assert_eq!(ProtocolHeader::classify(SASL_HEADER), ProtocolHeader::Sasl);
        assert_eq!(
            ProtocolHeader::classify(PLAIN_HEADER),
            ProtocolHeader::Plain
        );
        let tls = *b"AMQP\x02\x01\x00\x00";
        assert_eq!(
            ProtocolHeader::classify(tls),
            ProtocolHeader::Unsupported(tls)
        );
        assert_eq!(ProtocolHeader::counter_offer(&tls), SASL_HEADER);
        assert_eq!(
            ProtocolHeader::counter_offer(b"AMQP\x00\x02\x00\x00"),
            PLAIN_HEADER
        );
        assert_eq!(ProtocolHeader::counter_offer(b"GET / HT"), SASL_HEADER);
    }

    #[tokio::test]
    async fn the_prefix_is_replayed_before_the_stream() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b"AMQP\x00\x01\x00\x00rest").await.unwrap();
        drop(client);
        let mut server = server;
        let header = read_header(&mut server).await.unwrap();
        let mut replay = Prefixed::new(header, server);
        let mut all = Vec::new();
        // Small reads cross the prefix boundary.
        let mut buf = [0u8; 3];
        loop {
            let n = replay.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
        }
        assert_eq!(all, b"AMQP\x00\x01\x00\x00rest");
    }
}
