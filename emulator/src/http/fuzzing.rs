//! HTTP/1.1 without TLS over any byte stream, for the `http_request` fuzz target (fuzz/,
//! docs/fuzzing.md): the same hyper settings and the same router as a real HTTPS connection
//! (head checks, authentication, body limits, every REST handler and its JSON bodies), so
//! arbitrary request bytes reach every route and body parser. The TLS layer and the
//! connection timeouts of `connection.rs` are left out, and a client may half-close. Not part of the stable API.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{HttpContext, router};

/// Serves HTTP/1.1 on `stream` until the peer closes it (or the framing fails).
pub async fn serve_plain<S>(stream: S, remote: SocketAddr, ctx: Arc<HttpContext>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let ctx = ctx.clone();
        async move { Ok::<_, Infallible>(router::handle(&ctx, req, &[], remote).await) }
    });
    let _ = http1::Builder::new()
        .header_read_timeout(None)
        // The harness closes its sending side after the request and then reads the reply;
        // without this hyper would drop the request at that EOF.
        .half_close(true)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await;
}
