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

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    pub header_timeout: Duration,
    pub max_connections: usize,
    pub grace: Duration,
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
        let stream = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    backoff.reset();
                    stream
                }
                Err(e) => {
                    backoff.wait(&e).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let conn = http.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // A connection that ends badly (reset, timed out) concerns only its client.
            let _ = conn.await;
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
