//! The HTTP server: hyper, driven here rather than through `poem::Server`,
//! because poem's server sets no timer, so hyper cannot time out a request
//! head. Every connection is bounded:
//! - its first bytes, enough to tell HTTP/1 from HTTP/2 (whose 24-byte
//!   preface included), must come within `--header-read-timeout`, and so
//!   must each HTTP/1 request head, also between requests on a kept-alive
//!   connection: silent, slow-header (slowloris) and idle clients are
//!   disconnected;
//! - an HTTP/2 connection is pinged, and closed when it has had no request
//!   in flight for `--idle-timeout`;
//! - at most `--max-connections` are open, so that the process never runs
//!   out of file descriptors and cannot accept at all: past it, a new
//!   connection takes the place of the oldest one that has not sent a byte
//!   yet, or is closed at once if every one is talking.
//!
//! Shutdown is graceful: stop accepting, let in-flight requests finish,
//! bounded by a timeout.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use poem::endpoint::BoxEndpoint;
use poem::http::uri::Scheme;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Addr, Endpoint as _, Response};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// How connections are bounded.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// The longest a client may take to send a request head, counted from
    /// when the server starts waiting for it (also between requests, and
    /// for the first bytes of a connection).
    pub header_read_timeout: Duration,
    /// How long an HTTP/2 connection may go without a request in flight.
    pub idle_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_timeout: Duration,
}

/// Connections the kernel may hold for the server before it accepts them
/// (capped by `net.core.somaxconn`): a burst of connections, silent ones
/// included, is queued rather than refused while the accept loop catches
/// up.
const ACCEPT_BACKLOG: u32 = 4096;

/// A listening socket on `addr`, with [`ACCEPT_BACKLOG`].
pub fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(ACCEPT_BACKLOG)
}

/// Serves `app` on `listener` until `shutdown` completes, then drains.
pub async fn run(
    listener: TcpListener,
    app: BoxEndpoint<'static, Response>,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let app = Arc::new(app);
    let local = LocalAddr(Addr::SocketAddr(listener.local_addr()?));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.idle_timeout / 2))
        .keep_alive_timeout(limits.header_read_timeout);
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let waiting = Arc::new(Waiting::default());
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors, usually: back off briefly
                    // instead of spinning.
                    tracing::warn!(error = %err, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(slot) = take_a_slot(&slots, &waiting).await else {
            tracing::debug!(%peer, "connection refused: --max-connections are busy");
            drop(stream);
            continue;
        };
        let remote = RemoteAddr(Addr::SocketAddr(peer));
        let (app, local) = (app.clone(), local.clone());
        let (builder, watcher) = (builder.clone(), graceful.watcher());
        // Registered in the order of arrival, so that the oldest goes first.
        let (id, evicted) = waiting.enter();
        let waiting = waiting.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let known = tokio::select! {
                known = tokio::time::timeout(limits.header_read_timeout, protocol_known(&stream)) => {
                    matches!(known, Ok(Ok(true)))
                }
                // The oldest silent connection makes way for a new one.
                () = evicted.notified() => false,
            };
            waiting.leave(id);
            if !known {
                // Silent, half an HTTP/2 preface, gone, or evicted.
                return;
            }
            let activity = Arc::new(Activity::new());
            let service = {
                let activity = activity.clone();
                hyper::service::service_fn(move |request| {
                    let (app, local, remote) = (app.clone(), local.clone(), remote.clone());
                    let activity = activity.clone();
                    async move {
                        let _busy = activity.begin();
                        let request = poem::Request::from((request, local, remote, Scheme::HTTP));
                        Ok::<_, Infallible>(hyper::Response::from(app.get_response(request).await))
                    }
                })
            };
            let connection = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            let connection = watcher.watch(connection);
            tokio::select! {
                ended = connection => {
                    if let Err(err) = ended {
                        tracing::debug!(error = %err, %peer, "connection ended with an error");
                    }
                }
                () = activity.idle_for(limits.idle_timeout) => {
                    tracing::debug!(%peer, "idle connection closed");
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown timeout: closing connections with requests in flight");
    }
    Ok(())
}

/// A place for a new connection: a free one, or else the place of the
/// oldest connection that has not yet said a word, which is closed for it
/// (so that silent connections cannot keep a fresh client out); `None` if
/// every place is taken by a connection that is talking.
async fn take_a_slot(
    slots: &Arc<Semaphore>,
    waiting: &Waiting,
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    if let Ok(slot) = slots.clone().try_acquire_owned() {
        return Some(slot);
    }
    if !waiting.evict_oldest() {
        return None;
    }
    tokio::time::timeout(Duration::from_millis(100), slots.clone().acquire_owned())
        .await
        .ok()?
        .ok()
}

/// The connections that have not yet sent their first bytes, oldest first.
#[derive(Default)]
struct Waiting {
    next: AtomicU64,
    connections: std::sync::Mutex<std::collections::BTreeMap<u64, Arc<tokio::sync::Notify>>>,
}

impl Waiting {
    fn enter(&self) -> (u64, Arc<tokio::sync::Notify>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let evicted = Arc::new(tokio::sync::Notify::new());
        self.lock().insert(id, evicted.clone());
        (id, evicted)
    }

    fn leave(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Tells the oldest to close; `false` if there is none.
    fn evict_oldest(&self) -> bool {
        let oldest = self.lock().pop_first();
        oldest.map(|(_, evicted)| evicted.notify_one()).is_some()
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<u64, Arc<tokio::sync::Notify>>> {
        self.connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Waits until the client's first bytes tell its protocol: anything but a
/// beginning of the HTTP/2 preface is HTTP/1; the preface must be whole.
/// `false` if the client closed the connection first.
async fn protocol_known(stream: &TcpStream) -> std::io::Result<bool> {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let mut head = [0; PREFACE.len()];
    loop {
        let read = stream.peek(&mut head).await?;
        if read == 0 {
            return Ok(false);
        }
        if read == PREFACE.len() || head[..read] != PREFACE[..read] {
            return Ok(true);
        }
        // Part of the preface: peeking again answers at once, so wait a
        // little for the rest (the caller's deadline bounds it).
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Requests in flight on one connection, and when the last one ended.
struct Activity {
    started: Instant,
    in_flight: AtomicUsize,
    /// Since `started`, in ms.
    last_ended: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_ended: AtomicU64::new(0),
        }
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        Busy(self.clone())
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Completes once no request has been in flight for `limit`.
    async fn idle_for(&self, limit: Duration) {
        let limit_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
        loop {
            let idle_ms = self
                .millis()
                .saturating_sub(self.last_ended.load(Ordering::SeqCst));
            if self.in_flight.load(Ordering::SeqCst) == 0 && idle_ms >= limit_ms {
                return;
            }
            let wait = if self.in_flight.load(Ordering::SeqCst) == 0 {
                limit_ms - idle_ms.min(limit_ms)
            } else {
                limit_ms
            };
            tokio::time::sleep(Duration::from_millis(wait.max(10))).await;
        }
    }
}

/// A request in flight; its end is recorded when dropped.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.last_ended.store(self.0.millis(), Ordering::SeqCst);
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Raises the soft limit on open files to the hard limit, so that
/// connections, not a low default, are what runs out; the limit now in
/// force, where it can be read.
pub fn raise_open_file_limit() -> Option<usize> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: plain system calls on a local struct.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return None;
            }
            if limit.rlim_cur < limit.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: limit.rlim_max,
                    rlim_max: limit.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    limit = raised;
                }
            }
        }
        usize::try_from(limit.rlim_cur).ok()
    }
    #[cfg(not(unix))]
    None
}
