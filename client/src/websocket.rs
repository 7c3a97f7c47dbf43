//! MQTT over WebSocket: the upgrade to `wss://{host}:{port}/$iothub/websocket` with
//! subprotocol `mqtt` (spec/protocol.md §5.1, §11.1), and [`WsByteStream`], which turns the
//! WebSocket's binary messages back into the plain byte stream the MQTT session reads and
//! writes — so the session code is the same for both transports.
//!
//! Each write becomes one binary message (the session writes a whole batch of packets at
//! once); reads hand out the bytes of binary messages in order, whatever the framing, since
//! MQTT packets may be split across or packed into messages. WebSocket pings are answered by
//! tungstenite itself; a close message or the end of the stream reads as end of file.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::mqtt::MqttError;

/// The path IoT Hub and DPS serve MQTT over WebSocket on.
pub(crate) const WEBSOCKET_PATH: &str = "/$iothub/websocket";

/// Performs the WebSocket upgrade on an established TLS stream.
pub(crate) async fn upgrade<S>(
    host: &str,
    port: u16,
    stream: S,
) -> Result<WsByteStream<S>, MqttError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // An IPv6 literal needs brackets in a URL authority.
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut request = format!("wss://{authority}{WEBSOCKET_PATH}")
        .into_client_request()
        .map_err(|e| MqttError::WebSocket(format!("cannot build the request for {host}: {e}")))?;
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("mqtt"));
    // tungstenite checks that the answer selects the subprotocol we offered.
    let (ws, _response) = tokio_tungstenite::client_async(request, stream)
        .await
        .map_err(|error| match error {
            WsError::Http(response) => MqttError::WebSocketStatus(response.status().as_u16()),
            WsError::Io(error) => MqttError::Io(error),
            other => MqttError::WebSocket(other.to_string()),
        })?;
    Ok(WsByteStream {
        ws,
        unread: Bytes::new(),
    })
}

/// A WebSocket seen as a byte stream of its binary messages.
#[derive(Debug)]
pub(crate) struct WsByteStream<S> {
    ws: WebSocketStream<S>,
    /// The part of the last binary message not read yet.
    unread: Bytes,
}

fn to_io(error: WsError) -> io::Error {
    match error {
        WsError::Io(error) => error,
        other => io::Error::other(other),
    }
}

impl<S> AsyncRead for WsByteStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.unread.is_empty() {
                let n = this.unread.len().min(buf.remaining());
                buf.put_slice(&this.unread[..n]);
                this.unread.advance(n);
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut this.ws).poll_next(cx)) {
                Some(Ok(Message::Binary(data))) => this.unread = data,
                // The peer is done: end of file for the MQTT session.
                Some(Ok(Message::Close(_)))
                | None
                | Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => {
                    return Poll::Ready(Ok(()));
                }
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "text message on an MQTT WebSocket",
                    )));
                }
                // Pings (already answered by tungstenite), pongs and raw frames carry no MQTT.
                Some(Ok(_)) => {}
                Some(Err(error)) => return Poll::Ready(Err(to_io(error))),
            }
        }
    }
}

impl<S> AsyncWrite for WsByteStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(Pin::new(&mut this.ws).poll_ready(cx)).map_err(to_io)?;
        Pin::new(&mut this.ws)
            .start_send(Message::Binary(Bytes::copy_from_slice(data)))
            .map_err(to_io)?;
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().ws)
            .poll_flush(cx)
            .map_err(to_io)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match ready!(Pin::new(&mut self.get_mut().ws).poll_close(cx)) {
            Ok(()) | Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => Poll::Ready(Ok(())),
            Err(error) => Poll::Ready(Err(to_io(error))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};

    /// The server side of the upgrade: checks what the client asked for and selects `mqtt`.
    // The callback's error type is tungstenite's, large or not.
    #[allow(clippy::result_large_err)]
    fn select_mqtt(request: &Request, mut response: Response) -> Result<Response, ErrorResponse> {
        assert_eq!(request.uri().path(), WEBSOCKET_PATH);
        assert_eq!(
            request.headers().get("sec-websocket-protocol").unwrap(),
            "mqtt"
        );
        response
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("mqtt"));
        Ok(response)
    }

    /// A WebSocket server on the far end of an in-memory pipe that answers with `mqtt`, and
    /// the client side already upgraded.
    async fn pair() -> (
        WsByteStream<tokio::io::DuplexStream>,
        WebSocketStream<tokio::io::DuplexStream>,
    ) {
        let (client, server) = tokio::io::duplex(1 << 16);
        let accept = tokio_tungstenite::accept_hdr_async(server, select_mqtt);
        let (client, server) = tokio::join!(upgrade("localhost", 443, client), accept);
        (client.unwrap(), server.unwrap())
    }

    #[tokio::test]
    async fn bytes_cross_message_boundaries_both_ways() {
        let (mut client, mut server) = pair().await;
        client.write_all(b"hello").await.unwrap();
        client.flush().await.unwrap();
        assert_eq!(
            server.next().await.unwrap().unwrap(),
            Message::Binary(Bytes::from_static(b"hello"))
        );

        // One packet split over two messages, with a ping in between, then end of stream.
        for message in [
            Message::Binary(Bytes::from_static(b"ab")),
            Message::Ping(Bytes::from_static(b"p")),
            Message::Binary(Bytes::from_static(b"cdef")),
        ] {
            server.send(message).await.unwrap();
        }
        let mut got = [0u8; 6];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"abcdef");
        server.close(None).await.unwrap();
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    }

    #[tokio::test]
    async fn text_messages_are_an_error() {
        let (mut client, mut server) = pair().await;
        server.send(Message::text("nope")).await.unwrap();
        let mut buf = [0u8; 4];
        let error = client.read(&mut buf).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn a_refused_upgrade_reports_the_status() {
        let (client, mut server) = tokio::io::duplex(1 << 16);
        let refuse = async {
            let mut request = vec![0u8; 4096];
            let _ = server.read(&mut request).await.unwrap();
            server
                .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                .await
                .unwrap();
            server
        };
        let (result, _server) = tokio::join!(upgrade("localhost", 443, client), refuse);
        assert!(matches!(result, Err(MqttError::WebSocketStatus(404))));
    }

    #[tokio::test]
    async fn an_answer_without_the_subprotocol_is_refused() {
        let (client, server) = tokio::io::duplex(1 << 16);
        let (result, _) = tokio::join!(
            upgrade("localhost", 443, client),
            tokio_tungstenite::accept_async(server)
        );
        assert!(matches!(result, Err(MqttError::WebSocket(_))));
    }
}
