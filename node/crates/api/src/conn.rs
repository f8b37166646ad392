//! Connections of the gRPC server: accepting them, capping them and closing the ones
//! that hold a slot without using it.
//!
//! [`Acceptor`] is the stream of connections given to tonic. It accepts on the listener,
//! sets `TCP_NODELAY` on every socket (tonic ignores its own `tcp_nodelay` setting for a
//! caller-supplied stream) and admits the connection into the [`Registry`], which holds at
//! most `max_connections`. When it is full, the new connection takes the slot of the
//! connection that has gone longest without a request in flight, preferring the ones that
//! never completed the HTTP/2 handshake; when every slot has a request in flight, the new
//! connection is closed at once. An accept error caused by running out of descriptors or
//! memory (EMFILE, ENFILE, ENOBUFS, ENOMEM) pauses accepting for [`ACCEPT_BACKOFF`]
//! instead of retrying at once, and is logged at most once per log interval.
//!
//! Every admitted socket is wrapped in a [`GuardedIo`] that closes it (by failing its
//! reads) when the client has not sent the HTTP/2 preface and the start of its SETTINGS
//! frame within the handshake timeout, when it has had no request in flight for the idle
//! timeout, or when the registry evicts it. [`ConnInfo`] reaches every request through
//! tonic's connect-info extension; [`ConnState::begin_request`] marks a request in flight
//! until its response body ends.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tokio_stream::Stream;
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::logsafe::LogLimiter;
use crate::metrics::API_SERVER;

/// Pause after an accept error caused by running out of descriptors or memory.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Pause after a run of [`ERRORS_BEFORE_PAUSE`] other accept errors in a row.
const OTHER_ERROR_BACKOFF: Duration = Duration::from_millis(10);

/// Other accept errors (such as a connection reset before it was accepted) tolerated in a
/// row before pausing.
const ERRORS_BEFORE_PAUSE: u32 = 16;

/// The HTTP/2 client preface (24 bytes) and one frame header (9 bytes): a client that sent
/// this much has done its part of the handshake.
const HANDSHAKE_BYTES: u64 = 24 + 9;

