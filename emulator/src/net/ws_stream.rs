//! A WebSocket seen as a byte stream, beneath both transports that tunnel through one: MQTT
//! over WebSocket (`/$iothub/websocket`, subprotocol `mqtt`) and AMQP over WebSocket
//! (`AMQPWSB10`). The HTTPS front answers the upgrade; the session on top reads and writes bytes
//! as it would on TLS.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// A WebSocket seen as the byte stream MQTT expects: binary messages are concatenated on
/// read, each write is sent as one binary message. Pings are answered by tungstenite itself
/// (on the next read, which the session always has pending); a close from the peer reads as
/// end of stream; shutting down sends a close frame and then closes TLS.
pub struct WsByteStream<S> {
    ws: WebSocketStream<S>,
    /// What is left of the last binary message after a read smaller than the message.
    unread: Bytes,
}

impl<S> std::fmt::Debug for WsByteStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsByteStream")
            .field("unread", &self.unread.len())
            .finish_non_exhaustive()
    }
}

impl<S> WsByteStream<S> {
    pub fn new(ws: WebSocketStream<S>) -> Self {
        WsByteStream {
            ws,
            unread: Bytes::new(),
        }
    }
}

fn io_error(e: WsError) -> io::Error {
    match e {
        WsError::Io(e) => e,
        other => io::Error::other(other),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsByteStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // Data is only taken off the socket when this returns Ready, so the session's
        // `select!` can drop a pending read without losing bytes.
        loop {
            if !self.unread.is_empty() {
                let n = buf.remaining().min(self.unread.len());
                let chunk = self.unread.split_to(n);
                buf.put_slice(&chunk);
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut self.ws).poll_next(cx)) {
                // An empty message must not read as end of stream: go round again.
                Some(Ok(Message::Binary(data))) => self.unread = data,
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(_))) | None => return Poll::Ready(Ok(())),
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "text frame: MQTT over WebSocket uses binary frames",
                    )));
                }
                Some(Err(e)) => return Poll::Ready(Err(io_error(e))),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsByteStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut ws = Pin::new(&mut self.ws);
        ready!(ws.as_mut().poll_ready(cx)).map_err(io_error)?;
        ws.start_send(Message::Binary(Bytes::copy_from_slice(buf)))
            .map_err(io_error)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws).poll_flush(cx).map_err(io_error)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A failed close frame (peer already gone) must not keep TLS from being closed.
        let _ = ready!(Pin::new(&mut self.ws).poll_close(cx));
        Pin::new(self.ws.get_mut()).poll_shutdown(cx)
    }
}
