//! The HTTP server loop: what a hostile or broken client can hold, it holds for a bounded time.
//!
//! - a connection must send a request's headers within `header_timeout` of connecting or of its
//!   previous answer (hyper restarts the timer for every request head, so an idle keep-alive
//!   connection is closed after the same time);
//! - a request's body must arrive within `body_timeout` (`rest::request`);
//! - at most `max_connections` are open; more wait in the kernel's backlog until one closes;
//! - a failing `accept` (out of file descriptors) backs off instead of spinning;
//! - shutdown stops accepting, lets calls in flight commit and answer, and closes whatever is
//!   still open after `grace`.
//!
//! HTTP/1.1 only: TOP clients speak it, and it is the protocol whose every stage is timed here.
//!
//! A request hyper cannot even parse (a malformed request line, a query string over 64 KB, too
//! many headers) never reaches a handler: hyper answers it itself, with a bare 400, 414 or 431.
//! TOP clients take any status but 200 for a transport failure and show nothing useful, so
//! [`TopErrors`] turns exactly those answers into HTTP 200 with a TOP error envelope (code 41).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use loanwire_top::envelope::render_error;
use loanwire_top::{Format, TopError};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

#[derive(Clone)]
pub struct ServerLimits {
    pub header_timeout: Duration,
    pub max_connections: usize,
    pub grace: Duration,
    /// With an acceptor, every connection speaks TLS; its handshake has `header_timeout`.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Heads larger than this are refused by hyper (431): far above any TOP call's headers, and the
/// query string, where the official Java SDK puts the system parameters, is counted apart.
const MAX_HEAD_BYTES: usize = 256 * 1024;
/// Most headers one request may carry.
const MAX_HEADERS: usize = 128;

/// Serves `router` on `listener` until `shutdown` completes, then shuts down within the grace.
pub async fn serve<F>(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut backoff = AcceptBackoff::default();
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            biased;
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => {
                    backoff.reset();
                    accepted
                }
                Err(e) => {
                    backoff.wait(&e).await;
                    continue;
                }
            },
        };
        // Who is calling, for the admin audit's "from where".
        let service = TowerToHyperService::new(router.clone().map_request(
            move |mut req: axum::extract::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            },
        ));
        let watcher = graceful.watcher();
        let (http, tls, handshake) = (http.clone(), limits.tls.clone(), limits.header_timeout);
        tokio::spawn(async move {
            // A connection that ends badly (reset, timed out, not TLS on a TLS port) concerns
            // only its client.
            match tls {
                None => {
                    let conn = http.serve_connection(TokioIo::new(TopErrors::new(stream)), service);
                    let _ = watcher.watch(conn).await;
                }
                Some(acceptor) => {
                    if let Ok(Ok(stream)) =
                        tokio::time::timeout(handshake, acceptor.accept(stream)).await
                    {
                        let conn =
                            http.serve_connection(TokioIo::new(TopErrors::new(stream)), service);
                        let _ = watcher.watch(conn).await;
                    }
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    let open = graceful.count();
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.grace) => {
            tracing::warn!(
                grace_secs = limits.grace.as_secs(),
                open_at_start = open,
                "shutdown grace is over; closing the connections still open"
            );
        }
    }
    Ok(())
}

/// Pauses after a failed `accept`: 5 ms doubling up to 1 s, reset by the next success, so that
/// a process out of file descriptors neither spins nor stops serving when some are freed.
#[derive(Default)]
struct AcceptBackoff {
    pause: Option<Duration>,
}

impl AcceptBackoff {
    async fn wait(&mut self, e: &std::io::Error) {
        let pause = self.pause.map_or(Duration::from_millis(5), |p| {
            (p * 2).min(Duration::from_secs(1))
        });
        if self.pause.is_none() {
            tracing::warn!(error = %e, "accepting a connection failed; backing off");
        }
        self.pause = Some(pause);
        tokio::time::sleep(pause).await;
    }

    fn reset(&mut self) {
        if self.pause.take().is_some() {
            tracing::info!("accepting connections again");
        }
    }
}

/// The answers hyper writes itself for a request it cannot parse (status line, and what the
/// caller is told instead).
const HYPER_ANSWERS: [(&[u8], &str, &str); 3] = [
    (
        b"HTTP/1.1 400 Bad Request\r\n",
        "isv.invalid-request",
        "the request could not be read as HTTP/1.1",
    ),
    (
        b"HTTP/1.1 414 URI Too Long\r\n",
        "isv.request-too-large",
        "the query string is over 64 KB: send the API parameters in the body",
    ),
    (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
        "isv.request-too-large",
        "the request's headers are too many or too large",
    ),
];

/// A connection's stream, with hyper's own answers to unparseable requests replaced by TOP
/// error envelopes. Hyper writes such an answer alone, as the last thing on a connection it
/// then closes, and without a content type (every answer of the gateway's own handlers has one),
/// which is how it is told apart.
struct TopErrors<S> {
    inner: S,
    /// A replacement answer, and how much of it is written.
    pending: Option<(Vec<u8>, usize)>,
}

impl<S> TopErrors<S> {
    fn new(inner: S) -> Self {
        TopErrors {
            inner,
            pending: None,
        }
    }
}

/// The TOP answer to send instead of `written`, if `written` is one of hyper's own.
fn top_answer_for(written: &[u8]) -> Option<Vec<u8>> {
    let (_, sub_code, why) = HYPER_ANSWERS
        .iter()
        .find(|(status, _, _)| written.starts_with(status))?;
    if written
        .windows(b"content-type".len())
        .any(|w| w.eq_ignore_ascii_case(b"content-type"))
    {
        return None;
    }
    // The format the caller asked for is unknown: XML, the protocol's default.
    let error = TopError::invalid_argument("request", *why).with_sub(sub_code, *why);
    let body = render_error(&error, Format::Xml);
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        Format::Xml.content_type(),
        body.len()
    );
    Some([head.into_bytes(), body.into_bytes()].concat())
}

impl<S: AsyncWrite + Unpin> TopErrors<S> {
    /// Writes what is left of a replacement answer.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((answer, written)) = &mut self.pending {
            if *written == answer.len() {
                self.pending = None;
                break;
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &answer[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for TopErrors<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TopErrors<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        if let Some(answer) = top_answer_for(buf) {
            this.pending = Some((answer, 0));
            // Taken whole; what is left of the replacement goes out on the next poll.
            if let Poll::Ready(Err(e)) = this.poll_pending(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        // Hyper's own answer has no body: it is all in the first slice.
        if let Some(first) = bufs.iter().find(|b| !b.is_empty()) {
            if top_answer_for(first).is_some() {
                return Pin::new(this).poll_write(cx, first);
            }
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::top_answer_for;

    #[test]
    fn only_hyper_s_own_bare_answers_are_replaced() {
        let hyper =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let answer = String::from_utf8(top_answer_for(hyper).unwrap()).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.contains("<code>41</code>") && answer.contains("isv.request-too-large"));
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n\r\n{}";
        assert!(top_answer_for(ours).is_none());
        assert!(top_answer_for(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n").is_none());
    }
}