/// State of one connection, shared by its IO, its requests and the registry.
#[derive(Debug)]
pub struct ConnState {
    id: u64,
    accepted: Instant,
    bytes_read: AtomicU64,
    handshaked: AtomicBool,
    in_flight: AtomicUsize,
    /// Milliseconds from `accepted` to the last start or end of a request (or the end of
    /// the handshake).
    last_active_ms: AtomicU64,
    closed: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl ConnState {
    fn new(id: u64) -> Self {
        Self {
            id,
            accepted: Instant::now(),
            bytes_read: AtomicU64::new(0),
            handshaked: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            last_active_ms: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            waker: Mutex::new(None),
        }
    }

    /// Marks a request in flight until the guard is dropped.
    pub fn begin_request(self: &Arc<Self>) -> RequestGuard {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.touch();
        RequestGuard(Arc::clone(self))
    }

    fn touch(&self) {
        let ms = u64::try_from(self.accepted.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_active_ms.fetch_max(ms, Ordering::AcqRel);
    }

    fn handshaked(&self) -> bool {
        self.handshaked.load(Ordering::Acquire)
    }

    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    fn last_active(&self) -> Instant {
        self.accepted + Duration::from_millis(self.last_active_ms.load(Ordering::Acquire))
    }

    /// True once the connection is to be closed.
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Asks the connection to close and wakes its task.
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let waker = self
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn register(&self, waker: &Waker) {
        let mut slot = self.waker.lock().unwrap_or_else(PoisonError::into_inner);
        match slot.as_ref() {
            Some(w) if w.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
    }
}

/// Keeps a request in flight on its connection; dropping it ends the request.
#[derive(Debug)]
pub struct RequestGuard(Arc<ConnState>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        // Activity first, so that the idle check never sees the request gone with an
        // old activity time.
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What tonic attaches to every request of a connection.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// Addresses, also inserted as tonic's own [`TcpConnectInfo`] so that
    /// `Request::remote_addr` keeps working.
    pub tcp: TcpConnectInfo,
    /// The connection's state.
    pub state: Arc<ConnState>,
}

/// The connections admitted, at most `max`.
#[derive(Debug)]
pub struct Registry {
    max: usize,
    next_id: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<ConnState>>>,
}

impl Registry {
    /// A registry of at most `max` connections (at least 1).
    pub fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            next_id: AtomicU64::new(0),
            conns: Mutex::new(HashMap::new()),
        }
    }

    /// Admits a new connection, evicting an unused one if the registry is full; `None`
    /// when every slot has a request in flight.
    fn admit(&self) -> Option<Arc<ConnState>> {
        let mut conns = self.conns.lock().unwrap_or_else(PoisonError::into_inner);
        if conns.len() >= self.max {
            let victim = conns
                .values()
                .filter(|c| c.in_flight() == 0)
                .min_by_key(|c| (c.handshaked(), c.last_active()))
                .map(|c| c.id)?;
            if let Some(v) = conns.remove(&victim) {
                v.close();
                API_SERVER.connection_closed("evicted");
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnState::new(id));
        conns.insert(id, Arc::clone(&state));
        Some(state)
    }

    /// Closes every connection that has not completed the HTTP/2 handshake (on shutdown:
    /// hyper's graceful shutdown would otherwise wait for their handshake timeout).
    pub fn close_unstarted(&self) {
        let conns = self.conns.lock().unwrap_or_else(PoisonError::into_inner);
        for c in conns.values().filter(|c| !c.handshaked()) {
            c.close();
        }
    }

    fn remove(&self, id: u64) {
        self.conns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }

    /// Connections admitted and not yet closed.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.conns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// Timeouts of an admitted connection.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Time to send the HTTP/2 preface and the start of the SETTINGS frame.
    pub handshake: Duration,
    /// Time without a request in flight after which the connection is closed.
    pub idle: Duration,
}

/// An admitted socket (see the module documentation).
#[derive(Debug)]
pub struct GuardedIo {
    stream: TcpStream,
    state: Arc<ConnState>,
    registry: Arc<Registry>,
    timeouts: Timeouts,
    timer: Pin<Box<Sleep>>,
    tcp: TcpConnectInfo,
}

impl GuardedIo {
    fn new(
        stream: TcpStream,
        state: Arc<ConnState>,
        registry: Arc<Registry>,
        timeouts: Timeouts,
    ) -> Self {
        let tcp = TcpConnectInfo {
            local_addr: stream.local_addr().ok(),
            remote_addr: stream.peer_addr().ok(),
        };
        let timer = Box::pin(tokio::time::sleep_until(
            state.accepted + timeouts.handshake,
        ));
        API_SERVER.connections_open.inc();
        Self {
            stream,
            state,
            registry,
            timeouts,
            timer,
            tcp,
        }
    }

    /// When the connection must be closed if nothing changes, or why it must be closed
    /// now.
    fn deadline(&self, now: Instant) -> Result<Instant, &'static str> {
        let s = &self.state;
        if !s.handshaked() {
            let at = s.accepted + self.timeouts.handshake;
            return if now >= at {
                Err("handshake_timeout")
            } else {
                Ok(at)
            };
        }
        if s.in_flight() > 0 {
            return Ok(now + self.timeouts.idle);
        }
        let at = s.last_active() + self.timeouts.idle;
        if now >= at {
            Err("idle_timeout")
        } else {
            Ok(at)
        }
    }

    /// Fails when the connection is to be closed; otherwise arranges to be woken when it
    /// must be.
    fn watch(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.state.is_closed() {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "connection closed by the operator API's connection limits",
            ));
        }
        self.state.register(cx.waker());
        while self.timer.as_mut().poll(cx).is_ready() {
            match self.deadline(Instant::now()) {
                Ok(at) => self.timer.as_mut().reset(at),
                Err(reason) => {
                    self.state.closed.store(true, Ordering::Release);
                    API_SERVER.connection_closed(reason);
                    tracing::debug!(peer = ?self.tcp.remote_addr, reason, "closing an operator API connection");
                    return Err(io::Error::new(io::ErrorKind::TimedOut, reason));
                }
            }
        }
        Ok(())
    }

    fn note_read(&mut self, n: usize) {
        if n == 0 || self.state.handshaked() {
            return;
        }
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        let total = self
            .state
            .bytes_read
            .fetch_add(n, Ordering::AcqRel)
            .saturating_add(n);
        if total >= HANDSHAKE_BYTES {
            self.state.handshaked.store(true, Ordering::Release);
            self.state.touch();
            let at = Instant::now() + self.timeouts.idle;
            self.timer.as_mut().reset(at);
        }
    }
}

impl Drop for GuardedIo {
    fn drop(&mut self) {
        self.registry.remove(self.state.id);
        API_SERVER.connections_open.dec();
    }
}

impl Connected for GuardedIo {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        ConnInfo {
            tcp: self.tcp.clone(),
            state: Arc::clone(&self.state),
        }
    }
}

impl AsyncRead for GuardedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Err(e) = this.watch(cx) {
            return Poll::Ready(Err(e));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            this.note_read(buf.filled().len().saturating_sub(before));
        }
        polled
    }
}

