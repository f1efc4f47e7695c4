//! The sockets: both listeners accept under one connection limit, and every connection is
//! closed when it stays silent too long, so slow or idle clients cannot hold the server's file
//! descriptors (550 one-byte connections were once never closed, and 1,100 of them made
//! `/healthz` time out on a 1,024-descriptor limit).

use crate::Limits;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Connection slots shared by both listeners.
#[derive(Clone)]
pub struct Slots {
    semaphore: Arc<Semaphore>,
    /// Set while refusing, so the refusal is logged once per episode, not per connection.
    refusing: Arc<AtomicBool>,
    max: usize,
}

impl Slots {
    /// `max` connections at once, over both listeners.
    pub fn new(max: usize) -> Slots {
        Slots {
            semaphore: Arc::new(Semaphore::new(max)),
            refusing: Arc::new(AtomicBool::new(false)),
            max,
        }
    }

    /// A slot, or `None` when all are taken (logged once until a slot is free again).
    fn take(&self, what: &str) -> Option<OwnedSemaphorePermit> {
        match self.semaphore.clone().try_acquire_owned() {
            Ok(p) => {
                if self.refusing.swap(false, Ordering::Relaxed) {
                    tracing::info!("accepting connections again");
                }
                Some(p)
            }
            Err(_) => {
                if !self.refusing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        limit = self.max,
                        listener = %what,
                        "connection limit reached; refusing new connections until some close"
                    );
                }
                None
            }
        }
    }
}

/// The raise of the process's open-file limit to its hard limit, and the connection limit that
/// fits in it. Each connection is one descriptor; the database, its WAL and read connections,
/// the listeners and a margin need the rest.
pub fn fit_connection_limit(wanted: usize) -> usize {
    const RESERVED: usize = 128;
    match raise_open_file_limit() {
        Some(files) if files > RESERVED * 2 => wanted.min(files - RESERVED),
        Some(files) => wanted.min(files / 2).max(1),
        None => wanted,
    }
}

/// Raises the soft open-file limit to the hard one and returns it (Linux; `None` elsewhere).
#[cfg(unix)]
fn raise_open_file_limit() -> Option<usize> {
    // SAFETY: getrlimit/setrlimit on a local struct; no memory is shared.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
        usize::try_from(lim.rlim_cur).ok()
    }
}

#[cfg(not(unix))]
fn raise_open_file_limit() -> Option<usize> {
    None
}

