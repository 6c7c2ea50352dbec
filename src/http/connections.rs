//! Limits on connections, so that slow or idle ones cannot pile up: how
//! many at once, how long a request's headers may take to arrive, and how
//! long a connection may sit idle between requests.
//!
//! hyper's own header timeout starts whenever a connection waits for a
//! request, so it cannot tell an idle keep-alive connection from a slow
//! sender. Here the stream and the service share what the connection is
//! doing: a new connection, or one that has begun to send a request, must
//! finish its headers within `header_read_timeout`; one with nothing in
//! flight and nothing arriving may stay `idle_timeout`; while a request is
//! handled, the request timeout governs instead.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use crate::metrics::Metrics;

/// An acceptor for axum-server that applies the limits to every connection.
#[derive(Clone)]
pub struct ConnectionLimits {
    header_read_timeout: Duration,
    idle_timeout: Duration,
    permits: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

impl ConnectionLimits {
    pub fn new(
        header_read_timeout: Duration,
        idle_timeout: Duration,
        max_connections: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        ConnectionLimits {
            header_read_timeout,
            idle_timeout,
            permits: Arc::new(Semaphore::new(max_connections)),
            metrics,
        }
    }

    /// The same timeouts with a cap of their own.
    pub fn with_max_connections(&self, max_connections: usize) -> Self {
        ConnectionLimits {
            permits: Arc::new(Semaphore::new(max_connections)),
            ..self.clone()
        }
    }
}

impl<I, S> axum_server::accept::Accept<I, S> for ConnectionLimits {
    type Stream = Limited<I>;
    type Service = Tracked<S>;
    type Future = std::future::Ready<io::Result<(Limited<I>, Tracked<S>)>>;

    /// Over the cap, the connection is closed at once: holding it open
    /// would be the pile-up the cap is there to prevent. Apple retries.
    fn accept(&self, stream: I, service: S) -> Self::Future {
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            self.metrics.connection_closed("over_cap");
            tracing::warn!("connection refused: server.max_connections reached");
            return std::future::ready(Err(io::Error::other("too many connections")));
        };
        self.metrics.connection_opened();
        let activity = Arc::new(Mutex::new(Activity {
            in_flight: 0,
            last: Instant::now(),
            // A new connection owes its first request's headers.
            request_begun: Some(Instant::now()),
        }));
        std::future::ready(Ok((
            Limited {
                inner: stream,
                activity: Arc::clone(&activity),
                limits: self.clone(),
                timer: None,
                _permit: permit,
            },
            Tracked {
                inner: service,
                activity,
            },
        )))
    }
}

#[derive(Debug)]
struct Activity {
    /// Requests whose headers arrived and whose answer is not yet ready.
    in_flight: usize,
    /// When a byte last went either way, or a request was answered.
    last: Instant,
    /// When the request now arriving sent its first byte, until its
    /// headers are complete.
    request_begun: Option<Instant>,
}

impl Activity {
    fn deadline(&self, limits: &ConnectionLimits) -> Option<(Instant, &'static str)> {
        if self.in_flight > 0 {
            return None;
        }
        Some(match self.request_begun {
            // Instants from this process's clock plus configured seconds: a
            // sum past what Instant holds means "never".
            Some(begun) => (
                begun.checked_add(limits.header_read_timeout)?,
                "header_read_timeout",
            ),
            None => (self.last.checked_add(limits.idle_timeout)?, "idle_timeout"),
        })
    }
}

fn lock(activity: &Mutex<Activity>) -> std::sync::MutexGuard<'_, Activity> {
    activity.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The connection's stream: a read waiting past the deadline fails, and
/// hyper closes the connection.
pub struct Limited<I> {
    inner: I,
    activity: Arc<Mutex<Activity>>,
    limits: ConnectionLimits,
    timer: Option<Pin<Box<Sleep>>>,
    _permit: OwnedSemaphorePermit,
}

impl<I> Limited<I> {
    /// Bytes going out are activity too: a long answer is not idleness.
    fn note_written(&self, written: &Poll<io::Result<usize>>) {
        if matches!(written, Poll::Ready(Ok(n)) if *n > 0) {
            lock(&self.activity).last = Instant::now();
        }
    }
}

impl<I> Drop for Limited<I> {
    fn drop(&mut self) {
        self.limits.metrics.connection_ended();
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Limited<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let now = Instant::now();
                    let mut activity = lock(&this.activity);
                    activity.last = now;
                    if activity.in_flight == 0 && activity.request_begun.is_none() {
                        activity.request_begun = Some(now);
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                let deadline = lock(&this.activity).deadline(&this.limits);
                let Some((deadline, which)) = deadline else {
                    return Poll::Pending;
                };
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.limits.metrics.connection_closed(which);
                        tracing::debug!(limit = which, "connection closed");
                        Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, which)))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
            failed => failed,
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Limited<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.note_written(&written);
        written
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.note_written(&written);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The connection's service: tells the stream when a request's headers
/// have arrived and when its answer is ready.
#[derive(Clone)]
pub struct Tracked<S> {
    inner: S,
    activity: Arc<Mutex<Activity>>,
}

/// A request in flight; its end counts even when the connection drops it.
struct InFlight(Arc<Mutex<Activity>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut activity = lock(&self.0);
        activity.in_flight = activity.in_flight.saturating_sub(1);
        activity.last = Instant::now();
    }
}

impl<S, R> tower::Service<R> for Tracked<S>
where
    S: tower::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        {
            let mut activity = lock(&self.activity);
            activity.in_flight = activity.in_flight.saturating_add(1);
            activity.request_begun = None;
        }
        let in_flight = InFlight(Arc::clone(&self.activity));
        let answer = self.inner.call(request);
        Box::pin(async move {
            let answer = answer.await;
            drop(in_flight);
            answer
        })
    }
}