impl AsyncWrite for GuardedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// EMFILE and ENFILE (the same numbers on Linux, the BSDs and macOS).
const EMFILE: i32 = 24;
const ENFILE: i32 = 23;
/// ENOBUFS.
#[cfg(any(target_os = "linux", target_os = "android"))]
const ENOBUFS: i32 = 105;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const ENOBUFS: i32 = 55;

/// True for accept errors that retrying at once cannot fix: no descriptor or memory left.
fn out_of_resources(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(EMFILE | ENFILE | ENOBUFS))
        || e.kind() == io::ErrorKind::OutOfMemory
}

/// The stream of admitted connections given to tonic (see the module documentation).
#[derive(Debug)]
pub struct Acceptor {
    listener: TcpListener,
    registry: Arc<Registry>,
    timeouts: Timeouts,
    backoff: Option<Pin<Box<Sleep>>>,
    errors_in_a_row: u32,
    error_log: LogLimiter,
    full_log: LogLimiter,
}

impl Acceptor {
    /// Accepts on `listener` into `registry`.
    pub fn new(
        listener: TcpListener,
        registry: Arc<Registry>,
        timeouts: Timeouts,
        log_interval: Duration,
    ) -> Self {
        Self {
            listener,
            registry,
            timeouts,
            backoff: None,
            errors_in_a_row: 0,
            error_log: LogLimiter::new(log_interval),
            full_log: LogLimiter::new(log_interval),
        }
    }

    fn accept_failed(&mut self, e: &io::Error) {
        API_SERVER.accept_errors.inc();
        let pause = if out_of_resources(e) {
            ACCEPT_BACKOFF
        } else {
            self.errors_in_a_row = self.errors_in_a_row.saturating_add(1);
            if self.errors_in_a_row < ERRORS_BEFORE_PAUSE {
                tracing::debug!(error = %e, "operator API: accept failed");
                return;
            }
            self.errors_in_a_row = 0;
            OTHER_ERROR_BACKOFF
        };
        if let Some(suppressed) = self.error_log.check() {
            tracing::warn!(
                error = %e,
                pause_ms = pause.as_millis(),
                suppressed,
                "operator API: accept failed; pausing before accepting again"
            );
        }
        self.backoff = Some(Box::pin(tokio::time::sleep(pause)));
    }

    fn refuse(&self, peer: SocketAddr) {
        API_SERVER.connection_closed("over_cap");
        if let Some(suppressed) = self.full_log.check() {
            tracing::warn!(
                %peer,
                max = self.registry.max,
                suppressed,
                "operator API: every connection slot has a request in flight; closing new connections"
            );
        }
    }
}

impl Stream for Acceptor {
    type Item = Result<GuardedIo, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(backoff) = this.backoff.as_mut() {
                if backoff.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.backoff = None;
            }
            let (stream, peer) = match this.listener.poll_accept(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(accepted)) => accepted,
                Poll::Ready(Err(e)) => {
                    this.accept_failed(&e);
                    continue;
                }
            };
            this.errors_in_a_row = 0;
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(%peer, error = %e, "operator API: cannot set TCP_NODELAY");
            }
            match this.registry.admit() {
                Some(state) => {
                    let io =
                        GuardedIo::new(stream, state, Arc::clone(&this.registry), this.timeouts);
                    return Poll::Ready(Some(Ok(io)));
                }
                None => {
                    drop(stream);
                    this.refuse(peer);
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_full_registry_evicts_unused_connections_first() {
        let r = Registry::new(3);
        let a = r.admit().unwrap();
        let b = r.admit().unwrap();
        let c = r.admit().unwrap();
        // `a` finished its handshake, `b` has a request in flight, `c` is silent.
        a.handshaked.store(true, Ordering::Release);
        let _busy = b.begin_request();
        let d = r.admit().unwrap();
        assert!(c.is_closed(), "the silent connection goes first");
        assert!(!a.is_closed() && !b.is_closed() && !d.is_closed());
        d.handshaked.store(true, Ordering::Release);
        let e = r.admit().unwrap();
        assert!(a.is_closed(), "then the one idle the longest");
        let _e_busy = e.begin_request();
        let _d_busy = d.begin_request();
        assert!(r.admit().is_none(), "every slot is in use");
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn resource_errors_are_recognised() {
        assert!(out_of_resources(&io::Error::from_raw_os_error(EMFILE)));
        assert!(out_of_resources(&io::Error::from_raw_os_error(ENFILE)));
        assert!(!out_of_resources(&io::Error::from(
            io::ErrorKind::ConnectionAborted
        )));
    }
}
