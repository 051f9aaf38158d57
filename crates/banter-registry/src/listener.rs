//! The HTTP edge: one accept loop that hostile or slow clients cannot
//! exhaust. Every connection gets a header-read timeout (which also bounds
//! an idle keep-alive connection), a header-size cap and a slot under a
//! connection cap sized to the file-descriptor limit; accept errors (such as
//! EMFILE) back off instead of spinning; on shutdown idle and half-sent
//! connections close at once while requests in flight finish.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// Limits of the HTTP edge.
#[derive(Debug, Clone, Copy)]
pub struct EdgeLimits {
    /// Time a client has to send a request's headers, and the longest an
    /// idle keep-alive connection stays open.
    pub header_read_timeout: Duration,
    /// Largest request head (start line and headers) in bytes; larger gets 431.
    pub max_header_bytes: usize,
    /// Most connections open at once; further ones are closed at accept.
    pub max_connections: usize,
}

/// File descriptors kept free for storage, logs and the listener itself.
const FD_RESERVE: usize = 64;

/// The soft `RLIMIT_NOFILE` of this process (Linux), if it can be read.
pub fn fd_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// `wanted`, lowered so connections can never use the descriptors the
/// process needs for everything else.
pub fn connection_cap(wanted: usize, fd_limit: Option<usize>) -> usize {
    match fd_limit {
        Some(limit) => wanted.min(limit.saturating_sub(FD_RESERVE).max(1)),
        None => wanted,
    }
}

/// Requests whose response has not been written out yet.
#[derive(Clone, Default)]
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn start(&self) -> Guard {
        self.0.fetch_add(1, Ordering::SeqCst);
        Guard(self.0.clone())
    }

    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Counts one request as in flight until dropped.
struct Guard(Arc<AtomicUsize>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body holding its request's in-flight guard: hyper drops the
/// body once it is written out (or the connection fails), so the request
/// counts as in flight exactly until then.
struct GuardedBody {
    inner: Body,
    _guard: Guard,
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `app` on `listener` until `stop` resolves, then stops accepting,
/// closes idle and half-sent connections at once and waits (at most
/// `drain`) for the requests in flight to be answered. Returns whether they
/// all were.
pub async fn serve<S>(
    listener: TcpListener,
    app: S,
    limits: EdgeLimits,
    stop: impl std::future::Future<Output = ()>,
    drain: Duration,
) -> bool
where
    S: tower::Service<axum::extract::Request, Response = axum::response::Response, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let in_flight = InFlight::default();
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes)
        .keep_alive(true);
    let mut last_warning: Option<Instant> = None;
    let mut warn = |what: &str, detail: String| {
        // One line per 10 s at most: a full table must not flood the log.
        if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
            tracing::warn!(%detail, "{what}");
            last_warning = Some(Instant::now());
        }
    };
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut stop => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // EMFILE/ENFILE and friends: wait for descriptors to free up.
                warn("accept failed; backing off", e.to_string());
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            warn(
                "connection limit reached; closing new connections until some finish",
                format!("{} open", limits.max_connections),
            );
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (app, in_flight) = (app.clone(), in_flight.clone());
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let guard = in_flight.start();
            let app = app.clone();
            async move {
                let resp = match app.oneshot(req.map(Body::new)).await {
                    Ok(resp) => resp,
                    Err(never) => match never {},
                };
                Ok::<_, Infallible>(resp.map(|inner| GuardedBody { inner, _guard: guard }))
            }
        });
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(slot);
        });
    }
    drop(listener);
    // Idle keep-alive connections close now; the others stop after their
    // current request. Done when every request that had arrived is answered:
    // what is left is idle or half-sent, and goes with the process.
    let closing = graceful.shutdown();
    tokio::pin!(closing);
    let deadline = tokio::time::Instant::now() + drain;
    loop {
        if in_flight.count() == 0 {
            return true;
        }
        tokio::select! {
            () = &mut closing => return true,
            () = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
        if tokio::time::Instant::now() >= deadline {
            return in_flight.count() == 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_descriptors_free() {
        assert_eq!(connection_cap(4096, Some(128)), 64);
        assert_eq!(connection_cap(100, Some(1_048_576)), 100);
        assert_eq!(connection_cap(100, None), 100);
        assert_eq!(connection_cap(100, Some(10)), 1);
        assert!(fd_limit().is_some_and(|l| l > 0));
    }
}
