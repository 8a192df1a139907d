//! The connection loop: HTTP/1.1 over hyper with the limits `axum::serve` cannot set (a header-read timeout,
//! an idle timeout, a cap on open connections), and every request handled in a task of its own.
//!
//! The task is what makes request handling cancel-safe: when a client goes away, hyper drops the response
//! future, but the flow it started (a transaction, a hash followed by a write) still runs to its end in the
//! spawned task instead of stopping at whichever `.await` it had reached.

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Duration,
};

use axum::{Router, body::Body, extract::ConnectInfo, http::Request, response::IntoResponse};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::Semaphore,
    time::{Instant, Sleep},
};
use tower::ServiceExt;

use super::error::ApiError;

/// What a connection may take, from `LATCHKEY_HEADER_READ_TIMEOUT_SECONDS`, `LATCHKEY_IDLE_TIMEOUT_SECONDS` and
/// `LATCHKEY_MAX_CONNECTIONS`.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// From when the server starts waiting for a request (a new connection, or the end of the previous
    /// response on a kept-alive one) to the end of its headers.
    pub header_read: Duration,
    /// Nothing read or written for this long closes the connection (a stalled upload, a client that stops
    /// reading its response).
    pub idle: Duration,
    /// Open connections beyond this wait in the listen backlog rather than take a file descriptor.
    pub max_connections: usize,
}

/// How long shutdown waits for requests in flight before it closes their connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.map_err(io::Error::other)?,
            () = &mut shutdown => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors or a connection reset before accept: wait a little, go on.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        // A request's task holds the connection's place too: a client that sends and hangs up at once
        // cannot pile up work beyond the cap.
        let permit = Arc::new(permit);
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(remote));
            let (router, permit) = (router.clone(), permit.clone());
            let handled = tokio::spawn(async move {
                let response = router.oneshot(request).await;
                drop(permit);
                response
            });
            async move {
                Ok::<_, std::convert::Infallible>(match handled.await {
                    Ok(Ok(response)) => response,
                    Ok(Err(never)) => match never {},
                    Err(panicked) => {
                        tracing::error!(error = %panicked, "a request handler panicked");
                        ApiError::for_status(axum::http::StatusCode::INTERNAL_SERVER_ERROR).into_response()
                    }
                })
            }
        });
        let connection =
            graceful.watch(http.serve_connection(TokioIo::new(IdleTimeout::new(stream, limits.idle)), service));
        tokio::spawn(connection);
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
        tracing::warn!("connections still open after the shutdown grace period; closing them");
    }
    Ok(())
}

/// A TCP stream that fails with `TimedOut` once nothing has moved in either direction for `idle`.
struct IdleTimeout {
    stream: TcpStream,
    idle: Duration,
    last_activity: Instant,
    timer: Pin<Box<Sleep>>,
}

impl IdleTimeout {
    fn new(stream: TcpStream, idle: Duration) -> Self {
        let now = Instant::now();
        Self { stream, idle, last_activity: now, timer: Box::pin(tokio::time::sleep_until(now + idle)) }
    }

    /// Called when the stream has nothing to give: the timer is re-armed from the last activity rather than
    /// on every byte, so a busy connection costs no timer work.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            let deadline = self.last_activity + self.idle;
            if self.timer.deadline() != deadline {
                self.timer.as_mut().reset(deadline);
            }
            ready!(self.timer.as_mut().poll(cx));
            if self.last_activity + self.idle <= Instant::now() {
                return Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, "connection idle"));
            }
        }
    }

    fn moved<T>(&mut self, cx: &mut Context<'_>, polled: Poll<io::Result<T>>, progress: bool) -> Poll<io::Result<T>> {
        match polled {
            Poll::Ready(result) => {
                if progress {
                    self.last_activity = Instant::now();
                }
                Poll::Ready(result)
            }
            Poll::Pending => match self.poll_idle(cx) {
                Poll::Ready(e) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncRead for IdleTimeout {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        let progress = buf.filled().len() > before;
        self.moved(cx, polled, progress)
    }
}

impl AsyncWrite for IdleTimeout {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, data);
        let progress = matches!(polled, Poll::Ready(Ok(n)) if n > 0);
        self.moved(cx, polled, progress)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        let progress = matches!(polled, Poll::Ready(Ok(n)) if n > 0);
        self.moved(cx, polled, progress)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