/// What an HTTP client gets when every slot is taken: a complete answer it can act on.
fn refusal() -> Vec<u8> {
    let body = "too many open connections; retry in a second\n";
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Accepts one connection, or `None` after a transient accept failure (out of descriptors,
/// a connection reset before it was accepted): the listener keeps going after a short pause.
async fn accept(listener: &TcpListener) -> Option<TcpStream> {
    match listener.accept().await {
        Ok((stream, _)) => {
            let _ = stream.set_nodelay(true);
            Some(stream)
        }
        Err(e) => {
            tracing::warn!(error = %e, "accept failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}

/// Serves `app` over HTTP/1.1 and HTTP/2 (cleartext) until `stop` fires, then lets open
/// connections finish their requests (idle ones close at once) and returns.
pub async fn serve_http(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    slots: Slots,
    stop: impl std::future::Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Headers must arrive within the timeout; hyper also applies it to a kept-alive
    // connection waiting for its next request, so it doubles as HTTP/1's idle timeout.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(1024 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .max_header_list_size(64 * 1024)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let graceful = GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        let stream = tokio::select! {
            s = accept(&listener) => s,
            () = &mut stop => break,
        };
        let Some(mut stream) = stream else { continue };
        let peer = stream.peer_addr().ok();
        let Some(permit) = slots.take("HTTP") else {
            tokio::spawn(async move {
                // Best effort within a second: a client that does not read gets nothing.
                let _ = tokio::time::timeout(Duration::from_secs(1), async {
                    let _ = stream.write_all(&refusal()).await;
                    let _ = stream.shutdown().await;
                })
                .await;
            });
            continue;
        };
        let io = TokioIo::new(IdleTimeout::new(stream, limits.idle_timeout, permit));
        let service = hyper_util::service::TowerToHyperService::new(WithPeer {
            inner: app.clone(),
            peer,
        });
        let conn = builder
            .serve_connection_with_upgrades(io, service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // A connection error (reset, timeout, bad framing) concerns that client only.
            let _ = conn.await;
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// A connection's service: the router, with the client's address on each request (as axum's
/// `ConnectInfo`, for the sign-in rate limit).
#[derive(Clone)]
struct WithPeer {
    inner: Router,
    peer: Option<std::net::SocketAddr>,
}

impl<B> tower_service::Service<axum::http::Request<B>> for WithPeer
where
    Router: tower_service::Service<axum::http::Request<B>>,
{
    type Response = <Router as tower_service::Service<axum::http::Request<B>>>::Response;
    type Error = <Router as tower_service::Service<axum::http::Request<B>>>::Error;
    type Future = <Router as tower_service::Service<axum::http::Request<B>>>::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        tower_service::Service::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, mut req: axum::http::Request<B>) -> Self::Future {
        if let Some(peer) = self.peer {
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
        }
        self.inner.call(req)
    }
}

/// The gRPC listener's connections: each holds a slot and closes itself when idle; over the
/// limit a connection is closed at once (the client sees `UNAVAILABLE` and retries).
pub fn grpc_incoming(
    listener: TcpListener,
    limits: Limits,
    slots: Slots,
) -> impl futures_util::Stream<Item = io::Result<IdleTimeout<TcpStream>>> {
    futures_util::stream::unfold(
        (listener, limits, slots),
        |(listener, limits, slots)| async move {
            loop {
                let Some(stream) = accept(&listener).await else {
                    continue;
                };
                let Some(permit) = slots.take("gRPC") else {
                    drop(stream);
                    continue;
                };
                let io = IdleTimeout::new(stream, limits.idle_timeout, permit);
                return Some((Ok(io), (listener, limits, slots)));
            }
        },
    )
}

/// A socket that fails with `TimedOut` once no byte has moved either way for `idle`, holding
/// its connection slot until it is dropped.
pub struct IdleTimeout<T> {
    inner: T,
    idle: Duration,
    last_activity: Instant,
    /// Fires at `last_activity + idle` or earlier; re-armed lazily when it fires early, so
    /// traffic costs a clock read, not a timer reset.
    alarm: Pin<Box<Sleep>>,
    _slot: OwnedSemaphorePermit,
}

impl<T> IdleTimeout<T> {
    fn new(inner: T, idle: Duration, slot: OwnedSemaphorePermit) -> IdleTimeout<T> {
        let now = Instant::now();
        IdleTimeout {
            inner,
            idle,
            last_activity: now,
            alarm: Box::pin(tokio::time::sleep_until(now + idle)),
            _slot: slot,
        }
    }

    /// Called when the socket has nothing to give: an error once it has been idle too long.
    fn check_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            if self.alarm.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let due = self.last_activity + self.idle;
            if Instant::now() >= due {
                return Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle for too long",
                ));
            }
            self.alarm.as_mut().reset(due);
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleTimeout<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.last_activity = Instant::now();
                }
                Poll::Ready(r)
            }
            Poll::Pending => self.check_idle(cx).map(Err),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, data) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.last_activity = Instant::now();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            // A client that stops reading our answer is as idle as one that stops sending.
            Poll::Pending => self.check_idle(cx).map(Err),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.last_activity = Instant::now();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => self.check_idle(cx).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for IdleTimeout<TcpStream> {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test(start_paused = true)]
    async fn a_silent_socket_times_out_and_traffic_keeps_it_open() {
        let slots = Slots::new(1);
        let (a, mut b) = tokio::io::duplex(64);
        let mut io = IdleTimeout::new(a, Duration::from_secs(10), slots.take("test").unwrap());
        assert!(slots.take("test").is_none(), "the slot is held");
        // Traffic every 6 s keeps it open past the 10 s idle limit.
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(6)).await;
            b.write_all(b"x").await.unwrap();
            let mut one = [0u8; 1];
            io.read_exact(&mut one).await.unwrap();
        }
        let started = Instant::now();
        let mut one = [0u8; 1];
        let err = io.read_exact(&mut one).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed().as_secs(), 10);
        drop(io);
        assert!(
            slots.take("test").is_some(),
            "dropping the socket frees its slot"
        );
    }
}
